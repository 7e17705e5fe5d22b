"""The bench's CPU accounting: Postgres work done by a connection opened (and closed) inside
the measured window must count — a replay or a projector opens its connections after the
window starts."""

from __future__ import annotations

import asyncpg
import pytest

from bench.procs import CpuWindow, group_cpu_between, pids_named


def test_group_cpu_between_counts_started_lasting_and_ended_processes() -> None:
    before = {1: 10.0, 2: 5.0, 3: 2.0}  # 1: the parent; 3 ends in the window
    # 3 used 0.5 s more and ended: the parent's reaped-children CPU grew by its whole 2.5 s.
    after = {1: 10.0 + 2.5, 2: 5.25, 4: 1.0}  # 4 started in the window
    assert group_cpu_between(before, after) == pytest.approx(0.5 + 0.25 + 1.0)


async def test_postgres_cpu_of_a_connection_opened_inside_the_window(database_url: str) -> None:
    if not pids_named("postgres"):
        pytest.skip("the Postgres processes are not visible here")
    window = CpuWindow({})
    window.start()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.fetchval("SELECT count(*) FROM generate_series(1, 3000000)")
    finally:
        await conn.close()
    used = window.stop()["postgres_cpu_seconds"]
    assert used is not None and used > 0.1
