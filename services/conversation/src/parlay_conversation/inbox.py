"""Application services shared by the timeline projector, the gRPC commands and the timer.

* `Writer` applies decided events to conversation states with the same `apply` the rebuild
  projection uses, collects the read-model rows they produce, and turns them into store events
  with explicit versions. The caller appends those (projector: `uow.emit`; commands and the timer:
  `store.append` in their transaction) and then saves the read models in the same transaction.
* `TenantConfig` is a tenant's inbox configuration (settings, rules, agents and their load) with
  the round-robin pick.
* `ConsentPolicy` answers from the local consent ledger (see docs/conversation.md for why it is
  local).
* `send_or_suppress` is how automations, proactive triggers and schedules send: consent, then the
  service window (a template where one is configured), else an OutboundMessageSuppressed.
* `Automation` applies the intents of `automation.plan` to a conversation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import automation, config, domain
from parlay_conversation.domain import ConversationEvent, ConversationState, Effect
from parlay_conversation.readmodel import ConversationReadModel
from parlay_kit.envelope import NewEvent, deterministic_event_id
from parlay_kit.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Meta:
    """What derived events carry about their cause."""

    correlation_id: str = ""
    causation_id: str = ""
    traceparent: str = ""


class Writer:
    """Decided events -> states, read-model rows and store events (explicit versions)."""

    def __init__(self, read_model: ConversationReadModel, topic: str) -> None:
        self.read_model = read_model
        self.topic = topic
        self.before: dict[str, ConversationState | None] = {}
        self.states: dict[str, ConversationState] = {}
        self.effects: list[Effect] = []
        self.config_rows: dict[tuple[str, str, str], config.ConfigRow] = {}
        self.new_events: list[NewEvent] = []

    def track(self, states: Mapping[str, ConversationState]) -> None:
        for cid, state in states.items():
            if cid not in self.states:
                self.before[cid] = state
                self.states[cid] = state

    def state(self, conversation_id: str) -> ConversationState | None:
        return self.states.get(conversation_id)

    def emit(self, events: Sequence[ConversationEvent], meta: Meta = Meta()) -> None:
        for e in events:
            current = self.states.get(e.aggregate_id)
            expected = (current.version if current is not None else 0) + 1
            if e.version != expected:
                raise domain.InvalidTransition(
                    f"{type(e.payload).__name__} version {e.version} for {e.aggregate_id} "
                    f"does not follow {expected - 1}"
                )
            state, effects = domain.apply_event(current, e)
            if e.aggregate_id not in self.before:
                self.before[e.aggregate_id] = current
            self.states[e.aggregate_id] = state
            self.effects += effects
            self.new_events.append(
                NewEvent(
                    event_id=e.event_id,
                    tenant_id=e.tenant_id,
                    aggregate_type=domain.AGGREGATE_TYPE,
                    aggregate_id=e.aggregate_id,
                    payload=e.payload,
                    occurred_at=e.occurred_at,
                    topic=self.topic,
                    aggregate_version=e.version,
                    correlation_id=meta.correlation_id,
                    causation_id=meta.causation_id,
                    traceparent=meta.traceparent,
                )
            )

    def emit_config(
        self,
        current: config.ConfigRow | None,
        *,
        tenant_id: str,
        kind: str,
        key: str,
        payload: ce.AgentSaved
        | ce.AgentAvailabilityChanged
        | ce.AgentRemoved
        | ce.TeamSaved
        | ce.TeamRemoved
        | ce.AutomationRuleSaved
        | ce.AutomationRuleRemoved
        | ce.InboxSettingsChanged,
        event_id: str,
        at: datetime,
        meta: Meta = Meta(),
    ) -> config.ConfigRow:
        version = (current.version if current is not None else 0) + 1
        row = config.apply_config(current, tenant_id, kind, version, payload)
        assert row is not None
        self.config_rows[(tenant_id, kind, key)] = row
        self.new_events.append(
            NewEvent(
                event_id=event_id,
                tenant_id=tenant_id,
                aggregate_type=kind,
                aggregate_id=config.aggregate_id(kind, tenant_id, key),
                payload=payload,
                occurred_at=at,
                topic=self.topic,
                aggregate_version=version,
                correlation_id=meta.correlation_id,
                causation_id=meta.causation_id,
                traceparent=meta.traceparent,
            )
        )
        return row

    async def save(self, conn: asyncpg.Connection) -> None:
        await self.read_model.save(conn, self.before, self.states, self.effects)
        await self.read_model.save_config(conn, list(self.config_rows.values()))


# ------------------------------------------------------------------------------- configuration


@dataclass
class TenantConfig:
    tenant_id: str
    settings: ce.InboxSettings
    rules: list[ce.AutomationRule] = field(default_factory=list)
    agents: dict[str, ce.Agent] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)
    last_assigned: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def bot_enabled(self) -> bool:
        return self.settings.bot_enabled

    @property
    def round_robin(self) -> bool:
        return self.settings.assignment_mode != config.ASSIGN_MANUAL

    @property
    def automates(self) -> bool:
        """Anything to do for an inbound message at all (most tenants of a bench: nothing)."""
        return bool(self.rules or self.agents or self.settings.bot_enabled)

    def agent_ok(self, agent_id: str, team_id: str = "") -> bool:
        agent = self.agents.get(agent_id)
        return agent is not None and agent.available and (not team_id or team_id in agent.team_ids)

    def pick_agent(self, team_id: str = "") -> str | None:
        """Round-robin among available agents with room: the one assigned least recently
        (ties by id), within the team if one is given."""
        candidates = [
            a
            for a in self.agents.values()
            if a.available
            and (not team_id or team_id in a.team_ids)
            and (a.capacity == 0 or self.loads.get(a.agent_id, 0) < a.capacity)
        ]
        if not candidates:
            return None
        candidates.sort(key=lambda a: (self.last_assigned.get(a.agent_id) or _EPOCH, a.agent_id))
        return candidates[0].agent_id

    def assigned(self, agent_id: str, previous: str, at: datetime) -> None:
        if previous and previous != agent_id:
            self.loads[previous] = max(0, self.loads.get(previous, 0) - 1)
        if agent_id and agent_id != previous:
            self.loads[agent_id] = self.loads.get(agent_id, 0) + 1
            self.last_assigned[agent_id] = at


async def load_tenant_configs(
    conn: asyncpg.Connection, rm: ConversationReadModel, tenant_ids: Sequence[str]
) -> dict[str, TenantConfig]:
    tenant_ids = list(dict.fromkeys(tenant_ids))
    if not tenant_ids:
        return {}
    settings = await rm.config_of(conn, tenant_ids, config.SETTINGS)
    rules = await rm.config_of(conn, tenant_ids, config.RULE)
    agents = await rm.config_of(conn, tenant_ids, config.AGENT)
    out: dict[str, TenantConfig] = {}
    for tenant in tenant_ids:
        rows = settings.get(tenant)
        tc = TenantConfig(
            tenant,
            config.parse_settings(rows[0].data) if rows else ce.InboxSettings(),
            [config.parse_rule(r.data) for r in rules.get(tenant, [])],
            {a.agent_id: a for a in (config.parse_agent(r.data) for r in agents.get(tenant, []))},
        )
        if tc.agents:
            for agent_id, (load, last) in (await rm.agent_loads(conn, tenant)).items():
                tc.loads[agent_id] = load
                tc.last_assigned[agent_id] = last
        out[tenant] = tc
    return out


# ------------------------------------------------------------------------------- consent


#: Channels consent is kept under another name (as profile keeps them: Twilio SMS is "sms").
CONSENT_CHANNEL_ALIASES = {"twilio": "sms"}


def consent_channel(channel: str) -> str:
    c = channel.strip().lower()
    return CONSENT_CHANNEL_ALIASES.get(c, c)


class ConsentPolicy:
    """Consent from the local ledger, with profile's rules (its CanContact answers the same):
    the latest ConsentChanged for the channel and purpose among the customer and every customer
    merged into it decides; without one, transactional messages are allowed until the customer
    opts out and marketing needs an opt-in (PARLAY_MARKETING_CONSENT_DEFAULT=true turns the
    marketing default into opt-out)."""

    def __init__(
        self, read_model: ConversationReadModel, *, marketing_default: bool = False
    ) -> None:
        self.read_model = read_model
        self.marketing_default = marketing_default

    async def allows(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        customer_id: str,
        channel: str,
        purpose: str,
    ) -> tuple[bool, str]:
        channel = consent_channel(channel)
        group = await self.read_model.merged_into(conn, tenant_id, customer_id)
        entry = await self.read_model.consent(conn, tenant_id, group, channel, purpose)
        if entry is None:
            if purpose == domain.PURPOSE_MARKETING and not self.marketing_default:
                return False, f"no {purpose} opt-in recorded on {channel}"
            return True, f"no {purpose} opt-out recorded on {channel}"
        granted, at, on = entry
        where = on if on not in ("", "*", "all") else "all channels"
        verb = "granted" if granted else "withdrawn"
        return granted, f"{purpose} consent on {where} {verb} at {at.isoformat()}"


# ------------------------------------------------------------------------------- sending


async def send_or_suppress(
    conn: asyncpg.Connection,
    writer: Writer,
    consent: ConsentPolicy,
    windows: Mapping[str, int],
    conversation_id: str,
    out: domain.Outbound,
    *,
    at: datetime,
    event_id: str,
    trigger: str,
    meta: Meta,
    template: ge.TemplateContent | None = None,
) -> str:
    """Request the message, or record why it was not sent. Returns "requested" or
    "suppressed:<reason>"."""
    state = writer.state(conversation_id)
    assert state is not None
    channel = out.channel or state.last_channel
    text = domain.render_outbound(out.content)

    def suppress(reason: str, detail: str) -> str:
        current = writer.state(conversation_id)
        assert current is not None
        writer.emit(
            domain.suppressed(
                current,
                message_id=out.message_id,
                reason=reason,
                detail=detail,
                purpose=out.purpose,
                text=text,
                trigger=trigger,
                at=at,
                event_id=event_id,
                channel=channel,
                schedule_id=out.schedule_id,
            ),
            meta,
        )
        log.info("conversation %s: %s not sent (%s): %s", conversation_id, trigger, reason, detail)
        return f"suppressed:{reason}"

    allowed, why = await consent.allows(conn, state.tenant_id, state.owner, channel, out.purpose)
    if not allowed:
        return suppress("no_consent", why)
    try:
        events, _ = domain.decide_send(state, out, at=at, windows=windows, event_id=event_id)
    except FailedPrecondition as exc:
        if template is None or "window" not in str(exc):
            reason = "window_closed" if "window" in str(exc) else "no_address"
            return suppress(reason, str(exc))
        content = ge.OutboundContent(template=template)
        try:
            events, _ = domain.decide_send(
                state, replace(out, content=content), at=at, windows=windows, event_id=event_id
            )
        except FailedPrecondition as again:
            return suppress("no_address", str(again))
    except InvalidArgument as exc:
        return suppress("no_address", str(exc))
    writer.emit(events, meta)
    return "requested"


# ------------------------------------------------------------------------------- automation


class OrderStatusProvider(Protocol):
    """Answers "where is my order?" for a customer (and those merged into it); None when it
    cannot (no order, orders unreachable)."""

    async def answer(self, tenant_id: str, customer_ids: Sequence[str]) -> str | None: ...


def text_content(text: str) -> ge.OutboundContent:
    return ge.OutboundContent(text=ge.TextContent(body=text))


@dataclass
class Automation:
    """Applies rules, the bot and auto-assignment to a conversation after an inbound message."""

    read_model: ConversationReadModel
    consent: ConsentPolicy
    windows: Mapping[str, int]
    order_status: OrderStatusProvider | None = None

    async def after_inbound(
        self,
        conn: asyncpg.Connection,
        writer: Writer,
        tc: TenantConfig,
        conversation_id: str,
        msg: domain.InboundMessage,
        meta: Meta,
    ) -> None:
        if not tc.automates:
            return
        state = writer.state(conversation_id)
        assert state is not None
        intents: list[automation.Intent] = automation.plan(
            state,
            text=msg.text,
            channel=msg.channel,
            at=msg.occurred_at,
            settings=tc.settings,
            rules=tc.rules,
            answers_business=automation.answers_the_business(msg.content),
        )
        src = msg.source_event_id
        n = 0
        while intents:
            intent = intents.pop(0)
            n += 1
            ids = _ids(src, n)
            if isinstance(intent, automation.LookUpOrderStatus):
                answer = await self._order_status(tc.tenant_id, writer, conversation_id, conn)
                current = writer.state(conversation_id)
                assert current is not None
                if answer:
                    intents.insert(0, automation.Reply(answer, domain.SENDER_BOT))
                else:
                    intents[0:0] = automation.unanswered(current, tc.settings)
                continue
            await self.apply_intent(
                conn,
                writer,
                tc,
                conversation_id,
                intent,
                at=msg.occurred_at,
                ids=ids,
                meta=meta,
                trigger="inbound_message",
                message_id=deterministic_event_id(src, "reply", str(n)),
            )
        state = writer.state(conversation_id)
        assert state is not None
        if state.handler == domain.HANDLER_HUMAN and state.status != domain.STATUS_RESOLVED:
            self.ensure_assigned(
                writer,
                tc,
                conversation_id,
                team_id="",
                reason="round_robin",
                at=msg.occurred_at,
                ids=_ids(src, 0),
                meta=meta,
            )

    async def _order_status(
        self, tenant_id: str, writer: Writer, conversation_id: str, conn: asyncpg.Connection
    ) -> str | None:
        if self.order_status is None:
            return None
        state = writer.state(conversation_id)
        assert state is not None
        customers = await self.read_model.merged_into(conn, tenant_id, state.owner)
        try:
            return await self.order_status.answer(tenant_id, customers)
        except Exception as exc:  # orders down: the bot hands off rather than guessing
            log.warning("order status for %s unavailable: %s", conversation_id, exc)
            return None

    async def apply_intent(
        self,
        conn: asyncpg.Connection,
        writer: Writer,
        tc: TenantConfig,
        conversation_id: str,
        intent: automation.Intent,
        *,
        at: datetime,
        ids: Callable[[str], str],
        meta: Meta,
        trigger: str,
        message_id: str,
    ) -> None:
        state = writer.state(conversation_id)
        assert state is not None
        if isinstance(intent, automation.AddLabels):
            writer.emit(
                domain.decide_labels(
                    state, [*state.labels, *intent.labels], actor=intent.actor, at=at, event_id=ids
                ),
                meta,
            )
        elif isinstance(intent, automation.Assign):
            if intent.agent_id and intent.agent_id not in tc.agents:
                log.warning("rule assigns unknown agent %s; ignored", intent.agent_id)
                if intent.team_id:
                    self.assign(
                        writer,
                        tc,
                        conversation_id,
                        "",
                        intent.team_id,
                        intent.reason,
                        at,
                        ids,
                        meta,
                    )
                return
            if intent.agent_id:
                self.assign(
                    writer,
                    tc,
                    conversation_id,
                    intent.agent_id,
                    intent.team_id or state.team_id,
                    intent.reason,
                    at,
                    ids,
                    meta,
                )
            else:
                self.ensure_assigned(
                    writer,
                    tc,
                    conversation_id,
                    team_id=intent.team_id,
                    reason=intent.reason,
                    at=at,
                    ids=ids,
                    meta=meta,
                )
        elif isinstance(intent, automation.HandOff):
            self.hand_off(
                writer,
                tc,
                conversation_id,
                intent.to,
                intent.reason,
                team_id=intent.team_id,
                actor="bot"
                if intent.reason in ("customer_request", "bot_unanswered")
                else "automation",
                at=at,
                ids=ids,
                meta=meta,
            )
        elif isinstance(intent, automation.Reply):
            await send_or_suppress(
                conn,
                writer,
                self.consent,
                self.windows,
                conversation_id,
                domain.Outbound(
                    message_id=message_id,
                    content=text_content(intent.text),
                    sender=intent.sender,
                    purpose=domain.PURPOSE_TRANSACTIONAL,
                ),
                at=at,
                event_id=ids("reply"),
                trigger=trigger,
                meta=meta,
            )

    def assign(
        self,
        writer: Writer,
        tc: TenantConfig,
        conversation_id: str,
        agent_id: str,
        team_id: str,
        reason: str,
        at: datetime,
        ids: Callable[[str], str],
        meta: Meta,
    ) -> None:
        state = writer.state(conversation_id)
        assert state is not None
        events = domain.decide_assign(
            state,
            agent_id=agent_id,
            team_id=team_id,
            reason=reason,
            actor="system",
            at=at,
            event_id=ids,
        )
        if events:
            tc.assigned(agent_id, state.assignee_agent_id, at)
        writer.emit(events, meta)

    def ensure_assigned(
        self,
        writer: Writer,
        tc: TenantConfig,
        conversation_id: str,
        *,
        team_id: str,
        reason: str,
        at: datetime,
        ids: Callable[[str], str],
        meta: Meta,
    ) -> None:
        """Keep a suitable assignee, else pick one round-robin (within the team); with nobody
        available the conversation waits in the team's queue."""
        state = writer.state(conversation_id)
        assert state is not None
        team = team_id or state.team_id or tc.settings.default_team_id
        if state.assignee_agent_id and tc.agent_ok(state.assignee_agent_id, team):
            if team != state.team_id:
                self.assign(
                    writer,
                    tc,
                    conversation_id,
                    state.assignee_agent_id,
                    team,
                    reason,
                    at,
                    ids,
                    meta,
                )
            return
        agent = tc.pick_agent(team) if tc.round_robin else None
        if agent is None and not tc.agents:
            if team and team != state.team_id:
                self.assign(writer, tc, conversation_id, "", team, reason, at, ids, meta)
            return
        self.assign(writer, tc, conversation_id, agent or "", team, reason, at, ids, meta)

    def hand_off(
        self,
        writer: Writer,
        tc: TenantConfig,
        conversation_id: str,
        to: str,
        reason: str,
        *,
        team_id: str,
        actor: str,
        at: datetime,
        ids: Callable[[str], str],
        meta: Meta,
        agent_id: str = "",
    ) -> None:
        state = writer.state(conversation_id)
        assert state is not None
        writer.emit(
            domain.decide_handoff(state, to=to, reason=reason, actor=actor, at=at, event_id=ids),
            meta,
        )
        if to == domain.HANDLER_HUMAN:
            if agent_id:
                self.assign(
                    writer,
                    tc,
                    conversation_id,
                    agent_id,
                    team_id or state.team_id,
                    reason,
                    at,
                    ids,
                    meta,
                )
            else:
                self.ensure_assigned(
                    writer,
                    tc,
                    conversation_id,
                    team_id=team_id,
                    reason="handoff",
                    at=at,
                    ids=ids,
                    meta=meta,
                )
        elif state.assignee_agent_id:
            # Back to the bot: the agent's seat is free again (the team stays).
            self.assign(writer, tc, conversation_id, "", state.team_id, "handoff", at, ids, meta)


def _ids(source: str, n: int) -> Callable[[str], str]:
    return lambda kind: domain.event_id_for(source, f"auto:{n}:{kind}")
