"""Visibility poller, run as its own process: ``python -m bench.poller ...``.

Watches the conversation service for the messages of an open-loop schedule. Every `interval` ms
it reads the `MessageAppended` events committed to the conversation's event store since the
last poll (`position > last`: the store's append lock makes positions visible in commit order)
and records for each message (by provider message id, the wamid) the monotonic time the SELECT
returned: an upper bound of when it became visible, late by at most one interval plus one query.
The conversation service writes a message's timeline row and its `MessageAppended` in one
transaction, so the event is committed exactly when the row is visible; after the run every
message seen is also looked up in `<schema>.conversation_messages` (`not_in_read_model`, must
be 0).

Why the store and not the read model itself: the read model has no commit-ordered column, so
the poller used to ask, every 5 ms, which of the due-but-unseen wamids were there — a query
that grows with the backlog. At 500 msg/s under load it probed hundreds of ids 200 times a
second and was itself most of Postgres's CPU, slowing what it measured. A read of what is new
costs the same whatever the backlog.

Prints READY once connected, waits for ``GO <t0>``, writes ``{seq: seen_at}`` and poll
statistics as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.payloads import read_schedule

MESSAGE_APPENDED = "parlay.conversation.v1.MessageAppended"


def appended_query(schema: str) -> str:
    return (
        f"SELECT position, envelope FROM {schema}.events "
        "WHERE position > $1 AND event_type = $2 ORDER BY position"
    )


def visible_query(schema: str) -> str:
    return (
        f"SELECT provider_message_id FROM {schema}.conversation_messages "
        "WHERE tenant_id = $1 AND channel = 'whatsapp' AND channel_account_id = $2 "
        "AND direction = 'inbound' AND provider_message_id = ANY($3::text[])"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from parlay.conversation.v1 import conversation_events_pb2 as ce
    from parlay.envelope.v1.envelope_pb2 import Envelope

    schedule = read_schedule(Path(args.schedule))
    seq_of = {m.wamid: m.seq for m in schedule}
    conn = await asyncpg.connect(args.dsn)
    stmt = await conn.prepare(appended_query(args.schema))
    # Start after what is there already (the priming messages).
    last = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {args.schema}.events")
    interval = args.interval_ms / 1000.0

    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0 = float(line.split()[1])

    deadline = t0 + schedule[-1].offset + args.drain_timeout
    seen: dict[int, float] = {}
    polls = 0
    query_seconds: list[float] = []
    gaps: list[float] = []
    last_start: float | None = None
    envelope, appended = Envelope(), ce.MessageAppended()
    while True:
        start = time.monotonic()
        rows = await stmt.fetch(last, MESSAGE_APPENDED)
        done = time.monotonic()
        for position, data in rows:
            last = position
            envelope.ParseFromString(data)
            appended.ParseFromString(envelope.payload.value)
            seq = seq_of.get(appended.provider_message_id)
            if seq is not None and seq not in seen:
                seen[seq] = done
        polls += 1
        query_seconds.append(done - start)
        if last_start is not None:
            gaps.append(start - last_start)
        last_start = start
        if len(seen) == len(schedule) or start > deadline:
            break
        delay = start + interval - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)
    # The definition of visible is the read model's: every message seen must be there.
    wamids = [m.wamid for m in schedule if m.seq in seen]
    in_read_model = {
        r[0]
        for r in await conn.fetch(visible_query(args.schema), args.tenant, args.account, wamids)
    }
    await conn.close()
    query_seconds.sort()
    gaps.sort()
    return {
        "seen": {str(k): v for k, v in seen.items()},
        "not_seen": len(schedule) - len(seen),
        "polls": polls,
        "interval_ms": args.interval_ms,
        "query_ms_p50": 1000 * query_seconds[len(query_seconds) // 2] if query_seconds else None,
        "query_ms_p99": 1000 * query_seconds[int(0.99 * len(query_seconds))]
        if query_seconds
        else None,
        "gap_ms_p50": 1000 * gaps[len(gaps) // 2] if gaps else None,
        "gap_ms_p99": 1000 * gaps[int(0.99 * len(gaps))] if gaps else None,
        "timed_out": len(seen) < len(schedule),
        "not_in_read_model": len(set(wamids) - in_read_model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.poller")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--schedule", required=True)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=20.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    Path(args.out).write_text(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
