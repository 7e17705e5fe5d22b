"""The inbox end to end inside the service: a real broker and Postgres, the real timeline
projector (inbound, profile, orders, payments topics), the real timer task, and the real gRPC
server (API-key auth, status mapping) in front of the servicer. Gateway, profile, orders and
payments events are produced onto the topics in their documented shapes. One running service is
shared by the module (Tansu group joins are slow); every test has its own tenant. Waits are on
stored offsets, relay positions or conditions — never on sleeps.

The last test rebuilds every read model from the conversation topic into an empty schema and
compares them with what the writers (projector, commands, timer) produced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import grpc
import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import domain
from parlay_conversation.inbox import Automation, ConsentPolicy
from parlay_conversation.projections import Timeline, TimelineProjection
from parlay_conversation.readmodel import ConversationReadModel
from parlay_conversation.servicer import SERVICE_NAME, ConversationServicer
from parlay_conversation.timer import Timer
from parlay_kit import tenancy
from parlay_kit.envelope import decode, to_timestamp, unpack
from parlay_kit.grpc_server import FIELD_TRAILER, build_server, create_channel
from parlay_kit.testing import unique_name

WINDOWS = domain.DEFAULT_SERVICE_WINDOWS


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tenant:
    tenant_id: str
    stub: cs_grpc.ConversationServiceStub
    env: Env
    n: int = 0

    def address(self) -> str:
        self.n += 1
        return f"165055{self.n:05d}"

    async def customer(self, channel: str = "whatsapp", address: str | None = None) -> Customer:
        customer = Customer(self, unique_name("cust"), address or self.address())
        await customer.link(channel)
        return customer

    async def settings(self, **kw) -> None:
        await self.stub.UpdateInboxSettings(
            cs.UpdateInboxSettingsRequest(settings=ce.InboxSettings(**kw))
        )


@dataclass
class Customer:
    tenant: Tenant
    customer_id: str
    address: str
    linked: set[str] = field(default_factory=set)

    @property
    def conversation_id(self) -> str:
        return domain.conversation_id_for(self.tenant.tenant_id, self.customer_id)

    async def link(self, channel: str, address: str | None = None) -> None:
        bus = self.tenant.env.bus
        await bus.produce(
            bus.profile,
            bus.identity_linked(
                tenant=self.tenant.tenant_id,
                customer_id=self.customer_id,
                address=address or self.address,
                channel=channel,
            ),
            source="profile",
        )
        self.linked.add(channel)

    async def says(
        self,
        text: str,
        *,
        at: datetime | None = None,
        channel: str = "whatsapp",
        address: str | None = None,
        wait: bool = True,
    ):
        env = self.tenant.env
        event = env.bus.message_received(
            tenant=self.tenant.tenant_id,
            address=address or self.address,
            text=text,
            channel=channel,
            account=f"{channel}-acc",
            at=at or now(),
        )
        await env.bus.produce(env.bus.inbound, event)
        if wait:
            await env.settle()
        return event

    async def get(self, page_size: int = 200) -> cs.Conversation:
        reply = await self.tenant.stub.GetConversation(
            cs.GetConversationRequest(conversation_id=self.conversation_id, page_size=page_size)
        )
        return reply.conversation


@dataclass
class Env:
    bus: object
    runtime: object
    projector: object
    timer: Timer
    rm: ConversationReadModel
    pool: asyncpg.Pool
    schema: str
    server_address: str
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)

    async def tenant(self) -> Tenant:
        async with self.pool.acquire() as conn:
            t = await tenancy.create_tenant(conn, "Shop", unique_name("shop"), schema=self.schema)
            key = (await tenancy.create_api_key(conn, t.tenant_id, schema=self.schema)).key
        channel = create_channel(self.server_address, api_key=key, telemetry_enabled=False)
        self.channels.append(channel)
        self.tenants.append(t.tenant_id)
        return Tenant(t.tenant_id, cs_grpc.ConversationServiceStub(channel), self)

    async def settle(self) -> None:
        """The projector applied everything produced so far."""
        await self.bus.wait_caught_up(self.projector)

    async def events(self, tenant: str, event_type: str | None = None) -> list:
        rows = await self.pool.fetch(
            f"""SELECT event_id::text, event_type, aggregate_id, aggregate_version, envelope
                FROM {self.schema}.events WHERE tenant_id = $1 ORDER BY position""",
            tenant,
        )
        return [
            SimpleNamespace(
                event_id=r[0],
                event_type=r[1],
                aggregate_id=r[2],
                version=r[3],
                payload=unpack(decode(bytes(r[4]))),
            )
            for r in rows
            if event_type is None or r[1] == f"parlay.conversation.v1.{event_type}"
        ]


@pytest.fixture(scope="module")
async def env(bus, module_runtimes, module_schema) -> AsyncIterator[Env]:
    runtime = await module_runtimes.open(module_schema, "conversation")
    rm = ConversationReadModel(module_schema)
    consent = ConsentPolicy(rm)
    automation = Automation(rm, consent, WINDOWS)
    projector = runtime.add_projector(
        unique_name("timeline"),
        bus.timeline_topics,
        Timeline(
            rm, topic=bus.conversation, automation=automation, consent=consent, windows=WINDOWS
        ),
    )
    timer = Timer(
        runtime.pool,
        runtime.store,
        rm,
        topic=bus.conversation,
        consent=consent,
        windows=WINDOWS,
        interval=0.05,
    )
    runtime.add_task("timer", timer.run, role="projectors")
    await module_runtimes.start(runtime)
    async with runtime.pool.acquire() as conn:
        await tenancy.migrate(conn, module_schema)
    servicer = ConversationServicer(
        runtime.pool,
        rm,
        runtime.store,
        topic=bus.conversation,
        windows=WINDOWS,
        consent=consent,
        automation=automation,
    )
    server = build_server(
        [(cs_grpc.add_ConversationServiceServicer_to_server, servicer)],
        resolver=tenancy.ApiKeyResolver(runtime.pool, schema=module_schema),
        service_names=[SERVICE_NAME],
        port=0,
        telemetry_enabled=False,
    )
    await server.start()
    e = Env(bus, runtime, projector, timer, rm, runtime.pool, module_schema, server.address)
    try:
        yield e
    finally:
        for channel in e.channels:
            await channel.close()
        await server.stop(0)
        await module_runtimes.stop(runtime)  # before the module's schema is dropped


async def rpc_error(call, request) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request)
    return err.value


def text(body: str) -> ge.OutboundContent:
    return ge.OutboundContent(text=ge.TextContent(body=body))


def template(name: str = "order_update") -> ge.OutboundContent:
    return ge.OutboundContent(
        template=ge.TemplateContent(
            name=name, language="en_US", body_parameters=[ge.TemplateParameter(text="A-1")]
        )
    )


# ------------------------------------------------------------------------------- windows


async def test_reply_after_the_window_is_refused_while_a_template_passes(env: Env) -> None:
    t = await env.tenant()
    ana = await t.customer()
    wrote_at = (now() - timedelta(hours=25)).replace(microsecond=0)
    await ana.says("hola, my parcel?", at=wrote_at)

    refused = await rpc_error(
        t.stub.SendMessage,
        cs.SendMessageRequest(conversation_id=ana.conversation_id, content=text("on its way!")),
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    closed_at = (wrote_at + timedelta(hours=24)).isoformat()
    assert f"whatsapp customer-service window (24h) closed at {closed_at}" in refused.details()
    assert "template" in refused.details()

    sent = await t.stub.SendMessage(
        cs.SendMessageRequest(conversation_id=ana.conversation_id, content=template())
    )
    assert (sent.message.status, sent.message.channel) == ("pending", "whatsapp")
    assert sent.message.outbound_content.template.name == "order_update"
    conversation = await ana.get()
    [window] = conversation.service_windows
    assert (window.channel, window.open) == ("whatsapp", False)
    assert window.closes_at.ToDatetime(tzinfo=UTC) == wrote_at + timedelta(hours=24)
    assert [m.status for m in conversation.messages] == ["", "pending"]

    # She writes on SMS (profile linked her number there too): the reply goes to SMS, where
    # there is no window; WhatsApp, named explicitly, is still closed.
    await ana.link("sms", "+" + ana.address)
    await ana.says("it's me on sms", channel="sms", address="+" + ana.address)
    reply = await t.stub.SendMessage(
        cs.SendMessageRequest(conversation_id=ana.conversation_id, content=text("got it"))
    )
    assert (reply.message.channel, reply.message.channel_account_id) == ("sms", "sms-acc")
    refused = await rpc_error(
        t.stub.SendMessage,
        cs.SendMessageRequest(
            conversation_id=ana.conversation_id, content=text("x"), channel="whatsapp"
        ),
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    [requested] = [
        e.payload
        for e in await env.events(t.tenant_id, "OutboundMessageRequested")
        if e.payload.message_id == reply.message.message_id
    ]
    assert (requested.recipient_address, requested.customer_id) == (
        "+" + ana.address,
        ana.customer_id,
    )


async def test_whatsapp_then_sms_is_one_conversation_with_both(env: Env) -> None:
    t = await env.tenant()
    bo = await t.customer()
    await bo.link("sms", "+" + bo.address)
    await bo.says("hi from whatsapp")
    await bo.says("and from sms", channel="sms", address="+" + bo.address)
    listed = await t.stub.ListConversations(cs.ListConversationsRequest(customer_id=bo.customer_id))
    [conversation] = listed.conversations
    assert conversation.conversation_id == bo.conversation_id
    full = await bo.get()
    assert [(m.text, m.channel) for m in full.messages] == [
        ("hi from whatsapp", "whatsapp"),
        ("and from sms", "sms"),
    ]
    assert (full.last_channel, sorted(full.channels), full.unread_count) == (
        "sms",
        ["sms", "whatsapp"],
        2,
    )
    by_channel = await t.stub.ListConversations(cs.ListConversationsRequest(channel="sms"))
    assert [c.conversation_id for c in by_channel.conversations] == [bo.conversation_id]


# ------------------------------------------------------------------------------- idempotency


async def test_the_same_client_message_id_twice_sends_once(env: Env) -> None:
    t = await env.tenant()
    cy = await t.customer()
    await cy.says("hello?")
    request = cs.SendMessageRequest(
        conversation_id=cy.conversation_id,
        content=text("Hi Cy, how can we help?"),
        client_message_id="ui-42",
        agent_id="ana",
    )
    first = await t.stub.SendMessage(request)
    second = await t.stub.SendMessage(request)
    assert first == second
    assert first.message.message_id == domain.outbound_message_id(
        t.tenant_id, cy.conversation_id, "ui-42"
    )
    assert first.message.sender == "agent:ana"
    other = cs.SendMessageRequest()
    other.CopyFrom(request)
    other.content.text.body = "something else"
    clash = await rpc_error(t.stub.SendMessage, other)
    assert clash.code() == grpc.StatusCode.ALREADY_EXISTS

    await env.bus.wait_published(env.runtime)
    on_topic = [
        unpack(decode(r.value))
        for r in await env.bus.read_all(env.bus.conversation)
        if decode(r.value).tenant_id == t.tenant_id
        and decode(r.value).event_type == "parlay.conversation.v1.OutboundMessageRequested"
    ]
    assert [m.message_id for m in on_topic] == [first.message.message_id]
    assert on_topic[0].client_message_id == "ui-42"
    conversation = await cy.get()
    assert [m.direction for m in conversation.messages] == [1, 2]
    assert conversation.first_response_at.seconds > 0


# ------------------------------------------------------------------------------- statuses


async def test_statuses_show_in_the_timeline_monotonically_even_out_of_order(env: Env) -> None:
    t = await env.tenant()
    di = await t.customer()
    await di.says("order 77?")
    sent = await t.stub.SendMessage(
        cs.SendMessageRequest(conversation_id=di.conversation_id, content=text("Shipped!"))
    )
    message_id = sent.message.message_id
    bus = env.bus
    base = now()
    common = dict(tenant=t.tenant_id, address=di.address, account="whatsapp-acc")
    # The read receipt arrives before the gateway's own OutboundMessageSent (parked), then the
    # older delivered and sent statuses arrive late: the timeline ends at "read".
    await bus.produce(
        bus.inbound,
        bus.status_updated(
            provider_message_id="wamid.OUT1",
            status=ge.DELIVERY_STATUS_READ,
            at=base + timedelta(seconds=3),
            **common,
        ),
    )
    await env.settle()
    assert (await di.get()).messages[1].status == "pending"
    await bus.produce(
        bus.inbound,
        bus.outbound_sent(
            message_id=message_id,
            conversation_id=di.conversation_id,
            provider_message_id="wamid.OUT1",
            at=base + timedelta(seconds=1),
            **common,
        ),
    )
    for status, seconds in ((ge.DELIVERY_STATUS_DELIVERED, 2), (ge.DELIVERY_STATUS_SENT, 1)):
        await bus.produce(
            bus.inbound,
            bus.status_updated(
                provider_message_id="wamid.OUT1",
                status=status,
                at=base + timedelta(seconds=seconds),
                **common,
            ),
        )
    await env.settle()
    message = (await di.get()).messages[1]
    assert (message.message_id, message.status, message.provider_message_id) == (
        message_id,
        "read",
        "wamid.OUT1",
    )
    assert message.status_at.ToDatetime(tzinfo=UTC) == base + timedelta(seconds=3)
    changes = [
        e.payload.status
        for e in await env.events(t.tenant_id, "OutboundMessageStatusChanged")
        if e.payload.message_id == message_id
    ]
    assert changes == ["sent", "read"]

    # The usual order, each in its own batch: sent, then delivered, then read.
    later = await t.stub.SendMessage(
        cs.SendMessageRequest(conversation_id=di.conversation_id, content=text("Tomorrow!"))
    )
    await bus.produce(
        bus.inbound,
        bus.outbound_sent(
            message_id=later.message.message_id,
            conversation_id=di.conversation_id,
            provider_message_id="wamid.OUT2",
            **common,
        ),
    )
    await env.settle()
    for status in (ge.DELIVERY_STATUS_DELIVERED, ge.DELIVERY_STATUS_READ):
        await bus.produce(
            bus.inbound,
            bus.status_updated(provider_message_id="wamid.OUT2", status=status, **common),
        )
        await env.settle()
        [m] = [m for m in (await di.get()).messages if m.message_id == later.message.message_id]
        assert m.status == ("delivered" if status == ge.DELIVERY_STATUS_DELIVERED else "read")

    # A message the provider refused: failed, with the reason.
    refused = await t.stub.SendMessage(
        cs.SendMessageRequest(conversation_id=di.conversation_id, content=text("Again?"))
    )
    await bus.produce(
        bus.inbound,
        bus.outbound_failed(
            message_id=refused.message.message_id,
            conversation_id=di.conversation_id,
            error_code="131047",
            error_message="Re-engagement message",
            **common,
        ),
    )
    await env.settle()
    failed = (await di.get()).messages[-1]
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "131047",
        "Re-engagement message",
    )


# ------------------------------------------------------------------------------- bot, handoff


async def test_bot_answers_customer_asks_for_a_human_and_an_agent_is_assigned(env: Env) -> None:
    t = await env.tenant()
    await t.stub.UpsertTeam(cs.UpsertTeamRequest(team=ce.Team(team_id="support", name="Support")))
    await t.stub.UpsertAgent(
        cs.UpsertAgentRequest(
            agent=ce.Agent(
                agent_id="ana", display_name="Ana", team_ids=["support"], capacity=2, available=True
            )
        )
    )
    await t.stub.UpsertAgent(
        cs.UpsertAgentRequest(
            agent=ce.Agent(
                agent_id="bo", display_name="Bo", team_ids=["support"], capacity=2, available=False
            )
        )
    )
    await t.settings(
        bot_enabled=True,
        default_team_id="support",
        opening_hours=[
            ce.OpeningHours(weekdays=[1, 2, 3, 4, 5], open_time="09:00", close_time="18:00")
        ],
    )
    eve = await t.customer()
    await eve.says("Hi! What are your opening hours?")
    conversation = await eve.get()
    assert conversation.handler == cs.CONVERSATION_HANDLER_BOT
    assert [(m.direction, m.sender, m.text) for m in conversation.messages] == [
        (1, "", "Hi! What are your opening hours?"),
        (2, "bot", "Our opening hours: Mon-Fri 09:00-18:00 (UTC)."),
    ]
    assert conversation.assignee_agent_id == ""

    await eve.says("ok... can I talk to a human please")
    conversation = await eve.get()
    assert conversation.handler == cs.CONVERSATION_HANDLER_HUMAN
    assert (conversation.assignee_agent_id, conversation.team_id) == ("ana", "support")
    assert conversation.messages[-1].sender == "bot"
    assert "Connecting you with a person" in conversation.messages[-1].text
    handed = [e.payload for e in await env.events(t.tenant_id, "ConversationHandedOff")]
    assert [(h.handler, h.reason) for h in handed] == [
        ("bot", "bot_first"),
        ("human", "customer_request"),
    ]
    agents = await t.stub.ListAgents(cs.ListAgentsRequest(team_id="support"))
    assert [(a.agent.agent_id, a.open_conversations) for a in agents.agents] == [
        ("ana", 1),
        ("bo", 0),
    ]
    # The bot is quiet while a human has the conversation.
    await eve.says("hello?")
    assert (await eve.get()).messages[-1].direction == 1

    # ... and back to the bot: the agent's seat is freed.
    back = await t.stub.HandOffConversation(
        cs.HandOffConversationRequest(
            conversation_id=eve.conversation_id, to=cs.CONVERSATION_HANDLER_BOT, actor="agent:ana"
        )
    )
    assert back.conversation.handler == cs.CONVERSATION_HANDLER_BOT
    assert back.conversation.assignee_agent_id == ""
    # The bot cannot answer twice in a row (orders has no ListOrders yet, so the order question
    # is one it cannot answer either): it says what it can do, then hands off.
    await eve.says("where is my order?")
    assert (await eve.get()).messages[-1].sender == "bot:fallback"
    await eve.says("blah blah")
    conversation = await eve.get()
    assert conversation.handler == cs.CONVERSATION_HANDLER_HUMAN
    assert conversation.assignee_agent_id == "ana"
    handed = [e.payload for e in await env.events(t.tenant_id, "ConversationHandedOff")]
    assert handed[-1].reason == "bot_unanswered"

    # Round-robin: the next conversation needing a human goes to whoever waited longest —
    # only Ana is available; at capacity 2 she is full and the third waits in the team queue.
    bo = await t.stub.SetAgentAvailability(
        cs.SetAgentAvailabilityRequest(agent_id="bo", available=True)
    )
    assert bo.agent.available
    fay = await t.customer()
    await fay.says("agent")
    assert (await fay.get()).assignee_agent_id == "bo"


async def test_rules_label_assign_and_reply(env: Env) -> None:
    t = await env.tenant()
    await t.stub.UpsertTeam(cs.UpsertTeamRequest(team=ce.Team(team_id="billing", name="Bills")))
    await t.stub.UpsertAgent(
        cs.UpsertAgentRequest(agent=ce.Agent(agent_id="gus", team_ids=["billing"], available=True))
    )
    await t.stub.UpsertRule(
        cs.UpsertRuleRequest(
            rule=ce.AutomationRule(
                rule_id="refunds",
                name="Refunds to billing",
                enabled=True,
                priority=1,
                condition=ce.RuleCondition(keywords=["refund", "reembolso"]),
                action=ce.RuleAction(
                    add_labels=["billing"],
                    assign_team_id="billing",
                    reply_text="A billing specialist will help you.",
                ),
            )
        )
    )
    rules = await t.stub.ListRules(cs.ListRulesRequest())
    assert [r.rule_id for r in rules.rules] == ["refunds"]
    gil = await t.customer()
    await gil.says("Necesito un REEMBOLSO")
    conversation = await gil.get()
    assert list(conversation.labels) == ["billing"]
    assert (conversation.team_id, conversation.assignee_agent_id) == ("billing", "gus")
    assert conversation.messages[-1].sender == "automation:refunds"
    by_label = await t.stub.ListConversations(cs.ListConversationsRequest(label="billing"))
    assert [c.conversation_id for c in by_label.conversations] == [gil.conversation_id]
    by_agent = await t.stub.ListConversations(cs.ListConversationsRequest(assignee_agent_id="gus"))
    assert [c.conversation_id for c in by_agent.conversations] == [gil.conversation_id]
    by_team = await t.stub.ListConversations(cs.ListConversationsRequest(team_id="billing"))
    assert len(by_team.conversations) == 1
    bad = await rpc_error(
        t.stub.UpsertRule,
        cs.UpsertRuleRequest(
            rule=ce.AutomationRule(
                rule_id="x",
                condition=ce.RuleCondition(regex="(unclosed"),
                action=ce.RuleAction(reply_text="y"),
            )
        ),
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(bad.trailing_metadata())[FIELD_TRAILER] == "rule.condition.regex"


# ------------------------------------------------------------------------------- SLA


async def test_an_sla_breach_fires(env: Env) -> None:
    t = await env.tenant()
    ivy = await t.customer()
    await ivy.says("hello")
    await t.stub.SendMessage(
        cs.SendMessageRequest(
            conversation_id=ivy.conversation_id, content=text("Hi Ivy!"), agent_id="ana"
        )
    )
    await t.settings(first_response_target_seconds=1)
    hal = await t.customer()
    await hal.says("anyone there?")

    async def breached() -> bool:
        c = await hal.get()
        return any(b.kind == "first_response" for b in c.sla_breaches)

    await env.bus.wait_until(breached, 15, "first-response breach")
    [breach] = [
        e
        for e in await env.events(t.tenant_id, "SlaBreached")
        if e.aggregate_id == hal.conversation_id
    ]
    assert breach.event_id == domain.sla_breach_event_id(hal.conversation_id, "first_response", 1)
    assert (breach.payload.kind, breach.payload.cycle, breach.payload.target_seconds) == (
        "first_response",
        1,
        1,
    )
    # Ivy was answered in time: no breach; more ticks add nothing.
    ticks = env.timer.ticks
    await env.bus.wait_until(lambda: env.timer.ticks >= ticks + 3, 10, "timer ticks")
    assert [e.aggregate_id for e in await env.events(t.tenant_id, "SlaBreached")] == [
        hal.conversation_id
    ]


# ------------------------------------------------------------------------------- consent


async def test_an_opted_out_customer_receives_no_marketing_message(env: Env) -> None:
    t = await env.tenant()
    await t.settings(
        thank_you_template=ge.TemplateContent(name="thank_you_first", language="en"),
    )
    jo = await t.customer()  # opted in, then out of marketing on WhatsApp (STOP)
    kim = await t.customer()  # opted in (the business recorded it with its proof)
    lee = await t.customer()  # never said: marketing needs an opt-in
    bus = env.bus
    early = now() - timedelta(minutes=5)
    for who, granted, at in ((jo, True, early), (kim, True, early), (jo, False, now())):
        await bus.produce(
            bus.profile,
            bus.consent_changed(
                tenant=t.tenant_id,
                customer_id=who.customer_id,
                channel="whatsapp",
                purpose="marketing",
                granted=granted,
                at=at,
            ),
            source="profile",
        )
    await jo.says("STOP")
    await kim.says("hi")
    await lee.says("hello")

    refused = await rpc_error(
        t.stub.SendMessage,
        cs.SendMessageRequest(
            conversation_id=jo.conversation_id,
            content=text("20% off today!"),
            purpose=cs.MESSAGE_PURPOSE_MARKETING,
        ),
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "marketing consent on whatsapp withdrawn" in refused.details()
    refused = await rpc_error(
        t.stub.SendMessage,
        cs.SendMessageRequest(
            conversation_id=lee.conversation_id,
            content=text("20% off today!"),
            purpose=cs.MESSAGE_PURPOSE_MARKETING,
        ),
    )
    assert "no marketing opt-in recorded on whatsapp" in refused.details()
    ok = await t.stub.SendMessage(
        cs.SendMessageRequest(
            conversation_id=jo.conversation_id,
            content=text("Your order shipped"),
            purpose=cs.MESSAGE_PURPOSE_TRANSACTIONAL,
        )
    )
    assert ok.message.purpose == "transactional"

    # All pay for a first order (orders' OrderPaid, wired by type name): the payment
    # confirmation is transactional and reaches all; the thank-you the next day is marketing.
    paid = ((jo, "o-jo"), (kim, "o-kim"), (lee, "o-lee"))
    for who, order in paid:
        event, event_type = bus.foreign_event(
            tenant=t.tenant_id,
            event_type="parlay.orders.v1.OrderPaid",
            aggregate_id=order,
            fields={
                "order_id": order,
                "customer_id": who.customer_id,
                "total_minor": 24950,
                "currency": "MXN",
            },
        )
        await bus.produce(bus.orders, event, source="orders", event_type=event_type)
    await env.settle()
    for who, order in paid:
        last = (await who.get()).messages[-1]
        assert (last.text, last.sender) == (
            f"We received your payment for order {order}. Thank you!",
            "proactive:OrderPaid",
        )
    scheduled = {
        e.aggregate_id: e.payload
        for e in await env.events(t.tenant_id, "ProactiveMessageScheduled")
    }
    assert set(scheduled) == {jo.conversation_id, kim.conversation_id, lee.conversation_id}
    due = max(p.due_at.ToDatetime(tzinfo=UTC) for p in scheduled.values())
    assert due > now() + timedelta(hours=1)
    # A second purchase schedules nothing more.
    event, event_type = bus.foreign_event(
        tenant=t.tenant_id,
        event_type="parlay.orders.v1.OrderPaid",
        aggregate_id="o-kim-2",
        fields={"order_id": "o-kim-2", "customer_id": kim.customer_id},
    )
    await bus.produce(bus.orders, event, source="orders", event_type=event_type)
    await env.settle()
    assert len(await env.events(t.tenant_id, "ProactiveMessageScheduled")) == 3

    # The day after: the timer sends Kim her thank-you (as the approved template: her
    # WhatsApp window has closed by then) and suppresses Jo's and Lee's (no marketing consent).
    later = max(due, now() + timedelta(hours=25))
    await env.timer.tick(now=later)
    marketing = [
        e.payload
        for e in await env.events(t.tenant_id, "OutboundMessageRequested")
        if e.payload.purpose == "marketing"
    ]
    assert [(m.conversation_id, m.content.template.name, m.sender) for m in marketing] == [
        (kim.conversation_id, "thank_you_first", "proactive:thank_you")
    ]
    suppressed = {
        e.payload.conversation_id: (e.payload.reason, e.payload.purpose)
        for e in await env.events(t.tenant_id, "OutboundMessageSuppressed")
    }
    assert suppressed == {
        jo.conversation_id: ("no_consent", "marketing"),
        lee.conversation_id: ("no_consent", "marketing"),
    }
    for who in (jo, lee):
        assert all(m.purpose != "marketing" for m in (await who.get()).messages)
    await env.timer.tick(now=later + timedelta(seconds=1))  # nothing due twice
    assert len(await env.events(t.tenant_id, "OutboundMessageSuppressed")) == 2


async def test_payment_link_reaches_the_customer(env: Env) -> None:
    t = await env.tenant()
    lu = await t.customer()
    await lu.says("I'll pay by card")
    event, event_type = env.bus.foreign_event(
        tenant=t.tenant_id,
        event_type="parlay.payments.v1.PaymentLinkCreated",
        aggregate_id="pay-1",
        fields={
            "payment_id": "pay-1",
            "order_id": "o-1",
            "customer_id": lu.customer_id,
            "checkout_url": "https://checkout.stripe.test/c/pay_1",
        },
    )
    await env.bus.produce(env.bus.payments, event, source="payments", event_type=event_type)
    await env.settle()
    last = (await lu.get()).messages[-1]
    assert last.text == "Pay for your order o-1 here: https://checkout.stripe.test/c/pay_1"
    assert (last.direction, last.purpose) == (2, "transactional")


# ------------------------------------------------------------------------------- merges


async def test_merge_moves_the_conversation_under_the_survivor_and_unmerge_returns_it(
    env: Env,
) -> None:
    t = await env.tenant()
    mo = await t.customer()
    mo_tg = await t.customer("telegram", address="9001")
    await mo.says("hi on whatsapp")
    await mo_tg.says("hi on telegram", channel="telegram", address="9001")
    bus = env.bus
    await bus.produce(
        bus.profile,
        bus.profiles_merged(
            tenant=t.tenant_id, survivor=mo.customer_id, merged=mo_tg.customer_id, merge_id="m-1"
        ),
        source="profile",
    )
    await env.settle()
    listed = await t.stub.ListConversations(cs.ListConversationsRequest(customer_id=mo.customer_id))
    assert {c.conversation_id for c in listed.conversations} == {
        mo.conversation_id,
        mo_tg.conversation_id,
    }
    moved = await mo_tg.get()
    assert (moved.customer_id, moved.origin_customer_id) == (mo.customer_id, mo_tg.customer_id)
    # Messages from the merged customer's identity keep going to its timeline, under Mo.
    await mo_tg.says("still me", channel="telegram", address="9001")
    assert (await mo_tg.get()).messages[-1].text == "still me"

    await bus.produce(
        bus.profile,
        bus.profiles_merged(
            tenant=t.tenant_id,
            survivor=mo.customer_id,
            merged=mo_tg.customer_id,
            merge_id="m-1",
            undo=True,
        ),
        source="profile",
    )
    await env.settle()
    listed = await t.stub.ListConversations(cs.ListConversationsRequest(customer_id=mo.customer_id))
    assert [c.conversation_id for c in listed.conversations] == [mo.conversation_id]
    assert (await mo_tg.get()).customer_id == mo_tg.customer_id
    owners = [e.payload for e in await env.events(t.tenant_id, "ConversationOwnerChanged")]
    assert [(o.reason, o.customer_id) for o in owners] == [
        ("merged", mo.customer_id),
        ("unmerged", mo_tg.customer_id),
    ]


# ------------------------------------------------------------------------------- commands


async def test_lifecycle_notes_labels_read_and_assignment_commands(env: Env) -> None:
    t = await env.tenant()
    await t.stub.UpsertAgent(cs.UpsertAgentRequest(agent=ce.Agent(agent_id="ana", available=True)))
    nia = await t.customer()
    await nia.says("first")
    await nia.says("second")
    cid = nia.conversation_id
    c = await nia.get()
    assert (c.unread_count, c.status) == (2, cs.CONVERSATION_STATUS_OPEN)

    read = await t.stub.MarkRead(cs.MarkReadRequest(conversation_id=cid, actor="agent:ana"))
    assert read.conversation.unread_count == 0
    note = await t.stub.AddNote(
        cs.AddNoteRequest(
            conversation_id=cid, text="VIP, be nice", author="agent:ana", client_note_id="n1"
        )
    )
    again = await t.stub.AddNote(
        cs.AddNoteRequest(
            conversation_id=cid, text="VIP, be nice", author="agent:ana", client_note_id="n1"
        )
    )
    assert note == again
    labels = await t.stub.SetLabels(
        cs.SetLabelsRequest(conversation_id=cid, labels=["VIP", "vip", "returns"])
    )
    assert list(labels.conversation.labels) == ["returns", "vip"]
    assigned = await t.stub.AssignConversation(
        cs.AssignConversationRequest(conversation_id=cid, agent_id="ana")
    )
    assert assigned.conversation.assignee_agent_id == "ana"
    until = now() + timedelta(hours=2)
    snoozed = await t.stub.SnoozeConversation(
        cs.SnoozeConversationRequest(conversation_id=cid, until=to_timestamp(until))
    )
    assert snoozed.conversation.status == cs.CONVERSATION_STATUS_SNOOZED
    assert snoozed.conversation.snoozed_until.ToDatetime(tzinfo=UTC) == until
    by_status = await t.stub.ListConversations(
        cs.ListConversationsRequest(status=cs.CONVERSATION_STATUS_SNOOZED)
    )
    assert [x.conversation_id for x in by_status.conversations] == [cid]
    # The snooze ends when its time comes (the timer).
    await env.timer.tick(now=until + timedelta(seconds=1))
    assert (await nia.get()).status == cs.CONVERSATION_STATUS_OPEN
    pending = await t.stub.MarkConversationPending(
        cs.MarkConversationPendingRequest(conversation_id=cid)
    )
    assert pending.conversation.status == cs.CONVERSATION_STATUS_PENDING
    resolved = await t.stub.ResolveConversation(
        cs.ResolveConversationRequest(
            conversation_id=cid, expected_version=pending.conversation.version
        )
    )
    assert resolved.conversation.status == cs.CONVERSATION_STATUS_RESOLVED
    stale = await rpc_error(
        t.stub.ReopenConversation,
        cs.ReopenConversationRequest(
            conversation_id=cid, expected_version=pending.conversation.version
        ),
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    # A new inbound message reopens it.
    await nia.says("me again")
    c = await nia.get()
    assert (c.status, c.unread_count) == (cs.CONVERSATION_STATUS_OPEN, 1)
    assert [n.text for n in c.notes] == ["VIP, be nice"]
    reopened = [e.payload for e in await env.events(t.tenant_id, "ConversationStatusChanged")]
    assert [(s.status, s.reason) for s in reopened] == [
        ("snoozed", "agent"),
        ("open", "snooze_expired"),
        ("pending", "agent"),
        ("resolved", "agent"),
        ("open", "inbound_message"),
    ]

    # Another tenant cannot see or touch it.
    other = await env.tenant()
    for call, request in (
        (other.stub.GetConversation, cs.GetConversationRequest(conversation_id=cid)),
        (other.stub.MarkRead, cs.MarkReadRequest(conversation_id=cid)),
        (other.stub.SendMessage, cs.SendMessageRequest(conversation_id=cid, content=text("x"))),
        (other.stub.ResolveConversation, cs.ResolveConversationRequest(conversation_id=cid)),
    ):
        assert (await rpc_error(call, request)).code() == grpc.StatusCode.NOT_FOUND
    # Invalid arguments name the field.
    for call, request, field_name in (
        (t.stub.SendMessage, cs.SendMessageRequest(conversation_id=cid), "content"),
        (t.stub.SendMessage, cs.SendMessageRequest(content=text("x")), "conversation_id"),
        (
            t.stub.SendMessage,
            cs.SendMessageRequest(
                conversation_id=cid,
                content=ge.OutboundContent(media=ge.MediaContent(kind="image", url="ftp://x")),
            ),
            "content.media.url",
        ),
        (t.stub.SnoozeConversation, cs.SnoozeConversationRequest(conversation_id=cid), "until"),
        (t.stub.AddNote, cs.AddNoteRequest(conversation_id=cid), "text"),
        (t.stub.SetLabels, cs.SetLabelsRequest(conversation_id=cid, labels=[" "]), "labels"),
        (t.stub.HandOffConversation, cs.HandOffConversationRequest(conversation_id=cid), "to"),
        (t.stub.SearchConversations, cs.SearchConversationsRequest(), "query"),
        (t.stub.UpsertAgent, cs.UpsertAgentRequest(agent=ce.Agent()), "agent.agent_id"),
    ):
        err = await rpc_error(call, request)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, field_name
        assert dict(err.trailing_metadata())[FIELD_TRAILER] == field_name
    missing = await rpc_error(
        t.stub.AssignConversation,
        cs.AssignConversationRequest(conversation_id=cid, agent_id="nobody"),
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    no_bot = await rpc_error(
        t.stub.HandOffConversation,
        cs.HandOffConversationRequest(conversation_id=cid, to=cs.CONVERSATION_HANDLER_BOT),
    )
    assert no_bot.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_search_is_full_text_within_the_tenant(env: Env) -> None:
    t = await env.tenant()
    oz = await t.customer()
    pat = await t.customer()
    await oz.says("My blue sneakers arrived damaged", wait=False)
    await pat.says("Do you have red sneakers in size 42?", wait=False)
    await pat.says("never mind", wait=False)
    await env.settle()
    other = await env.tenant()
    stranger = await other.customer()
    await stranger.says("sneakers for the other tenant")

    hits = (await t.stub.SearchConversations(cs.SearchConversationsRequest(query="sneakers"))).hits
    assert [h.conversation.conversation_id for h in hits] == [
        pat.conversation_id,
        oz.conversation_id,
    ]
    assert hits[0].message.text == "Do you have red sneakers in size 42?"
    assert "[sneakers]" in hits[0].snippet
    page = await t.stub.SearchConversations(
        cs.SearchConversationsRequest(query="sneakers", page_size=1)
    )
    assert len(page.hits) == 1 and page.next_page_token
    rest = await t.stub.SearchConversations(
        cs.SearchConversationsRequest(
            query="sneakers", page_size=1, page_token=page.next_page_token
        )
    )
    assert [h.conversation.conversation_id for h in rest.hits] == [oz.conversation_id]
    phrase = await t.stub.SearchConversations(
        cs.SearchConversationsRequest(query='"blue sneakers" -red')
    )
    assert [h.conversation.conversation_id for h in phrase.hits] == [oz.conversation_id]


# ------------------------------------------------------------------------------- rebuild


READ_MODEL_QUERIES = {
    "conversations": "SELECT * FROM {s}.conversations WHERE tenant_id = ANY($1) "
    "ORDER BY conversation_id",
    "conversation_messages": "SELECT * FROM {s}.conversation_messages "
    "WHERE tenant_id = ANY($1) ORDER BY message_id",
    "conversation_notes": "SELECT * FROM {s}.conversation_notes WHERE tenant_id = ANY($1) "
    "ORDER BY note_id",
    "scheduled_messages": "SELECT * FROM {s}.scheduled_messages WHERE tenant_id = ANY($1) "
    "ORDER BY schedule_id",
    "inbox_config": "SELECT * FROM {s}.inbox_config WHERE tenant_id = ANY($1) "
    "ORDER BY tenant_id, kind, key",
    "sla_targets": "SELECT * FROM {s}.sla_targets WHERE tenant_id = ANY($1) ORDER BY tenant_id",
}


async def read_models(pool: asyncpg.Pool, schema: str, tenants: list[str]) -> dict[str, list]:
    return {
        name: [tuple(r) for r in await pool.fetch(q.format(s=schema), tenants)]
        for name, q in READ_MODEL_QUERIES.items()
    }


async def test_rebuild_from_zero_gives_identical_read_models(
    env: Env, module_runtimes, second_schema
) -> None:
    """Everything the module's tests did, rebuilt from the conversation topic alone."""
    await env.settle()
    await env.bus.wait_published(env.runtime)
    tenants = list(env.tenants)
    assert tenants, "runs after the other tests of the module"
    live = await read_models(env.pool, env.schema, tenants)
    assert live["conversations"] and live["conversation_messages"] and live["inbox_config"]
    assert live["conversation_notes"] and live["scheduled_messages"]

    rebuild = await module_runtimes.open(second_schema, "conversation")
    projector = rebuild.add_projector(
        unique_name("rebuild"),
        [env.bus.conversation],
        TimelineProjection(ConversationReadModel(second_schema)),
    )
    await module_runtimes.start(rebuild)
    await env.bus.wait_caught_up(projector)
    assert await read_models(rebuild.pool, second_schema, tenants) == live
    assert projector.stats.dead_lettered == 0
    await module_runtimes.stop(rebuild)
