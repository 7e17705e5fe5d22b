"""The timer: a periodic task of the service that finds what came due and appends its events.

Each tick looks for conversations with an SLA clock past its target, a snooze that ended or a
scheduled proactive message whose time came, locks them (FOR UPDATE SKIP LOCKED, so replicas
share the work and never wait on each other), decides with the pure rules and appends the events
with explicit versions in the same transaction as the read-model update. Every event id is
deterministic (breach: conversation + kind + cycle; snooze end: conversation + snooze time;
schedule: schedule id), so two replicas finding the same deadline store it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import asyncpg

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay_conversation import domain
from parlay_conversation.inbox import ConsentPolicy, Meta, Writer, send_or_suppress, text_content
from parlay_conversation.readmodel import ConversationReadModel
from parlay_kit.envelope import deterministic_event_id, from_timestamp, utcnow
from parlay_kit.errors import ConcurrencyError
from parlay_kit.eventstore import EventStore

log = logging.getLogger(__name__)


def _snooze_ids(conversation_id: str, until: datetime) -> Callable[[str], str]:
    return lambda kind: deterministic_event_id(
        "snooze-ended", conversation_id, until.isoformat(), kind
    )


class Timer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        read_model: ConversationReadModel,
        *,
        topic: str,
        consent: ConsentPolicy,
        windows: Mapping[str, int],
        interval: float = 1.0,
        batch: int = 100,
        parked_status_ttl: timedelta = timedelta(days=7),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.pool = pool
        self.store = store
        self.read_model = read_model
        self.topic = topic
        self.consent = consent
        self.windows = windows
        self.interval = interval
        self.batch = batch
        self.parked_status_ttl = parked_status_ttl
        self.clock = clock
        self.ticks = 0
        self._last_purge: datetime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # a bad tick must not stop the timer; the next one retries
                log.exception("conversation timer tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass; returns how many events were appended."""
        now = now or self.clock()
        self.ticks += 1
        async with self.pool.acquire() as conn:
            due = await self.read_model.due_work(conn, now, self.batch * 10)
            if self._last_purge is None or now - self._last_purge > timedelta(hours=1):
                self._last_purge = now
                await self.read_model.purge_parked_statuses(conn, now - self.parked_status_ttl)
        appended = 0
        for i in range(0, len(due), self.batch):
            try:
                appended += await self._chunk(due[i : i + self.batch], now)
            except ConcurrencyError as exc:
                log.info("timer: conversations moved on (%s); next tick retries", exc)
        return appended

    async def _chunk(self, conversation_ids: list[str], now: datetime) -> int:
        rm = self.read_model
        async with self.pool.acquire() as conn, conn.transaction():
            states = await rm.lock_some(conn, conversation_ids)
            if not states:
                return 0
            writer = Writer(rm, self.topic)
            writer.track(states)
            targets = await rm.sla_targets(conn, {s.tenant_id for s in states.values()})
            for cid, loaded in states.items():
                meta = Meta(causation_id="timer")
                first, resolution = targets.get(loaded.tenant_id, (0, 0))
                writer.emit(
                    domain.decide_sla_breaches(loaded, domain.SlaTargets(first, resolution), now),
                    meta,
                )
                state = writer.state(cid)
                assert state is not None
                if (
                    state.status == domain.STATUS_SNOOZED
                    and state.snoozed_until is not None
                    and state.snoozed_until <= now
                ):
                    until = state.snoozed_until
                    writer.emit(
                        domain.decide_status_change(
                            state,
                            domain.STATUS_OPEN,
                            actor="system",
                            reason="snooze_expired",
                            at=until,
                            event_id=_snooze_ids(cid, until),
                        ),
                        meta,
                    )
            for schedule_id, cid, data in await rm.due_schedules(conn, list(states), now):
                scheduled = ce.ProactiveMessageScheduled()
                scheduled.ParseFromString(data)
                due_at = from_timestamp(scheduled.due_at)
                template = scheduled.template if scheduled.template.name else None
                await send_or_suppress(
                    conn,
                    writer,
                    self.consent,
                    self.windows,
                    cid,
                    domain.Outbound(
                        message_id=deterministic_event_id(schedule_id, "message"),
                        content=text_content(scheduled.text),
                        sender=f"proactive:{scheduled.kind}",
                        purpose=scheduled.purpose or domain.PURPOSE_TRANSACTIONAL,
                        schedule_id=schedule_id,
                    ),
                    at=max(due_at, now),
                    event_id=deterministic_event_id(schedule_id, "send"),
                    trigger="schedule",
                    meta=Meta(causation_id=scheduled.trigger_event_id),
                    template=template,
                )
            if not writer.new_events:
                return 0
            stored = await self.store.append(conn, writer.new_events)
            if any(s.duplicate for s in stored):
                raise ConcurrencyError("another replica appended the same events")
            await writer.save(conn)
            return len(writer.new_events)
