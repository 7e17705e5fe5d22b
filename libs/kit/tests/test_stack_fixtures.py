"""The shared pytest fixtures (parlay_kit.testing): real broker, real Postgres, fresh schemas."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import psutil

from parlay_kit import testing
from parlay_kit.broker import fetch_cluster_id, free_port


async def test_kafka_bootstrap_is_a_live_broker(kafka_bootstrap):
    assert await fetch_cluster_id(kafka_bootstrap)


async def test_fresh_schema_exists_and_is_empty(database_url, fresh_schema):
    conn = await asyncpg.connect(database_url)
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
                fresh_schema,
            )
            == 1
        )
        await conn.execute(f"CREATE TABLE {fresh_schema}.t (v int)")
    finally:
        await conn.close()


def test_unique_name():
    a, b = testing.unique_name("topic"), testing.unique_name("topic")
    assert a != b and a.startswith("topic_")


def test_embedded_fallback_when_no_postgres_answers(monkeypatch):
    """No Docker, no PARLAY_TEST_DATABASE_URL, nothing on the default URL: embedded server."""
    monkeypatch.setenv("PARLAY_TEST_DOCKER", "0")
    monkeypatch.delenv("PARLAY_TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(
        testing,
        "DEFAULT_LOCAL_TEST_DATABASE_URL",
        f"postgresql://postgres@127.0.0.1:{free_port()}/test",
    )
    stack = testing.TestStack()
    assert "embedded" in stack.plan()
    url = stack.database_url()
    try:
        assert stack.postgres_used is not None and stack.postgres_used.kind == "embedded"

        async def check() -> str:
            conn = await asyncpg.connect(url)
            try:
                return await conn.fetchval("SELECT current_database()")
            finally:
                await conn.close()

        assert testing.run_coro_in_thread(check) == "test"
        pid = stack._embedded_pg.pid  # type: ignore[union-attr]
        data_dir = Path(stack._embedded_dir)  # type: ignore[arg-type]
    finally:
        stack.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not data_dir.exists()


def test_explicit_urls_win(monkeypatch):
    monkeypatch.setenv("PARLAY_TEST_DOCKER", "0")
    monkeypatch.setenv("PARLAY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("PARLAY_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    stack = testing.TestStack()
    assert (
        "PARLAY_TEST_DATABASE_URL" in stack.plan() and "PARLAY_TEST_KAFKA_BOOTSTRAP" in stack.plan()
    )
    assert stack.kafka_bootstrap() == "127.0.0.1:1"
    assert stack.database_url() == "postgresql://postgres@127.0.0.1:5432/test"
    stack.close()


def test_header_and_summary_name_the_path(tmp_path, database_url):
    """An inner pytest run: the header shows the plan, the summary what ran; schemas dropped."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import asyncio, asyncpg
            from parlay_kit.broker import fetch_cluster_id

            def test_uses_everything(kafka_bootstrap, database_url, fresh_schema):
                assert asyncio.run(fetch_cluster_id(kafka_bootstrap))
                print("SCHEMA=" + fresh_schema)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLAY_TEST_")}
    env["PARLAY_TEST_DOCKER"] = "0"
    env["PARLAY_TEST_DATABASE_URL"] = database_url
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "parlay_kit.testing",
            "-s",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "parlay stack: docker: not reachable | broker: tansu (local" in out.stdout
    assert "parlay stack: broker: tansu (local) 127.0.0.1:" in out.stdout
    assert "postgres: " + database_url.split("@")[-1] in out.stdout
    schema = out.stdout.split("SCHEMA=")[1].split()[0]

    async def exists() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", schema
            )
        finally:
            await conn.close()

    assert testing.run_coro_in_thread(exists) == 0
