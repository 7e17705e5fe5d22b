"""pytest plugin: a real Kafka and a real Postgres for every test directory.

Registered by the repository's root ``conftest.py`` (``pytest_plugins = ["parlay_kit.testing"]``),
so ``libs/*/tests``, ``services/*/tests`` and ``tests/`` all get these fixtures:

``kafka_bootstrap`` (session)  "host:port" of a broker, started on first use.
``database_url``    (session)  a Postgres URL, started/connected on first use.
``fresh_schema``    (function) a new, empty schema with a unique name; dropped afterwards.

One interface, two paths:

* a Docker engine is reachable (``docker info`` succeeds): testcontainers, an Apache Kafka
  container (KRaft) and a Postgres container;
* otherwise: a Tansu ``LocalBroker`` on a free port for the session, and Postgres from
  ``PARLAY_TEST_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/test`` if it
  accepts connections, else an embedded server in a temporary directory.

Explicit settings win over both paths: ``PARLAY_TEST_KAFKA_BOOTSTRAP`` (an existing broker) and
``PARLAY_TEST_DATABASE_URL``. ``PARLAY_TEST_DOCKER=0`` never uses Docker, ``=1`` insists on it.
The pytest header says which path was chosen and the terminal summary what actually ran, e.g.
``parlay stack: broker: tansu (local) 127.0.0.1:40123 | postgres: 127.0.0.1:5432/test``.

Tests share the broker and the database: use ``fresh_schema`` and ``unique_name()`` for topics
and consumer groups so parallel tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parlay_kit.broker import LocalBroker, free_port, run_coro_in_thread
from parlay_kit.postgres import LocalPostgres, can_connect, describe

DEFAULT_LOCAL_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:16-alpine"

_STASH_KEY = pytest.StashKey["TestStack"]()


def unique_name(prefix: str = "t") -> str:
    """A name no other test uses: for topics, consumer groups, schemas, tenants."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def docker_available(timeout: float = 15.0) -> bool:
    """True if a Docker engine answers (`docker info` exits 0). PARLAY_TEST_DOCKER overrides."""
    forced = os.environ.get("PARLAY_TEST_DOCKER", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@dataclass
class _Used:
    kind: str
    where: str

    def __str__(self) -> str:
        return f"{self.kind} {self.where}".strip()


class TestStack:
    """The session's broker and database, started lazily on first use."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self._docker: bool | None = None
        self._broker: LocalBroker | None = None
        self._kafka_container: object | None = None
        self._pg_container: object | None = None
        self._embedded_pg: LocalPostgres | None = None
        self._embedded_dir: str | None = None
        self._bootstrap: str | None = None
        self._database_url: str | None = None
        self.broker_used: _Used | None = None
        self.postgres_used: _Used | None = None

    # -- decisions ------------------------------------------------------------------------------
    @property
    def docker(self) -> bool:
        if self._docker is None:
            self._docker = docker_available()
            if os.environ.get("PARLAY_TEST_DOCKER", "").strip() == "1" and not self._docker:
                raise RuntimeError("PARLAY_TEST_DOCKER=1 but no Docker engine is reachable")
        return self._docker

    def plan(self) -> str:
        """What will be used (for the pytest header), without starting anything."""
        if os.environ.get("PARLAY_TEST_KAFKA_BOOTSTRAP"):
            broker = (
                f"kafka {os.environ['PARLAY_TEST_KAFKA_BOOTSTRAP']} (PARLAY_TEST_KAFKA_BOOTSTRAP)"
            )
        elif self.docker:
            broker = f"kafka (testcontainers, {KAFKA_IMAGE})"
        else:
            broker = "tansu (local, free port, started on first use)"
        env_url = os.environ.get("PARLAY_TEST_DATABASE_URL")
        if env_url:
            pg = f"{describe(env_url)} (PARLAY_TEST_DATABASE_URL)"
        elif self.docker:
            pg = f"testcontainers ({POSTGRES_IMAGE})"
        elif run_coro_in_thread(lambda: can_connect(DEFAULT_LOCAL_TEST_DATABASE_URL, 2.0)):
            pg = describe(DEFAULT_LOCAL_TEST_DATABASE_URL)
        else:
            pg = "embedded (temporary directory)"
        docker = "docker: reachable" if self.docker else "docker: not reachable"
        return f"{docker} | broker: {broker} | postgres: {pg}"

    def summary(self) -> str:
        broker = str(self.broker_used) if self.broker_used else "not used"
        pg = str(self.postgres_used) if self.postgres_used else "not used"
        return f"broker: {broker} | postgres: {pg}"

    # -- resources ------------------------------------------------------------------------------
    def kafka_bootstrap(self) -> str:
        if self._bootstrap is not None:
            return self._bootstrap
        explicit = os.environ.get("PARLAY_TEST_KAFKA_BOOTSTRAP")
        if explicit:
            self._bootstrap = explicit
            self.broker_used = _Used("kafka (PARLAY_TEST_KAFKA_BOOTSTRAP)", explicit)
        elif self.docker:
            from testcontainers.community.kafka import KafkaContainer

            image = os.environ.get("PARLAY_TEST_KAFKA_IMAGE", KAFKA_IMAGE)
            container = KafkaContainer(image).with_kraft()
            container.start()
            self._kafka_container = container
            self._bootstrap = container.get_bootstrap_server()
            self.broker_used = _Used(f"kafka (testcontainers {image})", self._bootstrap)
        else:
            log_dir = Path(tempfile.gettempdir()) / "parlay-test-logs"
            port = free_port()
            broker = LocalBroker(port=port, log_path=log_dir / f"tansu-{port}.log")
            broker.start_sync()
            self._broker = broker
            self._bootstrap = broker.bootstrap
            self.broker_used = _Used("tansu (local)", broker.bootstrap)
        return self._bootstrap

    def database_url(self) -> str:
        if self._database_url is not None:
            return self._database_url
        explicit = os.environ.get("PARLAY_TEST_DATABASE_URL")
        if explicit:
            url = explicit
            self.postgres_used = _Used(describe(url), "(PARLAY_TEST_DATABASE_URL)")
        elif self.docker:
            from testcontainers.community.postgres import PostgresContainer

            image = os.environ.get("PARLAY_TEST_POSTGRES_IMAGE", POSTGRES_IMAGE)
            container = PostgresContainer(image, driver=None)
            container.start()
            self._pg_container = container
            url = container.get_connection_url()
            self.postgres_used = _Used(f"testcontainers {image}", describe(url))
        elif run_coro_in_thread(lambda: can_connect(DEFAULT_LOCAL_TEST_DATABASE_URL, 3.0)):
            url = DEFAULT_LOCAL_TEST_DATABASE_URL
            self.postgres_used = _Used(describe(url), "")
        else:
            self._embedded_dir = tempfile.mkdtemp(prefix="parlay-test-pg-")
            pg = LocalPostgres(
                Path(self._embedded_dir) / "pg",
                database="test",
                port=free_port(),
                log_path=Path(self._embedded_dir) / "postgres.log",
                server_options={"fsync": "off", "synchronous_commit": "off"},
            )
            url = pg.start_sync()
            self._embedded_pg = pg
            self.postgres_used = _Used("embedded", describe(url))
        self._database_url = url
        return url

    def close(self) -> None:
        if self._broker is not None:
            self._broker.stop_sync()
            self._broker = None
        for attr in ("_kafka_container", "_pg_container"):
            container = getattr(self, attr)
            if container is not None:
                with contextlib.suppress(Exception):
                    container.stop()  # type: ignore[attr-defined]
                setattr(self, attr, None)
        if self._embedded_pg is not None:
            self._embedded_pg.stop_sync()
            self._embedded_pg = None
        if self._embedded_dir is not None:
            shutil.rmtree(self._embedded_dir, ignore_errors=True)
            self._embedded_dir = None
        self._bootstrap = None
        self._database_url = None


def get_stack(config: pytest.Config) -> TestStack:
    stack = config.stash.get(_STASH_KEY, None)
    if stack is None:
        stack = TestStack()
        config.stash[_STASH_KEY] = stack
    return stack


# --------------------------------------------------------------------------------------------
# hooks
# --------------------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> str:
    try:
        return f"parlay stack: {get_stack(config).plan()}"
    except Exception as exc:  # noqa: BLE001 - the header must never break a run
        return f"parlay stack: (could not plan: {exc})"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    stack = config.stash.get(_STASH_KEY, None)
    if stack is not None and (stack.broker_used or stack.postgres_used):
        terminalreporter.write_sep("-", "parlay stack")
        terminalreporter.write_line(f"parlay stack: {stack.summary()}")


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(_STASH_KEY, None)
    if stack is not None:
        stack.close()


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def parlay_test_stack(pytestconfig: pytest.Config) -> Iterator[TestStack]:
    stack = get_stack(pytestconfig)
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(parlay_test_stack: TestStack) -> str:
    """bootstrap servers ("host:port") of the session's broker."""
    return parlay_test_stack.kafka_bootstrap()


@pytest.fixture(scope="session")
def database_url(parlay_test_stack: TestStack) -> str:
    """URL of the session's Postgres database (shared: isolate with `fresh_schema`)."""
    return parlay_test_stack.database_url()


@pytest.fixture
def fresh_schema(database_url: str) -> Iterator[str]:
    """A new, empty schema with a unique name (created now, dropped with CASCADE afterwards)."""
    import asyncpg

    name = unique_name("t")

    async def _run(sql: str) -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_coro_in_thread(lambda: _run(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        run_coro_in_thread(lambda: _run(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
