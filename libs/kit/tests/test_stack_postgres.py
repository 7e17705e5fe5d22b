"""LocalPostgres: an existing server via URL, or the embedded one (real processes)."""

from __future__ import annotations

import asyncpg
import psutil
import pytest

from parlay_kit.broker import free_port
from parlay_kit.postgres import (
    LocalPostgres,
    database_url_from_env,
    describe,
    ensure_database,
    redact,
    with_database,
)
from parlay_kit.testing import unique_name


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_url_helpers():
    url = "postgresql://u:secret@db.example:6543/app?sslmode=disable"
    assert (
        with_database(url, "other") == "postgresql://u:secret@db.example:6543/other?sslmode=disable"
    )
    assert redact(url) == "postgresql://u:***@db.example:6543/app?sslmode=disable"
    assert describe(url) == "db.example:6543/app"
    assert describe("postgresql://postgres@127.0.0.1/test") == "127.0.0.1:5432/test"


def test_env_precedence():
    assert database_url_from_env({}) is None
    assert database_url_from_env({"DATABASE_URL": "postgresql://a/b"}) == "postgresql://a/b"
    assert (
        database_url_from_env(
            {"DATABASE_URL": "postgresql://a/b", "PARLAY_DATABASE_URL": "postgresql://c/d"}
        )
        == "postgresql://c/d"
    )


async def test_external_url_creates_missing_database(database_url):
    name = unique_name("parlay_pgtest")
    url = with_database(database_url, name)
    pg = LocalPostgres(url=url)
    try:
        assert await pg.start() == url
        assert pg.created_database and not pg.embedded
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
        assert await ensure_database(url) is False  # exists now
        await pg.stop()  # a no-op for an external server
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()


async def test_embedded_server_persists_and_stops(tmp_path):
    data = tmp_path / "pg"
    port = free_port()
    pg = LocalPostgres(data, port=port, log_path=tmp_path / "pg.log")
    url = await pg.start()
    assert url == f"postgresql://postgres@127.0.0.1:{port}/parlay"
    assert pg.created_database
    pid = pg.pid
    conn = await asyncpg.connect(url)
    await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    await conn.close()
    await pg.stop()
    assert _gone(pid)

    again = LocalPostgres(data, port=port, log_path=tmp_path / "pg.log")
    url = await again.start()
    try:
        assert not again.created_database
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT v FROM kept") == 42
        await conn.close()
    finally:
        await again.stop()
    assert "database system is shut down" in (tmp_path / "pg.log").read_text()


def test_embedded_adopts_a_server_left_running(tmp_path):
    data = tmp_path / "pg"
    first = LocalPostgres(data, port=free_port(), log_path=tmp_path / "pg.log")
    url = first.start_sync()
    pid = first.pid
    try:
        # A second launcher on the same data dir (the first one was "killed"): adopt, not restart.
        second = LocalPostgres(data, log_path=tmp_path / "pg.log")
        assert second.start_sync() == url
        assert second.pid == pid
        second.stop_sync()
        assert _gone(pid)
    finally:
        first.stop_sync()


def test_busy_fixed_port_is_reported(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        pg = LocalPostgres(tmp_path / "pg", port=sock.getsockname()[1])
        with pytest.raises(Exception, match="already in use"):
            pg.start_sync()
