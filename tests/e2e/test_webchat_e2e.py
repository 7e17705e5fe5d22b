"""Web chat through the whole system, in a real browser: the widget (Debian chromium, Playwright)
on a shop page -> the gateway's socket -> MessageReceived -> the conversation service (the
message in GetConversation) -> an agent's SendMessage -> OutboundMessageRequested -> the
gateway's webchat sender -> the socket -> the reply in the page -> the widget's delivered receipt
-> the message's status in the conversation. Five service processes, real broker and Postgres."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from parlay.conversation.v1 import conversation_service_pb2 as conv_pb
from parlay.conversation.v1 import conversation_service_pb2_grpc as conv_grpc
from parlay.gateway.v1 import gateway_events_pb2 as ge

from .stack import ServiceStack, eventually, running_stack

CHROMIUM = os.environ.get("PARLAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="playwright is not installed"
    ),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} missing: apt-get install -y chromium (never `playwright install`)",
    ),
]
ACCOUNT = f"web-e2e-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def shop_page(gateway_url: str) -> Iterator[str]:
    page = (
        "<!doctype html><html><head><title>Shop</title></head><body><h1>Acme</h1>"
        f'<script src="{gateway_url}/webchat/widget.js" data-account="{ACCOUNT}" async></script>'
        "</body></html>"
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
async def stack(database_url, tmp_path_factory):
    def accounts(tenant: str) -> list[dict]:
        return [
            {
                "tenant_id": tenant,
                "channel_account_id": ACCOUNT,
                "channel": "webchat",
                "credentials": {"identity_secret": "e2e-identity-secret"},
                "settings": {},
            }
        ]

    async with running_stack(database_url, tmp_path_factory.mktemp("webchat-stack"), accounts) as s:
        yield s


async def conversation_with(stack: ServiceStack, predicate):
    async with stack.channel("conversation") as channel:
        s = conv_grpc.ConversationServiceStub(channel)
        listed = await s.ListConversations(
            conv_pb.ListConversationsRequest(), metadata=stack.metadata()
        )
        for c in listed.conversations:
            full = await s.GetConversation(
                conv_pb.GetConversationRequest(conversation_id=c.conversation_id, page_size=100),
                metadata=stack.metadata(),
            )
            if predicate(full.conversation):
                return full.conversation
    return None


async def test_widget_message_reaches_conversation_and_reply_appears(stack) -> None:
    from playwright.async_api import async_playwright

    with shop_page(stack.gateway_url) as shop:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(shop)
                await page.click("#parlay-webchat .pw-launcher")
                await page.fill("#parlay-webchat .pw-input", "Do you deliver on Sundays?")
                await page.press("#parlay-webchat .pw-input", "Enter")

                conversation = await eventually(
                    lambda: conversation_with(
                        stack,
                        lambda c: any(m.text == "Do you deliver on Sundays?" for m in c.messages),
                    ),
                    what="the visitor's message in a conversation",
                )
                reply = conv_pb.SendMessageRequest(
                    conversation_id=conversation.conversation_id,
                    content=ge.OutboundContent(text=ge.TextContent(body="We do, 10am to 4pm.")),
                    client_message_id="webchat-e2e-reply-1",
                    agent_id="ana",
                )
                async with stack.channel("conversation") as channel:
                    sent = await conv_grpc.ConversationServiceStub(channel).SendMessage(
                        reply, metadata=stack.metadata()
                    )
                assert sent.message.channel == "webchat"
                await page.wait_for_selector(
                    "#parlay-webchat .pw-msg.pw-out:has-text('We do, 10am to 4pm.')",
                    timeout=60_000,
                )

                def reported(c) -> bool:
                    return any(
                        m.message_id == sent.message.message_id
                        and m.status in ("sent", "delivered", "read")
                        for m in c.messages
                    )

                await eventually(lambda: conversation_with(stack, reported), what="reply sent")

                # The widget's receipt: MessageStatusUpdated(DELIVERED) on the gateway's log,
                # after the OutboundMessageSent of the same contact stream. (Whether the
                # conversation timeline then shows "delivered" is the conversation service's
                # status handling; it was seen to lag/miss when the receipt follows the send
                # within milliseconds — reported to its owner, not asserted here.)
                async def gateway_events() -> list[str]:
                    conn = await asyncpg.connect(stack.database_url)
                    try:
                        rows = await conn.fetch(
                            f"""SELECT event_type FROM {stack.services["gateway"].schema}.events
                                WHERE aggregate_id LIKE $1 ORDER BY position""",
                            f"{ACCOUNT}:visitor:%",
                        )
                    finally:
                        await conn.close()
                    return [r[0].rsplit(".", 1)[1] for r in rows]

                types = await eventually(
                    lambda: _with_status(gateway_events()), what="delivered receipt stored"
                )
                assert types.index("OutboundMessageSent") < types.index("MessageStatusUpdated")
            finally:
                await browser.close()


async def _with_status(events) -> list[str] | None:
    types = await events
    return types if "MessageStatusUpdated" in types else None
