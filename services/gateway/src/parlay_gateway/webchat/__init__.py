"""First-party web chat: the socket and widget (socket.py), the history table (store.py).

The pure frame handling is `channels/webchat.py`; the outbound side is
`outbound/senders/webchat.py`. See docs/channels.md ("Web chat").
"""
