"""The web-chat widget in a real headless browser (Debian's chromium driven by Playwright).

A host page on its own origin embeds `<gateway>/webchat/widget.js`; the visitor opens the chat and
types; the message reaches the gateway (MessageReceived on parlay.gateway.inbound.v1); an agent's
reply (OutboundMessageRequested on parlay.conversation.v1, as the conversation service appends
it) appears in the page; the widget reports it delivered; a reload shows the history.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from gateway_testkit import read_topic, run_gateway, wait_for
from outbound_testkit import Producer, request_event, text

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_kit import topics
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import decode, unpack

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
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"{CHROMIUM} missing: apt-get install -y chromium (never `playwright install`)",
)
TENANT = f"wcb-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def host_page(gateway_url: str, account_id: str) -> Iterator[str]:
    """A shop page on another origin (another port) that embeds the widget."""
    page = f"""<!doctype html><html><head><title>Shop</title></head><body>
<h1>Acme shop</h1>
<script src="{gateway_url}/webchat/widget.js" data-account="{account_id}" async></script>
</body></html>""".encode()

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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_visitor_types_agent_reply_appears(gw_kafka: str, gw_database_url: str) -> None:
    await ensure_topics(gw_kafka, [topics.CONVERSATION], partitions=3)
    producer = await Producer(gw_kafka).start()
    try:
        async with run_gateway(gw_kafka, gw_database_url) as running:
            account_id = f"web-{uuid.uuid4().hex[:10]}"
            with host_page(running.url, account_id) as shop:
                await running.gateway.accounts.create(
                    TENANT, account_id, "webchat", {}, {"allowed_origins": shop}
                )
                await _drive(running, producer, gw_kafka, shop, account_id)
    finally:
        await producer.stop()


async def _drive(
    running: Any, producer: Producer, bootstrap: str, shop: str, account_id: str
) -> None:
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(shop)
            await page.click("#parlay-webchat .pw-launcher")
            await page.fill("#parlay-webchat .pw-input", "Hi, is the blue kettle in stock?")
            await page.press("#parlay-webchat .pw-input", "Enter")
            # acknowledged by the gateway (durable): the bubble is no longer pending
            await page.wait_for_selector(
                "#parlay-webchat .pw-msg.pw-in:not(.pw-pending)", timeout=30_000
            )

            # ... and normalized onto the inbound topic
            rows = await wait_for(
                lambda: running.events("parlay.gateway.v1.MessageReceived", account_id),
                30,
                "MessageReceived",
            )
            [row] = rows
            received = unpack(decode(bytes(row["envelope"])))
            assert isinstance(received, pb.MessageReceived)
            assert received.content.text.body == "Hi, is the blue kettle in stock?"
            # At-least-once: the record may be there more than once (same event id).
            record, *_ = await read_topic(bootstrap, topics.INBOUND, {row["event_id"]})
            assert unpack(decode(record.value)).content.text.body == received.content.text.body
            visitor = received.sender.address
            assert visitor.startswith("visitor:")

            # the agent replies
            reply = request_event(
                tenant_id=TENANT,
                channel="webchat",
                channel_account_id=account_id,
                recipient=visitor,
                content=text("Yes! 3 left, ships today."),
            )
            await producer.produce(reply)
            await page.wait_for_selector(
                "#parlay-webchat .pw-msg.pw-out:has-text('Yes! 3 left, ships today.')",
                timeout=30_000,
            )
            # the widget acknowledged it: delivered
            statuses = await wait_for(
                lambda: running.events("parlay.gateway.v1.MessageStatusUpdated", account_id),
                30,
                "delivered",
            )
            status = unpack(decode(bytes(statuses[0]["envelope"])))
            assert status.provider_message_id == reply.payload.message_id
            assert status.status == pb.DELIVERY_STATUS_DELIVERED

            # reload: same visitor (localStorage), history shows both directions
            await page.reload()
            await page.click("#parlay-webchat .pw-launcher")
            await page.wait_for_selector(
                "#parlay-webchat .pw-msg.pw-out:has-text('ships today')", timeout=30_000
            )
            texts = await page.locator("#parlay-webchat .pw-msg").all_inner_texts()
            assert texts == ["Hi, is the blue kettle in stock?", "Yes! 3 left, ships today."]
            assert errors == []
        finally:
            await browser.close()
