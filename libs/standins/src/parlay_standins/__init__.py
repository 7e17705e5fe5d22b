"""Local stand-ins for the messaging providers' HTTP APIs: Meta Graph (WhatsApp Cloud API,
Messenger/Instagram Send API), Telegram Bot API, Twilio Messaging, WeChat Official Account,
LINE Messaging and Viber, and the Stripe API (Checkout, refunds, signed event webhooks). They
speak the documented request/response formats, record every request, can be told to fail or to
answer slowly, and send signed status webhooks back.

    python -m parlay_standins --port 8090        # every family under /meta, /telegram, ...
    async with StandinServer() as s: ...          # in the current event loop (tests)
"""

from parlay_standins.app import create_app
from parlay_standins.server import StandinServer, env_for
from parlay_standins.state import (
    ALL_FAMILIES,
    FAMILIES,
    FAMILY_OF_CHANNEL,
    PAYMENT_FAMILIES,
    StandinState,
)

__all__ = [
    "ALL_FAMILIES",
    "FAMILIES",
    "FAMILY_OF_CHANNEL",
    "PAYMENT_FAMILIES",
    "StandinServer",
    "StandinState",
    "create_app",
    "env_for",
]
