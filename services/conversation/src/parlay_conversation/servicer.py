"""gRPC entry point: parlay.conversation.v1.ConversationService.

Every call is scoped to the caller's tenant (`current_tenant()`); another tenant's conversations,
agents and rules do not exist for it (NOT_FOUND). Every command follows one path: validate
(INVALID_ARGUMENT naming the field), lock and load the aggregate, decide with the pure rules,
append the events with explicit versions via the event store in the same transaction as the
read-model update (the same `apply` as the rebuild projection). A taken version or a stale
`expected_version` is ABORTED. Pages use opaque keyset tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.conversation.v1 import conversation_service_pb2 as cs
from parlay.conversation.v1 import conversation_service_pb2_grpc as cs_grpc
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import config, domain, render
from parlay_conversation.domain import ConversationState
from parlay_conversation.inbox import (
    Automation,
    ConsentPolicy,
    Meta,
    TenantConfig,
    Writer,
    load_tenant_configs,
)
from parlay_conversation.readmodel import ConversationFilter, ConversationReadModel
from parlay_conversation.readpool import ReadPool
from parlay_kit import topics
from parlay_kit.auth import current_tenant
from parlay_kit.envelope import (
    decode,
    deterministic_event_id,
    from_timestamp,
    to_timestamp,
    unpack,
    utcnow,
)
from parlay_kit.errors import (
    AlreadyExists,
    ConcurrencyError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from parlay_kit.eventstore import EventStore

SERVICE_NAME = "parlay.conversation.v1.ConversationService"

DEFAULT_CONVERSATIONS_PAGE = 50
DEFAULT_MESSAGES_PAGE = 100
MAX_PAGE = 500
MAX_TEXT = 4096
MAX_NOTE = 10_000
MAX_CLIENT_ID = 128

_STATUS_NAME = {v: k for k, v in render.STATUSES.items()}

T = TypeVar("T")


# ------------------------------------------------------------------------------- rendering


conversation_to_proto = render.conversation_to_proto
message_to_proto = render.message_to_proto


def requested_to_proto(payload: ce.OutboundMessageRequested, at: datetime) -> cs.Message:
    """The message as SendMessage answered it first (built from the stored event)."""
    return cs.Message(
        message_id=payload.message_id,
        direction=ce.MESSAGE_DIRECTION_OUTBOUND,
        channel=payload.channel,
        channel_account_id=payload.channel_account_id,
        text=payload.text,
        occurred_at=to_timestamp(at),
        status=domain.MSG_PENDING,
        sender=payload.sender,
        outbound_content=payload.content,
        purpose=payload.purpose,
        client_message_id=payload.client_message_id,
        status_at=to_timestamp(at),
    )


def page_size(value: int, default: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(value or default, MAX_PAGE)


def encode_token(kind: str, at: datetime, key: str | int) -> str:
    raw = json.dumps({"k": kind, "t": at.isoformat(), "id": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, kind: str) -> tuple[datetime, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data["k"] != kind:
            raise ValueError("token of another listing")
        return datetime.fromisoformat(data["t"]), data["id"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("page_token", "is not a token this listing returned") from exc


# ------------------------------------------------------------------------------- validation


def _required(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    return value


def _client_key(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > MAX_CLIENT_ID:
        raise InvalidArgument(field, f"at most {MAX_CLIENT_ID} characters")
    return value


def _actor(value: str) -> str:
    value = value.strip()
    if len(value) > 200:
        raise InvalidArgument("actor", "at most 200 characters")
    return value or "api"


def _http_url(value: str) -> bool:
    return value.startswith(("https://", "http://")) and len(value) <= 2048


def validate_content(content: ge.OutboundContent, field: str = "content") -> str:
    kind = content.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(field, "is required: text, template, interactive or media")
    if kind == "text":
        body = content.text.body
        if not body.strip():
            raise InvalidArgument(f"{field}.text.body", "is required")
        if len(body) > MAX_TEXT:
            raise InvalidArgument(f"{field}.text.body", f"at most {MAX_TEXT} characters")
    elif kind == "template":
        t = content.template
        if not t.name.strip():
            raise InvalidArgument(f"{field}.template.name", "is required")
        if not t.language.strip():
            raise InvalidArgument(f"{field}.template.language", "is required (e.g. en_US)")
    elif kind == "interactive":
        i = content.interactive
        if not i.body.strip():
            raise InvalidArgument(f"{field}.interactive.body", "is required")
        if not i.buttons and not i.sections:
            raise InvalidArgument(f"{field}.interactive", "needs buttons or list sections")
        if i.buttons and i.sections:
            raise InvalidArgument(f"{field}.interactive", "buttons or a list, not both")
        if len(i.buttons) > 3:
            raise InvalidArgument(f"{field}.interactive.buttons", "at most 3 buttons")
        for b in i.buttons:
            if not b.id.strip() or not b.title.strip():
                raise InvalidArgument(f"{field}.interactive.buttons", "need an id and a title")
        if i.sections and not i.list_button_text.strip():
            raise InvalidArgument(f"{field}.interactive.list_button_text", "is required")
        for s in i.sections:
            for r in s.rows:
                if not r.id.strip() or not r.title.strip():
                    raise InvalidArgument(f"{field}.interactive.sections", "rows need id, title")
    elif kind == "media":
        m = content.media
        if m.kind not in ("image", "audio", "video", "document", "sticker"):
            raise InvalidArgument(
                f"{field}.media.kind", "must be image, audio, video, document or sticker"
            )
        if not _http_url(m.url):
            raise InvalidArgument(f"{field}.media.url", "must be an http(s) URL")
    return kind


def _purpose(value: int) -> str:
    if value == cs.MESSAGE_PURPOSE_MARKETING:
        return domain.PURPOSE_MARKETING
    if value in (cs.MESSAGE_PURPOSE_UNSPECIFIED, cs.MESSAGE_PURPOSE_TRANSACTIONAL):
        return domain.PURPOSE_TRANSACTIONAL
    raise InvalidArgument("purpose", "unknown purpose")


def _new_ids() -> Callable[[str], str]:
    base = str(uuid.uuid4())
    return lambda kind: deterministic_event_id(base, kind)


# ------------------------------------------------------------------------------- servicer


class ConversationServicer(cs_grpc.ConversationServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        read_model: ConversationReadModel,
        store: EventStore | None = None,
        *,
        topic: str = topics.CONVERSATION,
        windows: Mapping[str, int] | None = None,
        consent: ConsentPolicy | None = None,
        automation: Automation | None = None,
        clock: Callable[[], datetime] = utcnow,
        read_pool: asyncpg.Pool | ReadPool | None = None,
    ) -> None:
        self.pool = pool
        #: Queries (List/Get/Search and the configuration listings) run on this pool.
        self.read_pool: asyncpg.Pool | ReadPool = read_pool or pool
        self.read_model = read_model
        self.store = store or EventStore(read_model.schema, "conversation")
        self.topic = topic
        self.windows = dict(domain.DEFAULT_SERVICE_WINDOWS if windows is None else windows)
        self.consent = consent or ConsentPolicy(read_model)
        self.automation = automation or Automation(read_model, self.consent, self.windows)
        self.clock = clock

    # -------------------------------------------------------------- plumbing

    async def _commit(self, conn: asyncpg.Connection, writer: Writer) -> None:
        if not writer.new_events:
            return
        stored = await self.store.append(conn, writer.new_events)
        if any(s.duplicate for s in stored):
            # Someone else already appended these exact events (a concurrent retry).
            raise ConcurrencyError("the same change was just made concurrently; re-read")
        await writer.save(conn)

    async def _command(
        self,
        conversation_id: str,
        decide: Callable[[asyncpg.Connection, Writer, ConversationState], Awaitable[T]],
        *,
        expected_version: int = 0,
    ) -> tuple[T, ConversationState]:
        tenant = current_tenant()
        conversation_id = _required(conversation_id, "conversation_id")
        async with self.pool.acquire() as conn, conn.transaction():
            state = await self.read_model.get(conn, tenant, conversation_id, for_update=True)
            if state is None:
                raise NotFound(f"conversation {conversation_id} not found")
            domain.check_version(state, expected_version)
            writer = Writer(self.read_model, self.topic)
            writer.track({conversation_id: state})
            result = await decide(conn, writer, state)
            await self._commit(conn, writer)
            after = writer.state(conversation_id)
            assert after is not None
            return result, after

    def _render(self, state: ConversationState) -> cs.Conversation:
        return conversation_to_proto(state, windows=self.windows, now=self.clock())

    async def _tenant_config(self, conn: asyncpg.Connection, tenant: str) -> TenantConfig:
        return (await load_tenant_configs(conn, self.read_model, [tenant]))[tenant]

    # -------------------------------------------------------------- queries

    async def ListConversations(  # noqa: N802 - gRPC method name
        self, request: cs.ListConversationsRequest, context: Any = None
    ) -> cs.ListConversationsResponse:
        tenant = current_tenant()
        limit = page_size(request.page_size, DEFAULT_CONVERSATIONS_PAGE)
        after = None
        if request.page_token:
            at, conversation_id = decode_token(request.page_token, "conversations")
            if not isinstance(conversation_id, str):
                raise InvalidArgument("page_token", "is not a token this listing returned")
            after = (at, conversation_id)
        if request.status and request.status not in _STATUS_NAME:
            raise InvalidArgument("status", "unknown status")
        filters = ConversationFilter(
            customer_id=request.customer_id.strip(),
            status=_STATUS_NAME.get(request.status, ""),
            assignee_agent_id=request.assignee_agent_id.strip(),
            team_id=request.team_id.strip(),
            channel=request.channel.strip().lower(),
            label=request.label.strip().lower(),
        )
        async with self.read_pool.acquire() as conn:
            rows = await self.read_model.list_page(
                conn, tenant, filters, after=after, limit=limit + 1
            )
        now = self.clock()
        response = cs.ListConversationsResponse()
        for api, contacts, _at, _cid in rows[:limit]:
            conversation = response.conversations.add()
            conversation.MergeFromString(api)
            render.add_windows(conversation, contacts, self.windows, now)
        if len(rows) > limit:
            _api, _contacts, last_at, last_id = rows[limit - 1]
            response.next_page_token = encode_token("conversations", last_at, last_id)
        return response

    async def GetConversation(  # noqa: N802 - gRPC method name
        self, request: cs.GetConversationRequest, context: Any = None
    ) -> cs.GetConversationResponse:
        tenant = current_tenant()
        conversation_id = request.conversation_id.strip()
        if not conversation_id:
            raise InvalidArgument("conversation_id", "is required")
        limit = page_size(request.page_size, DEFAULT_MESSAGES_PAGE)
        after = None
        if request.page_token:
            at, seq = decode_token(request.page_token, f"messages:{conversation_id}")
            if not isinstance(seq, int):
                raise InvalidArgument("page_token", "is not a token this listing returned")
            after = (at, seq)
        async with self.read_pool.acquire() as conn:
            page = await self.read_model.conversation_page(
                conn,
                tenant,
                conversation_id,
                after=after,
                limit=limit,
                with_notes=after is None,
            )
        if page is None:
            raise NotFound(f"conversation {conversation_id} not found")
        response = cs.GetConversationResponse()
        conversation = response.conversation
        conversation.MergeFromString(page.blob)
        render.add_windows(conversation, page.contacts, self.windows, self.clock())
        if page.last is not None:
            response.next_page_token = encode_token(
                f"messages:{conversation_id}", page.last[0], page.last[1]
            )
        return response

    async def SearchConversations(  # noqa: N802 - gRPC method name
        self, request: cs.SearchConversationsRequest, context: Any = None
    ) -> cs.SearchConversationsResponse:
        tenant = current_tenant()
        query = _required(request.query, "query")
        if len(query) > 500:
            raise InvalidArgument("query", "at most 500 characters")
        limit = page_size(request.page_size, DEFAULT_CONVERSATIONS_PAGE)
        after = None
        if request.page_token:
            at, conversation_id = decode_token(request.page_token, f"search:{query}")
            if not isinstance(conversation_id, str):
                raise InvalidArgument("page_token", "is not a token this listing returned")
            after = (at, conversation_id)
        async with self.read_pool.acquire() as conn:
            hits = await self.read_model.search(conn, tenant, query, after=after, limit=limit + 1)
        now = self.clock()
        response = cs.SearchConversationsResponse(
            hits=[
                cs.SearchHit(
                    conversation=conversation_to_proto(s, windows=self.windows, now=now),
                    message=message_to_proto(m),
                    snippet=snippet,
                )
                for s, m, snippet in hits[:limit]
            ]
        )
        if len(hits) > limit:
            _s, m, _ = hits[limit - 1]
            response.next_page_token = encode_token(
                f"search:{query}", m.occurred_at, m.conversation_id
            )
        return response

    # -------------------------------------------------------------- sending

    async def SendMessage(  # noqa: N802 - gRPC method name
        self, request: cs.SendMessageRequest, context: Any = None
    ) -> cs.SendMessageResponse:
        kind = validate_content(request.content)
        purpose = _purpose(request.purpose)
        client_id = _client_key(request.client_message_id, "client_message_id")
        channel = request.channel.strip().lower()
        account = request.channel_account_id.strip()
        if account and not channel:
            raise InvalidArgument("channel", "is required with channel_account_id")
        agent_id = request.agent_id.strip()
        del kind

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> cs.Message:
            if client_id:
                message_id = domain.outbound_message_id(
                    state.tenant_id, state.conversation_id, client_id
                )
                first = await self._first_result(conn, state.tenant_id, message_id)
                if first is not None:
                    payload, at = first
                    if (payload.content, payload.channel if channel else "") != (
                        request.content,
                        channel,
                    ):
                        raise AlreadyExists(
                            f"client_message_id {client_id!r} was already used for another "
                            "message in this conversation"
                        )
                    return requested_to_proto(payload, at)
            else:
                message_id = str(uuid.uuid4())
            domain.check_version(state, request.expected_version)
            target = channel or state.last_channel
            allowed, why = await self.consent.allows(
                conn, state.tenant_id, state.owner, target, purpose
            )
            if not allowed:
                raise FailedPrecondition(
                    f"the customer cannot receive {purpose} messages on {target}: {why}"
                )
            fallback = None
            if channel and state.contact(channel) is None:
                customers = await self.read_model.merged_into(conn, state.tenant_id, state.owner)
                addresses = await self.read_model.identities_of(
                    conn, state.tenant_id, customers, channel
                )
                if addresses:
                    fallback = domain.ChannelContact(channel, account, addresses[0], None)
            out = domain.Outbound(
                message_id=message_id,
                content=request.content,
                sender=domain.agent_sender(agent_id),
                purpose=purpose,
                channel=channel,
                channel_account_id=account,
                client_message_id=client_id,
                fallback_contact=fallback,
            )
            at = self.clock()
            events, _ = domain.decide_send(
                state,
                out,
                at=at,
                windows=self.windows,
                event_id=deterministic_event_id(message_id, "requested"),
            )
            writer.emit(events, Meta())
            payload = events[0].payload
            assert isinstance(payload, ce.OutboundMessageRequested)
            return requested_to_proto(payload, at)

        message, _state = await self._command(request.conversation_id, decide)
        return cs.SendMessageResponse(
            message=message, conversation_id=request.conversation_id.strip()
        )

    async def _first_result(
        self, conn: asyncpg.Connection, tenant: str, message_id: str
    ) -> tuple[ce.OutboundMessageRequested, datetime] | None:
        row = await conn.fetchrow(
            f"""SELECT envelope FROM {self.read_model.schema}.events
                WHERE event_id = $1 AND tenant_id = $2""",
            uuid.UUID(deterministic_event_id(message_id, "requested")),
            tenant,
        )
        if row is None:
            return None
        envelope = decode(bytes(row[0]))
        payload = unpack(envelope)
        assert isinstance(payload, ce.OutboundMessageRequested)
        return payload, from_timestamp(envelope.occurred_at)

    # -------------------------------------------------------------- lifecycle

    async def _status(
        self,
        conversation_id: str,
        status: str,
        actor: str,
        expected: int,
        until: datetime | None = None,
    ) -> cs.Conversation:
        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> None:
            writer.emit(
                domain.decide_status_change(
                    state,
                    status,
                    actor=actor,
                    reason="agent",
                    at=self.clock(),
                    event_id=_new_ids(),
                    snoozed_until=until,
                )
            )
            if status == domain.STATUS_OPEN and state.status == domain.STATUS_RESOLVED:
                tc = await self._tenant_config(conn, state.tenant_id)
                current = writer.state(state.conversation_id)
                assert current is not None
                if current.handler == domain.HANDLER_HUMAN:
                    self.automation.ensure_assigned(
                        writer,
                        tc,
                        state.conversation_id,
                        team_id="",
                        reason="round_robin",
                        at=self.clock(),
                        ids=_new_ids(),
                        meta=Meta(),
                    )

        _, state = await self._command(conversation_id, decide, expected_version=expected)
        return self._render(state)

    async def SnoozeConversation(  # noqa: N802 - gRPC method name
        self, request: cs.SnoozeConversationRequest, context: Any = None
    ) -> cs.SnoozeConversationResponse:
        if not request.HasField("until"):
            raise InvalidArgument("until", "is required")
        until = from_timestamp(request.until)
        if until <= self.clock():
            raise InvalidArgument("until", "must be in the future")
        conversation = await self._status(
            request.conversation_id,
            domain.STATUS_SNOOZED,
            _actor(request.actor),
            request.expected_version,
            until,
        )
        return cs.SnoozeConversationResponse(conversation=conversation)

    async def ResolveConversation(  # noqa: N802 - gRPC method name
        self, request: cs.ResolveConversationRequest, context: Any = None
    ) -> cs.ResolveConversationResponse:
        conversation = await self._status(
            request.conversation_id,
            domain.STATUS_RESOLVED,
            _actor(request.actor),
            request.expected_version,
        )
        return cs.ResolveConversationResponse(conversation=conversation)

    async def ReopenConversation(  # noqa: N802 - gRPC method name
        self, request: cs.ReopenConversationRequest, context: Any = None
    ) -> cs.ReopenConversationResponse:
        conversation = await self._status(
            request.conversation_id,
            domain.STATUS_OPEN,
            _actor(request.actor),
            request.expected_version,
        )
        return cs.ReopenConversationResponse(conversation=conversation)

    async def MarkConversationPending(  # noqa: N802 - gRPC method name
        self, request: cs.MarkConversationPendingRequest, context: Any = None
    ) -> cs.MarkConversationPendingResponse:
        conversation = await self._status(
            request.conversation_id,
            domain.STATUS_PENDING,
            _actor(request.actor),
            request.expected_version,
        )
        return cs.MarkConversationPendingResponse(conversation=conversation)

    # -------------------------------------------------------------- assignment, handoff

    async def AssignConversation(  # noqa: N802 - gRPC method name
        self, request: cs.AssignConversationRequest, context: Any = None
    ) -> cs.AssignConversationResponse:
        agent_id = request.agent_id.strip()
        team_id = request.team_id.strip()
        if agent_id:
            config.check_id("agent_id", agent_id)
        if team_id:
            config.check_id("team_id", team_id)
        if request.auto and agent_id:
            raise InvalidArgument("auto", "either an agent_id or auto, not both")
        actor = _actor(request.actor)

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> None:
            tc = await self._tenant_config(conn, state.tenant_id)
            await self._check_team(conn, state.tenant_id, team_id)
            agent = agent_id
            reason = "manual"
            if request.auto:
                picked = tc.pick_agent(team_id)
                if picked is None:
                    raise FailedPrecondition(
                        "no available agent with free capacity"
                        + (f" in team {team_id}" if team_id else "")
                    )
                agent, reason = picked, "round_robin"
            elif agent and agent not in tc.agents:
                raise NotFound(f"agent {agent} not found")
            writer.emit(
                domain.decide_assign(
                    state,
                    agent_id=agent,
                    team_id=team_id,
                    reason=reason,
                    actor=actor,
                    at=self.clock(),
                    event_id=_new_ids(),
                )
            )

        _, state = await self._command(
            request.conversation_id, decide, expected_version=request.expected_version
        )
        return cs.AssignConversationResponse(conversation=self._render(state))

    async def _check_team(self, conn: asyncpg.Connection, tenant: str, team_id: str) -> None:
        if not team_id:
            return
        rows = await self.read_model.config_rows(conn, [(tenant, config.TEAM, team_id)])
        row = rows.get((tenant, config.TEAM, team_id))
        if row is None or row.removed:
            raise NotFound(f"team {team_id} not found")

    async def HandOffConversation(  # noqa: N802 - gRPC method name
        self, request: cs.HandOffConversationRequest, context: Any = None
    ) -> cs.HandOffConversationResponse:
        to = {
            cs.CONVERSATION_HANDLER_BOT: domain.HANDLER_BOT,
            cs.CONVERSATION_HANDLER_HUMAN: domain.HANDLER_HUMAN,
        }.get(request.to)
        if to is None:
            raise InvalidArgument("to", "is required: the bot or a human")
        team_id = request.team_id.strip()
        agent_id = request.agent_id.strip()
        if team_id:
            config.check_id("team_id", team_id)
        if agent_id:
            config.check_id("agent_id", agent_id)
        if to == domain.HANDLER_BOT and (team_id or agent_id):
            raise InvalidArgument("to", "team_id and agent_id apply to a human handoff")
        actor = _actor(request.actor)

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> None:
            tc = await self._tenant_config(conn, state.tenant_id)
            if to == domain.HANDLER_BOT and not tc.bot_enabled:
                raise FailedPrecondition(
                    "the bot is not enabled for this tenant (InboxSettings.bot_enabled)"
                )
            await self._check_team(conn, state.tenant_id, team_id)
            if agent_id and agent_id not in tc.agents:
                raise NotFound(f"agent {agent_id} not found")
            self.automation.hand_off(
                writer,
                tc,
                state.conversation_id,
                to,
                "agent",
                team_id=team_id,
                actor=actor,
                at=self.clock(),
                ids=_new_ids(),
                meta=Meta(),
                agent_id=agent_id,
            )

        _, state = await self._command(
            request.conversation_id, decide, expected_version=request.expected_version
        )
        return cs.HandOffConversationResponse(conversation=self._render(state))

    # -------------------------------------------------------------- notes, labels, read

    async def AddNote(  # noqa: N802 - gRPC method name
        self, request: cs.AddNoteRequest, context: Any = None
    ) -> cs.AddNoteResponse:
        text = request.text.strip()
        if not text:
            raise InvalidArgument("text", "is required")
        if len(text) > MAX_NOTE:
            raise InvalidArgument("text", f"at most {MAX_NOTE} characters")
        client_id = _client_key(request.client_note_id, "client_note_id")
        author = _actor(request.author)

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> cs.Note:
            if client_id:
                note_id = deterministic_event_id(
                    "note", state.tenant_id, state.conversation_id, client_id
                )
                existing = await self.read_model.note(conn, state.tenant_id, note_id)
                if existing is not None:
                    return cs.Note(
                        note_id=existing.note_id,
                        author=existing.author,
                        text=existing.text,
                        created_at=to_timestamp(existing.created_at),
                    )
            else:
                note_id = str(uuid.uuid4())
            at = self.clock()
            writer.emit(
                domain.decide_note(
                    state,
                    note_id=note_id,
                    author=author,
                    text=text,
                    at=at,
                    event_id=deterministic_event_id(note_id, "note"),
                )
            )
            return cs.Note(note_id=note_id, author=author, text=text, created_at=to_timestamp(at))

        note, _ = await self._command(request.conversation_id, decide)
        return cs.AddNoteResponse(note=note)

    async def SetLabels(  # noqa: N802 - gRPC method name
        self, request: cs.SetLabelsRequest, context: Any = None
    ) -> cs.SetLabelsResponse:
        labels = config.normalize_labels(list(request.labels))
        actor = _actor(request.actor)

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> None:
            writer.emit(
                domain.decide_labels(
                    state, labels, actor=actor, at=self.clock(), event_id=_new_ids()
                )
            )

        _, state = await self._command(
            request.conversation_id, decide, expected_version=request.expected_version
        )
        return cs.SetLabelsResponse(conversation=self._render(state))

    async def MarkRead(  # noqa: N802 - gRPC method name
        self, request: cs.MarkReadRequest, context: Any = None
    ) -> cs.MarkReadResponse:
        actor = _actor(request.actor)

        async def decide(
            conn: asyncpg.Connection, writer: Writer, state: ConversationState
        ) -> None:
            writer.emit(
                domain.decide_read(state, actor=actor, at=self.clock(), event_id=_new_ids())
            )

        _, state = await self._command(request.conversation_id, decide)
        return cs.MarkReadResponse(conversation=self._render(state))

    # -------------------------------------------------------------- configuration

    async def _config_command(
        self,
        kind: str,
        key: str,
        decide: Callable[[config.ConfigRow | None], Any | None],
    ) -> config.ConfigRow | None:
        """Lock the configuration row, decide the event (None: nothing changes), append it."""
        tenant = current_tenant()
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await self.read_model.config_rows(conn, [(tenant, kind, key)], lock=True)
            current = rows.get((tenant, kind, key))
            payload = decide(current)
            if payload is None:
                return current
            if kind == config.AGENT and isinstance(payload, ce.AgentSaved):
                for team in payload.agent.team_ids:
                    await self._check_team(conn, tenant, team)
            writer = Writer(self.read_model, self.topic)
            row = writer.emit_config(
                current,
                tenant_id=tenant,
                kind=kind,
                key=key,
                payload=payload,
                event_id=str(uuid.uuid4()),
                at=self.clock(),
            )
            await self._commit(conn, writer)
            return row

    async def UpsertAgent(  # noqa: N802 - gRPC method name
        self, request: cs.UpsertAgentRequest, context: Any = None
    ) -> cs.UpsertAgentResponse:
        agent = config.validate_agent(request.agent)

        def decide(current: config.ConfigRow | None) -> Any:
            if (
                current is not None
                and not current.removed
                and current.data == (agent.SerializeToString(deterministic=True))
            ):
                return None
            return ce.AgentSaved(agent=agent)

        row = await self._config_command(config.AGENT, agent.agent_id, decide)
        assert row is not None
        return cs.UpsertAgentResponse(agent=config.parse_agent(row.data))

    async def SetAgentAvailability(  # noqa: N802 - gRPC method name
        self, request: cs.SetAgentAvailabilityRequest, context: Any = None
    ) -> cs.SetAgentAvailabilityResponse:
        agent_id = config.check_id("agent_id", request.agent_id)

        def decide(current: config.ConfigRow | None) -> Any:
            if current is None or current.removed:
                raise NotFound(f"agent {agent_id} not found")
            if config.parse_agent(current.data).available == request.available:
                return None
            return ce.AgentAvailabilityChanged(agent_id=agent_id, available=request.available)

        row = await self._config_command(config.AGENT, agent_id, decide)
        assert row is not None
        return cs.SetAgentAvailabilityResponse(agent=config.parse_agent(row.data))

    async def RemoveAgent(  # noqa: N802 - gRPC method name
        self, request: cs.RemoveAgentRequest, context: Any = None
    ) -> cs.RemoveAgentResponse:
        agent_id = config.check_id("agent_id", request.agent_id)

        def decide(current: config.ConfigRow | None) -> Any:
            if current is None or current.removed:
                raise NotFound(f"agent {agent_id} not found")
            return ce.AgentRemoved(agent_id=agent_id)

        await self._config_command(config.AGENT, agent_id, decide)
        return cs.RemoveAgentResponse()

    async def ListAgents(  # noqa: N802 - gRPC method name
        self, request: cs.ListAgentsRequest, context: Any = None
    ) -> cs.ListAgentsResponse:
        tenant = current_tenant()
        team_id = request.team_id.strip()
        async with self.read_pool.acquire() as conn:
            tc = await self._tenant_config(conn, tenant)
            loads = await self.read_model.agent_loads(conn, tenant)
        return cs.ListAgentsResponse(
            agents=[
                cs.AgentLoad(agent=a, open_conversations=loads.get(a.agent_id, (0, None))[0])
                for a in sorted(tc.agents.values(), key=lambda a: a.agent_id)
                if not team_id or team_id in a.team_ids
            ]
        )

    async def UpsertTeam(  # noqa: N802 - gRPC method name
        self, request: cs.UpsertTeamRequest, context: Any = None
    ) -> cs.UpsertTeamResponse:
        team = config.validate_team(request.team)

        def decide(current: config.ConfigRow | None) -> Any:
            data = team.SerializeToString(deterministic=True)
            if current is not None and not current.removed and current.data == data:
                return None
            return ce.TeamSaved(team=team)

        row = await self._config_command(config.TEAM, team.team_id, decide)
        assert row is not None
        return cs.UpsertTeamResponse(team=config.parse_team(row.data))

    async def RemoveTeam(  # noqa: N802 - gRPC method name
        self, request: cs.RemoveTeamRequest, context: Any = None
    ) -> cs.RemoveTeamResponse:
        team_id = config.check_id("team_id", request.team_id)

        def decide(current: config.ConfigRow | None) -> Any:
            if current is None or current.removed:
                raise NotFound(f"team {team_id} not found")
            return ce.TeamRemoved(team_id=team_id)

        await self._config_command(config.TEAM, team_id, decide)
        return cs.RemoveTeamResponse()

    async def ListTeams(  # noqa: N802 - gRPC method name
        self, request: cs.ListTeamsRequest, context: Any = None
    ) -> cs.ListTeamsResponse:
        tenant = current_tenant()
        async with self.read_pool.acquire() as conn:
            rows = (await self.read_model.config_of(conn, [tenant], config.TEAM)).get(tenant, [])
        return cs.ListTeamsResponse(teams=[config.parse_team(r.data) for r in rows])

    async def UpsertRule(  # noqa: N802 - gRPC method name
        self, request: cs.UpsertRuleRequest, context: Any = None
    ) -> cs.UpsertRuleResponse:
        rule = config.validate_rule(request.rule)

        def decide(current: config.ConfigRow | None) -> Any:
            data = rule.SerializeToString(deterministic=True)
            if current is not None and not current.removed and current.data == data:
                return None
            return ce.AutomationRuleSaved(rule=rule)

        row = await self._config_command(config.RULE, rule.rule_id, decide)
        assert row is not None
        return cs.UpsertRuleResponse(rule=config.parse_rule(row.data))

    async def RemoveRule(  # noqa: N802 - gRPC method name
        self, request: cs.RemoveRuleRequest, context: Any = None
    ) -> cs.RemoveRuleResponse:
        rule_id = config.check_id("rule_id", request.rule_id)

        def decide(current: config.ConfigRow | None) -> Any:
            if current is None or current.removed:
                raise NotFound(f"rule {rule_id} not found")
            return ce.AutomationRuleRemoved(rule_id=rule_id)

        await self._config_command(config.RULE, rule_id, decide)
        return cs.RemoveRuleResponse()

    async def ListRules(  # noqa: N802 - gRPC method name
        self, request: cs.ListRulesRequest, context: Any = None
    ) -> cs.ListRulesResponse:
        tenant = current_tenant()
        async with self.read_pool.acquire() as conn:
            rows = (await self.read_model.config_of(conn, [tenant], config.RULE)).get(tenant, [])
        rules = sorted(
            (config.parse_rule(r.data) for r in rows), key=lambda r: (r.priority, r.rule_id)
        )
        return cs.ListRulesResponse(rules=rules)

    async def GetInboxSettings(  # noqa: N802 - gRPC method name
        self, request: cs.GetInboxSettingsRequest, context: Any = None
    ) -> cs.GetInboxSettingsResponse:
        tenant = current_tenant()
        async with self.read_pool.acquire() as conn:
            tc = await self._tenant_config(conn, tenant)
        return cs.GetInboxSettingsResponse(settings=tc.settings)

    async def UpdateInboxSettings(  # noqa: N802 - gRPC method name
        self, request: cs.UpdateInboxSettingsRequest, context: Any = None
    ) -> cs.UpdateInboxSettingsResponse:
        settings = config.validate_settings(request.settings)

        def decide(current: config.ConfigRow | None) -> Any:
            data = settings.SerializeToString(deterministic=True)
            if current is not None and current.data == data:
                return None
            return ce.InboxSettingsChanged(settings=settings)

        row = await self._config_command(config.SETTINGS, "", decide)
        return cs.UpdateInboxSettingsResponse(
            settings=config.parse_settings(row.data) if row is not None else settings
        )
