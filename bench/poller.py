"""Visibility poller, run as its own process: ``python -m bench.poller ...``.

Watches the conversation service's read model (`<schema>.conversation_messages`) for the
messages of an open-loop schedule. Every `interval` ms it selects, among the messages already
due (scheduled time passed), those not yet seen — by provider message id (the wamid), through
the table's unique index — and records for each the monotonic time the SELECT returned: an
upper bound of when it became visible, late by at most one interval plus one query.

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


def visible_query(schema: str) -> str:
    return (
        f"SELECT provider_message_id FROM {schema}.conversation_messages "
        "WHERE tenant_id = $1 AND channel = 'whatsapp' AND channel_account_id = $2 "
        "AND direction = 'inbound' AND provider_message_id = ANY($3::text[])"
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    schedule = read_schedule(Path(args.schedule))
    conn = await asyncpg.connect(args.dsn)
    stmt = await conn.prepare(visible_query(args.schema))
    interval = args.interval_ms / 1000.0

    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0 = float(line.split()[1])

    deadline = t0 + schedule[-1].offset + args.drain_timeout
    due: dict[str, int] = {}
    seen: dict[int, float] = {}
    next_due = 0
    polls = 0
    query_seconds: list[float] = []
    gaps: list[float] = []
    last_start: float | None = None
    while True:
        start = time.monotonic()
        while next_due < len(schedule) and t0 + schedule[next_due].offset <= start:
            m = schedule[next_due]
            due[m.wamid] = m.seq
            next_due += 1
        if due:
            rows = await stmt.fetch(args.tenant, args.account, list(due))
            done = time.monotonic()
            for row in rows:
                seq = due.pop(row[0], None)
                if seq is not None:
                    seen[seq] = done
            polls += 1
            query_seconds.append(done - start)
            if last_start is not None:
                gaps.append(start - last_start)
            last_start = start
        if next_due >= len(schedule) and not due:
            break
        if start > deadline:
            break
        delay = start + interval - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)
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
        "timed_out": bool(due) or next_due < len(schedule),
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
