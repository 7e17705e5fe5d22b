"""Helpers of the payment-action tests: one gateway wired to the provider stand-ins (Stripe and
Telegram over real HTTP), payments events produced on parlay.payments.v1 as the payments
service's relay would, and waits on the recorded ChannelPaymentActionCompleted outcomes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from gateway_testkit import RunningGateway, run_gateway, wait_for

from parlay.gateway.v1 import gateway_events_pb2 as gw
from parlay.payments.v1 import payments_events_pb2 as pay
from parlay_gateway.outbound.settings import OutboundSettings
from parlay_gateway.payments.actions import outcome_event_id
from parlay_kit import topics
from parlay_kit.envelope import NewEvent, decode, encode, new_event_id, unpack, utcnow
from parlay_standins import StandinServer

ACTION_COMPLETED = "parlay.gateway.v1.ChannelPaymentActionCompleted"
#: Short timeouts: a stand-in delay beyond STRIPE_TIMEOUT is a client timeout.
STRIPE_TIMEOUT = 0.5
TELEGRAM_BOT_TOKEN = "7000000002:AAHpaymentsTOKENxxxxxxxxxxxxxxxxxxx"
PROVIDER_TOKEN = "284685063:TEST:parlay-provider-token"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class PaymentsEnv:
    def __init__(
        self, running: RunningGateway, standin: StandinServer, producer: AIOKafkaProducer
    ) -> None:
        self.running = running
        self.gateway = running.gateway
        self.pool = running.pool
        self.schema = running.schema
        self.standin = standin
        self.producer = producer
        self.http = httpx.AsyncClient(base_url=standin.url, timeout=30.0)

    # ------------------------------------------------------------------ accounts

    async def stripe_account(self, tenant: str, **settings: str) -> tuple[str, str]:
        """A Stripe account in the gateway and the stand-in; returns (account id, api key).
        Each has its own key, so each sees only its own objects at the stand-in."""
        account_id = unique("stripe")
        api_key = f"sk_test_{uuid.uuid4().hex}"
        credentials = {"api_key": api_key, "webhook_secret": f"whsec_{uuid.uuid4().hex}"}
        await self.gateway.accounts.create(tenant, account_id, "stripe", credentials, settings)
        response = await self.http.post(
            "/_standin/accounts",
            json={
                "channel": "stripe",
                "credentials": credentials,
                "webhook_url": f"{self.running.url}/webhooks/stripe/{account_id}",
            },
        )
        response.raise_for_status()
        return account_id, api_key

    async def telegram_account(self, tenant: str, **credentials: str) -> str:
        account_id = unique("tg")
        creds = {
            "bot_token": TELEGRAM_BOT_TOKEN,
            "secret_token": "tg-payments-secret",
            "payment_provider_token": PROVIDER_TOKEN,
            **credentials,
        }
        await self.gateway.accounts.create(tenant, account_id, "telegram", creds, {})
        return account_id

    # ------------------------------------------------------------------ events

    async def produce(self, event: NewEvent) -> tuple[int, int]:
        """Publish as the payments service's relay would; returns (partition, offset)."""
        envelope = event.to_envelope("payments", event.aggregate_version or 1, utcnow())
        meta = await self.producer.send_and_wait(
            event.topic,
            value=encode(envelope),
            key=event.aggregate_id.encode(),
            headers=[("ce_id", event.event_id.encode()), ("ce_type", event.event_type.encode())],
        )
        return meta.partition, meta.offset

    async def outcome(
        self, request_event_id: str, action: str, timeout: float = 30.0
    ) -> gw.ChannelPaymentActionCompleted:
        event_id = outcome_event_id(request_event_id, action)

        async def stored() -> Any:
            row = await self.pool.fetchrow(
                f"SELECT envelope FROM {self.schema}.events WHERE event_id = $1::uuid", event_id
            )
            return row

        row = await wait_for(stored, timeout, f"{action} outcome of {request_event_id}")
        payload = unpack(decode(bytes(row["envelope"])))
        assert isinstance(payload, gw.ChannelPaymentActionCompleted)
        return payload

    async def outcomes_of(self, request_event_id: str) -> list[Any]:
        rows = await self.pool.fetch(
            f"SELECT envelope FROM {self.schema}.events WHERE event_type = $1", ACTION_COMPLETED
        )
        out = []
        for row in rows:
            payload = unpack(decode(bytes(row["envelope"])))
            if payload.request_event_id == request_event_id:  # type: ignore[attr-defined]
                out.append(payload)
        return out

    async def wait_consumed(self, consumer: str, partition: int, offset: int) -> None:
        """The projector `consumer` has committed past `offset` of the payments topic."""

        async def past() -> bool:
            value = await self.pool.fetchval(
                f"""SELECT next_offset FROM {self.schema}.consumer_offsets
                    WHERE consumer = $1 AND topic = $2 AND partition = $3""",
                consumer,
                topics.PAYMENTS,
                partition,
            )
            return value is not None and value > offset

        await wait_for(past, 60, f"{consumer} past offset {offset}")

    # ------------------------------------------------------------------ stand-in

    async def stripe_get(self, api_key: str, path: str, **params: Any) -> Any:
        response = await self.http.get(
            f"/stripe{path}", params=params, headers={"Authorization": f"Bearer {api_key}"}
        )
        response.raise_for_status()
        return response.json()

    async def all_sessions(self, api_key: str) -> list[dict[str, Any]]:
        """Every checkout session of the key, paging through the list like a Stripe client."""
        sessions: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self.stripe_get(api_key, "/v1/checkout/sessions", **params)
            sessions.extend(page["data"])
            if not page["has_more"]:
                return sessions
            params["starting_after"] = page["data"][-1]["id"]

    async def requests(self, **filters: Any) -> list[dict[str, Any]]:
        response = await self.http.get("/_standin/requests", params=filters)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["requests"]
        return found


def payment_requested(
    tenant: str,
    *,
    amount_minor: int = 2599,
    currency: str = "EUR",
    method: str = "payment_link",
    order_id: str | None = None,
    attempt: int = 1,
    description: str = "",
    event_id: str | None = None,
) -> NewEvent:
    order_id = order_id or str(uuid.uuid4())
    payment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}:{order_id}:{attempt}"))
    payload = pay.PaymentRequested(
        payment_id=payment_id,
        order_id=order_id,
        customer_id=str(uuid.uuid4()),
        conversation_id=str(uuid.uuid4()),
        amount_minor=amount_minor,
        currency=currency,
        method=method,
        attempt=attempt,
        idempotency_key=f"{order_id}:attempt:{attempt}",
        description=description,
    )
    return payments_event(tenant, payment_id, payload, event_id=event_id)


def payments_event(
    tenant: str, payment_id: str, payload: Any, *, event_id: str | None = None, version: int = 1
) -> NewEvent:
    return NewEvent(
        event_id=event_id or new_event_id(),
        tenant_id=tenant,
        aggregate_type="payment",
        aggregate_id=payment_id,
        payload=payload,
        occurred_at=utcnow(),
        topic=topics.PAYMENTS,
        aggregate_version=version,
    )


@contextlib.asynccontextmanager
async def payments_env(kafka: str, database_url: str) -> AsyncIterator[PaymentsEnv]:
    async with StandinServer() as standin:
        outbound = OutboundSettings(
            telegram_api_base_url=f"{standin.url}/telegram", outbound_enabled=False
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
        await producer.start()
        try:
            async with run_gateway(
                kafka,
                database_url,
                outbound_settings=outbound,
                stripe_api_base_url=f"{standin.url}/stripe",
                stripe_timeout_seconds=STRIPE_TIMEOUT,
                stripe_connect_timeout_seconds=STRIPE_TIMEOUT,
                stripe_max_attempts=10,
                stripe_backoff_base_seconds=0.1,
                stripe_backoff_max_seconds=2.0,
                payment_actions_concurrency=64,
                telegram_payments_timeout_seconds=2.0,
                telegram_pre_checkout_budget_seconds=4.0,
            ) as running:
                env = PaymentsEnv(running, standin, producer)
                try:
                    yield env
                finally:
                    await env.http.aclose()
        finally:
            await producer.stop()
