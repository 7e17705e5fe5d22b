"""parlay_kit.db.WriteBehind against a real Postgres connection: statements run one at a time,
in the order submitted, while the caller goes on; the last is awaited on exit; a failed
statement fails the caller, and a caller's failure waits for the statement in flight."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from parlay_kit.db import WriteBehind


async def test_statements_run_in_order_while_the_caller_goes_on(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE written (n int, at timestamptz)")
        async with conn.transaction():
            async with WriteBehind() as writes:
                for n in range(5):
                    # A statement that takes 50 ms: the caller is back long before it ends.
                    await writes.submit(
                        conn.execute(
                            "INSERT INTO written SELECT $1::int, clock_timestamp() "
                            "FROM pg_sleep(0.05)",
                            n,
                        )
                    )
                    # Back before the statement ended: the caller works while Postgres does.
                    assert writes._running is not None and not writes._running.done()
            assert writes._running is None
            rows = await conn.fetch("SELECT n FROM written ORDER BY at")
        assert [r["n"] for r in rows] == [0, 1, 2, 3, 4]
    finally:
        await conn.close()


async def test_a_failed_statement_fails_the_caller(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            async with WriteBehind() as writes:
                await writes.submit(conn.execute("INSERT INTO no_such_table VALUES (1)"))
        # The connection is free again: nothing is left running on it.
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_the_callers_error_waits_for_the_statement_in_flight(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(RuntimeError, match="fold failed"):
            async with WriteBehind() as writes:
                await writes.submit(conn.execute("SELECT pg_sleep(0.1)"))
                raise RuntimeError("fold failed")
        # Had the statement been left running, this would fail with InterfaceError
        # ("another operation is in progress").
        assert await asyncio.wait_for(conn.fetchval("SELECT 2"), 5) == 2
    finally:
        await conn.close()
