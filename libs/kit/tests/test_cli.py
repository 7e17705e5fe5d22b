"""The `parlay` CLI (tenants, keys, migrate, topics) against a real Postgres and broker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import types

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from parlay_kit import cli, tenancy
from parlay_kit.broker import LocalBroker, free_port, list_topics
from parlay_kit.db import Migration
from parlay_kit.dev import migrate_all
from parlay_kit.postgres import ensure_database, with_database
from parlay_kit.testing import unique_name
from parlay_kit.topics import ALL_TOPICS

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_db(database_url):
    """A database of its own: the CLI works on the fixed `tenancy` schema."""
    name = unique_name("parlay_cli")
    url = with_database(database_url, name)
    asyncio.run(ensure_database(url))
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def invoke(*args: str, env: dict[str, str] | None = None):
    result = runner.invoke(cli.app, list(args), env=env, catch_exceptions=False)
    return result


def test_tenant_and_key_lifecycle(cli_db):
    r = invoke("tenants", "create", "Acme Shoes", "--database-url", cli_db)
    assert r.exit_code == 0, r.output
    assert "acme-shoes" in r.output

    r = invoke("tenants", "create", "Acme Shoes", "--database-url", cli_db)
    assert r.exit_code == 1 and "AlreadyExists" in r.output

    r = invoke("tenants", "create", "Beta", "--id", "beta_1", "--database-url", cli_db)
    assert r.exit_code == 0, r.output

    # database URL from the environment
    r = invoke("tenants", "keys", "create", "acme-shoes", env={"PARLAY_DATABASE_URL": cli_db})
    assert r.exit_code == 0, r.output
    key = re.search(r"pk_[a-z0-9]+_[A-Za-z0-9]+", r.output).group(0)
    key_id = tenancy.key_id_of(key)

    async def resolve(k: str) -> str | None:
        conn = await asyncpg.connect(cli_db)
        try:
            return await tenancy.ApiKeyResolver(conn).resolve(k)
        finally:
            await conn.close()

    assert asyncio.run(resolve(key)) == "acme-shoes"

    r = invoke("tenants", "list", env={"DATABASE_URL": cli_db})
    assert r.exit_code == 0
    assert "acme-shoes" in r.output and "beta_1" in r.output

    r = invoke("tenants", "keys", "list", "acme-shoes", "--database-url", cli_db)
    assert key_id in r.output and key not in r.output

    r = invoke("tenants", "keys", "revoke", key_id, "--database-url", cli_db)
    assert r.exit_code == 0 and "revoked" in r.output
    assert asyncio.run(resolve(key)) is None

    r = invoke("tenants", "keys", "revoke", "nope", "--database-url", cli_db)
    assert r.exit_code == 1 and "NotFound" in r.output

    r = invoke("tenants", "keys", "create", "ghost", "--database-url", cli_db)
    assert r.exit_code == 1


def test_no_database_is_a_clear_error(tmp_path):
    r = invoke(
        "tenants",
        "list",
        env={"PARLAY_DATABASE_URL": "", "DATABASE_URL": "", "PARLAY_STATE_DIR": str(tmp_path)},
    )
    assert r.exit_code == 2
    assert "No database" in r.output


def test_migrate_runs_tenancy_and_service_migrations(cli_db, monkeypatch):
    # A stand-in service package following the contract: parlay_<svc>.migrations.MIGRATIONS
    pkg = types.ModuleType("parlay_zzdemo")
    pkg.__path__ = []  # type: ignore[attr-defined]
    mod = types.ModuleType("parlay_zzdemo.migrations")
    mod.MIGRATIONS = [Migration("zz_0001", "CREATE TABLE {schema}.things (id int)")]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "parlay_zzdemo", pkg)
    monkeypatch.setitem(sys.modules, "parlay_zzdemo.migrations", mod)

    results = asyncio.run(migrate_all(cli_db, services=["zzdemo", "zznothing"]))
    assert results == [("tenancy", "ok"), ("zzdemo", "ok"), ("zznothing", "absent")]
    assert asyncio.run(migrate_all(cli_db, services=["zzdemo"]))[1] == ("zzdemo", "ok")

    async def tables() -> set[str]:
        conn = await asyncpg.connect(cli_db)
        try:
            rows = await conn.fetch(
                "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables"
                " WHERE table_schema IN ('zzdemo', 'tenancy')"
            )
            return {r["t"] for r in rows}
        finally:
            await conn.close()

    assert {"zzdemo.things", "zzdemo.schema_migrations", "tenancy.api_keys"} <= asyncio.run(
        tables()
    )

    r = invoke("migrate", "--database-url", cli_db)
    assert r.exit_code == 0, r.output
    assert "tenancy" in r.output and "gateway" in r.output


def test_topics_create(tmp_path):
    broker = LocalBroker(port=free_port(), log_path=tmp_path / "broker.log")
    broker.start_sync()
    try:
        r = invoke("topics", "create", "--bootstrap", broker.bootstrap, "--partitions", "2")
        assert r.exit_code == 0, r.output
        assert r.output.count("created") == len(ALL_TOPICS)
        r = invoke("topics", "create", "--bootstrap", broker.bootstrap)
        assert r.exit_code == 0 and "created" not in r.output
        assert set(ALL_TOPICS) <= set(asyncio.run(list_topics(broker.bootstrap)))
        r = invoke("topics", "list", "--bootstrap", broker.bootstrap)
        assert ALL_TOPICS[0] in r.output
    finally:
        broker.stop_sync()


def test_topics_create_without_broker_fails_cleanly():
    r = invoke("topics", "create", "--bootstrap", f"127.0.0.1:{free_port()}")
    assert r.exit_code == 1


def test_plugins_are_added_from_entry_points(monkeypatch):
    events = typer.Typer()

    @events.command("tail")
    def tail_cmd() -> None:
        print("tailing")

    def replay() -> None:
        """Replay a topic."""
        print("replaying")

    class EP:
        def __init__(self, name, obj):
            self.name, self.value, self._obj = name, f"x:{name}", obj

        def load(self):
            return self._obj

    monkeypatch.setattr(
        cli.importlib.metadata,
        "entry_points",
        lambda group: (
            [EP("events", events), EP("replay", replay)]
            if group == cli.CLI_ENTRY_POINT_GROUP
            else []
        ),
    )
    target = typer.Typer()
    target.command("noop")(lambda: None)
    assert cli.load_plugins(target) == ["events", "replay"]
    assert runner.invoke(target, ["events", "tail"]).output.strip() == "tailing"
    assert runner.invoke(target, ["replay"]).output.strip() == "replaying"


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "parlay_kit.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for command in ("dev", "migrate", "tenants", "topics"):
        assert command in out.stdout
