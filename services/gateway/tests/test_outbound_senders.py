"""Per-channel senders against the stand-ins over real HTTP: every content kind is built the way
the provider documents it, the stand-in (which validates like the real API) accepts it, and the
answer parses to the provider's message id. Error answers classify as retry / failed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from outbound_testkit import CREDENTIALS, RECIPIENTS

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.http import TransportFailure, execute
from parlay_gateway.outbound.ratelimit import backoff_seconds, refill, seconds_until
from parlay_gateway.outbound.senders import Unsendable, default_senders
from parlay_gateway.outbound.senders.base import (
    Delivery,
    ProviderResponse,
    SendContext,
    parse_retry_after,
)
from parlay_standins import FAMILY_OF_CHANNEL, StandinServer

CHANNELS = ("whatsapp", "messenger", "instagram", "telegram", "twilio", "wechat", "line", "viber")


@pytest.fixture(scope="module")
async def standin():
    async with StandinServer() as server:
        yield server


@pytest.fixture
async def client():
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


def account(channel: str, **settings: str) -> ChannelAccount:
    credentials, base_settings = CREDENTIALS[channel]
    return ChannelAccount(
        channel_account_id=f"acc-{channel}",
        tenant_id="t1",
        channel=channel,
        credentials=credentials,
        settings={**base_settings, **settings},
        created_at=datetime.now(UTC),
    )


def delivery(channel: str, content: gw.OutboundContent, recipient: str = "") -> Delivery:
    return Delivery(
        message_id=str(uuid.uuid4()),
        request_event_id=str(uuid.uuid4()),
        tenant_id="t1",
        conversation_id="c1",
        channel=channel,
        channel_account_id=f"acc-{channel}",
        recipient=recipient or RECIPIENTS[channel],
        content=content,
        text="rendered",
        purpose="transactional",
    )


def contents() -> dict[str, gw.OutboundContent]:
    return {
        "text": gw.OutboundContent(text=gw.TextContent(body="Your order #1042 has shipped 📦")),
        "template": gw.OutboundContent(
            template=gw.TemplateContent(
                name="order_update",
                language="en_US",
                body_parameters=[
                    gw.TemplateParameter(text="Kerry"),
                    gw.TemplateParameter(text="#1042"),
                ],
            )
        ),
        "buttons": gw.OutboundContent(
            interactive=gw.InteractiveContent(
                header="Delivery",
                body="When should we deliver?",
                footer="Reply any time",
                buttons=[
                    gw.InteractiveButton(id="today", title="Today"),
                    gw.InteractiveButton(id="tomorrow", title="Tomorrow"),
                ],
            )
        ),
        "list": gw.OutboundContent(
            interactive=gw.InteractiveContent(
                body="Pick a size",
                list_button_text="Sizes",
                sections=[
                    gw.InteractiveListSection(
                        title="Shirts",
                        rows=[
                            gw.InteractiveListRow(id="s", title="Small", description="S"),
                            gw.InteractiveListRow(id="m", title="Medium"),
                        ],
                    )
                ],
            )
        ),
        "image": gw.OutboundContent(
            media=gw.MediaContent(
                kind="image", url="https://cdn.example.com/p/1.jpg", caption="New in"
            )
        ),
        "document": gw.OutboundContent(
            media=gw.MediaContent(
                kind="document", url="https://cdn.example.com/invoice.pdf", filename="invoice.pdf"
            )
        ),
    }


async def send(
    standin: StandinServer,
    client: httpx.AsyncClient,
    channel: str,
    content: gw.OutboundContent,
    **settings: str,
):
    senders = default_senders()
    sender = senders.get(channel)
    assert sender is not None
    acct = account(channel, **settings)
    ctx = SendContext(base_url=standin.base_url(FAMILY_OF_CHANNEL[channel]))
    token_request = sender.token_request(acct, ctx)
    if token_request is not None:
        token, ttl = sender.parse_token(await execute(client, token_request))
        assert ttl > 0
        ctx = SendContext(base_url=ctx.base_url, access_token=token)
    d = delivery(channel, content)
    request = sender.build(d, acct, ctx)
    response = await execute(client, request)
    return d, request, response, sender.parse(response)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("kind", ["text", "buttons", "list", "image", "document"])
async def test_every_channel_sends_every_kind(standin, client, channel: str, kind: str) -> None:
    d, request, response, outcome = await send(standin, client, channel, contents()[kind])
    assert outcome.kind == "sent", (response.status, response.text())
    recorded = [
        r for r in standin.state.records if r.idempotency_key == d.message_id and r.accepted
    ]
    assert len(recorded) == 1
    if channel != "wechat":  # WeChat's custom-send API returns no message id
        assert outcome.provider_message_id == recorded[0].provider_message_id != ""


@pytest.mark.parametrize("channel", ["whatsapp", "twilio"])
async def test_templates(standin, client, channel: str) -> None:
    d, request, response, outcome = await send(standin, client, channel, contents()["template"])
    assert outcome.kind == "sent", response.text()
    if channel == "whatsapp":
        assert request.json["template"] == {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Kerry"},
                        {"type": "text", "text": "#1042"},
                    ],
                }
            ],
        }
    else:
        form = dict(request.form or [])
        assert form["ContentSid"] == "order_update"
        assert form["ContentVariables"] == '{"1":"Kerry","2":"#1042"}'


@pytest.mark.parametrize("channel", ["messenger", "telegram", "line", "viber", "wechat"])
async def test_templates_are_whatsapp_only(standin, client, channel: str) -> None:
    with pytest.raises(Unsendable) as exc:
        await send(standin, client, channel, contents()["template"])
    assert exc.value.code == "unsupported_content"


async def test_whatsapp_request_is_the_documented_shape(standin, client) -> None:
    d, request, response, outcome = await send(standin, client, "whatsapp", contents()["buttons"])
    assert request.url.endswith("/meta/v21.0/106540352242922/messages")
    assert request.headers["Authorization"] == "Bearer wa-token"
    assert request.headers["Idempotency-Key"] == d.message_id
    assert request.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16315551181",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Delivery"},
            "body": {"text": "When should we deliver?"},
            "footer": {"text": "Reply any time"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "today", "title": "Today"}},
                    {"type": "reply", "reply": {"id": "tomorrow", "title": "Tomorrow"}},
                ]
            },
        },
    }
    assert response.json()["messages"][0]["id"].startswith("wamid.")


async def test_twilio_whatsapp_addresses_and_basic_auth(standin, client) -> None:
    content = contents()["text"]
    senders = default_senders()
    sender = senders.get("twilio")
    acct = account("twilio")
    d = delivery("twilio", content, recipient="whatsapp:+14155552671")
    request = sender.build(
        d,
        acct,
        SendContext(base_url=standin.base_url("twilio"), public_url="https://chat.example.com"),
    )
    form = dict(request.form or [])
    assert form["From"] == "whatsapp:+14155238886" and form["To"] == "whatsapp:+14155552671"
    assert form["StatusCallback"] == "https://chat.example.com/webhooks/twilio/acc-twilio"
    response = await execute(client, request)
    assert response.status == 201
    assert sender.parse(response).provider_message_id.startswith("SM")
    recorded = standin.state.records[-1]
    assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
    assert recorded.headers["authorization"].startswith("Basic ")


async def test_line_retry_key_makes_a_resend_safe(standin, client) -> None:
    senders = default_senders()
    sender = senders.get("line")
    d = delivery("line", contents()["text"])
    request = sender.build(d, account("line"), SendContext(base_url=standin.base_url("line")))
    assert request.headers["X-Line-Retry-Key"] == d.message_id
    first = sender.parse(await execute(client, request))
    again = await execute(client, request)
    assert again.status == 409
    second = sender.parse(again)
    assert first.kind == second.kind == "sent"
    assert first.provider_message_id == second.provider_message_id
    sends = [r for r in standin.state.records if r.idempotency_key == d.message_id and r.accepted]
    assert len(sends) == 1


@pytest.mark.parametrize(
    ("channel", "error", "kind", "code"),
    [
        ("whatsapp", "rate_limited", "retry", "130429"),
        ("whatsapp", "server_error", "retry", "2"),
        ("whatsapp", "bad_request", "failed", "131009"),
        ("messenger", "unauthorized", "failed", "190"),
        ("telegram", "rate_limited", "retry", "429"),
        ("telegram", "bad_request", "failed", "400"),
        ("twilio", "rate_limited", "retry", "20429"),
        ("twilio", "bad_request", "failed", "21211"),
        ("line", "rate_limited", "retry", "http_429"),
        ("line", "bad_request", "failed", "http_400"),
        ("viber", "rate_limited", "retry", "12"),
        ("viber", "bad_request", "failed", "6"),
        ("wechat", "server_error", "retry", "-1"),
        ("wechat", "bad_request", "failed", "40003"),
    ],
)
async def test_provider_errors_classify(standin, client, channel, error, kind, code) -> None:
    marker = uuid.uuid4().hex
    standin.state.rules.clear()
    from parlay_standins.state import FailureRule

    recipient_marker = {"twilio": "+1415555" + str(int(marker[:6], 16) % 10000).zfill(4)}.get(
        channel, f"{RECIPIENTS[channel]}{marker[:6]}"
    )
    standin.state.rules.append(
        FailureRule(
            id=marker,
            family=FAMILY_OF_CHANNEL[channel],
            match=recipient_marker.lstrip("+"),
            error=error,
            retry_after=3,
        )
    )
    senders = default_senders()
    sender = senders.get(channel)
    acct = account(channel)
    ctx = SendContext(base_url=standin.base_url(FAMILY_OF_CHANNEL[channel]))
    if channel == "wechat":
        token, _ = sender.parse_token(await execute(client, sender.token_request(acct, ctx)))
        ctx = SendContext(base_url=ctx.base_url, access_token=token)
    request = sender.build(delivery(channel, contents()["text"], recipient_marker), acct, ctx)
    outcome = sender.parse(await execute(client, request))
    assert (outcome.kind, outcome.error_code) == (kind, code), outcome
    if error == "rate_limited" and channel in ("whatsapp", "telegram", "twilio", "line"):
        assert outcome.retry_after == 3
    standin.state.rules.clear()


async def test_unreachable_provider_is_a_transport_failure_that_never_sent(client) -> None:
    senders = default_senders()
    sender = senders.get("telegram")
    request = sender.build(
        delivery("telegram", contents()["text"]),
        account("telegram"),
        SendContext(base_url="http://127.0.0.1:9"),
    )
    with pytest.raises(TransportFailure) as exc:
        await execute(client, request)
    assert exc.value.maybe_sent is False


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert backoff_seconds(3, base=1, cap=100, retry_after=None, jitter=0) == 4
    assert backoff_seconds(10, base=1, cap=30, retry_after=None, jitter=0) == 30
    assert backoff_seconds(1, base=1, cap=30, retry_after=12.5, jitter=0) == 12.5
    assert refill(0, 0.5, 4, 1) == 1
    assert refill(0.2, 0.1, 2, 5) == pytest.approx(0.4)
    assert seconds_until(0.5, 2) == 0.25


def test_graph_error_with_retryable_code_on_400_retries() -> None:
    sender = default_senders().get("whatsapp")
    body = (
        b'{"error":{"message":"(#131056) pair rate limit","type":"OAuthException","code":131056}}'
    )
    outcome = sender.parse(ProviderResponse(400, {}, body))
    assert outcome.kind == "retry" and outcome.error_code == "131056"
