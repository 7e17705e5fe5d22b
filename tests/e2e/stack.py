"""Runs the five services as separate processes against the test broker and Postgres, exactly
as `parlay dev` does, but on free ports and in fresh schemas so test runs never collide."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import httpx

from parlay_kit import tenancy, topics
from parlay_kit.broker import ensure_topics, free_port
from parlay_kit.dev import SERVICE_PORTS, grpc_health
from parlay_kit.testing import unique_name


@dataclass
class RunningService:
    name: str
    schema: str
    grpc_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.asynccontextmanager
async def private_broker(workdir: Path):
    """A broker of the stack's own. Every gateway consumes parlay.conversation.v1 and every
    normalizer the raw webhooks topic, so two stacks on one broker would act on each other's
    events (one deployment per broker is the production shape)."""
    from parlay_kit.broker import LocalBroker

    broker = LocalBroker(port=free_port(), log_path=workdir / "broker.log")
    await broker.start()
    try:
        yield broker.bootstrap
    finally:
        await broker.stop()


@dataclass
class ServiceStack:
    database_url: str
    kafka_bootstrap: str
    workdir: Path
    tenant_id: str = field(default_factory=lambda: unique_name("tenant").replace("_", "-"))
    api_key: str = ""
    services: dict[str, RunningService] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Every service's gRPC port, chosen before any starts so each can be told where its peers
    #: are (PARLAY_<SVC>_GRPC_TARGET), as `parlay dev` does.
    grpc_ports: dict[str, int] = field(
        default_factory=lambda: {s: free_port() for s in SERVICE_PORTS}
    )

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.services['gateway'].http_port}"

    def channel(self, service: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.services[service].grpc_target)

    def metadata(self, api_key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {api_key or self.api_key}"),)

    async def start(self, accounts: list[dict] | None = None) -> None:
        await ensure_topics(self.kafka_bootstrap, topics.ALL_TOPICS, topics.DEFAULT_PARTITIONS)
        conn = await asyncpg.connect(self.database_url)
        try:
            await tenancy.migrate(conn)
            await tenancy.create_tenant(conn, self.tenant_id, tenant_id=self.tenant_id)
            self.api_key = (await tenancy.create_api_key(conn, self.tenant_id)).key
        finally:
            await conn.close()
        accounts_file = self.workdir / "channel_accounts.json"
        accounts_file.write_text(json.dumps({"channel_accounts": accounts or []}))
        suffix = unique_name("s")
        for name in SERVICE_PORTS:
            self._spawn(name, f"{name}_{suffix}", accounts_file)
        await self.wait_healthy()

    def _spawn(
        self,
        name: str,
        schema: str,
        accounts_file: Path,
        grpc_port: int | None = None,
        http_port: int | None = None,
    ) -> None:
        grpc_port = grpc_port or self.grpc_ports[name]
        if name == "gateway":
            http_port = http_port or free_port()
        env = {
            **os.environ,
            "PARLAY_SERVICE_NAME": name,
            "PARLAY_DB_SCHEMA": schema,
            "PARLAY_DATABASE_URL": self.database_url,
            "PARLAY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PARLAY_GRPC_PORT": str(grpc_port),
            "PARLAY_CHANNEL_ACCOUNTS_FILE": str(accounts_file),
            "PYTHONUNBUFFERED": "1",
            **{
                f"PARLAY_{s.upper()}_GRPC_TARGET": f"127.0.0.1:{p}"
                for s, p in self.grpc_ports.items()
            },
            **self.extra_env,
        }
        if http_port:
            env["PARLAY_HTTP_PORT"] = str(http_port)
        log_path = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", f"parlay_{name}"],
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.services[name] = RunningService(name, schema, grpc_port, process, log_path, http_port)

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for service in self.services.values():
            while True:
                if service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
                status = await grpc_health(service.grpc_target)
                if status == "SERVING":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{service.name} not healthy:\n{service.log_tail()}")
                await asyncio.sleep(0.1)
        async with httpx.AsyncClient() as client:
            while (await client.get(f"{self.gateway_url}/healthz")).status_code != 200:
                await asyncio.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        service = self.services[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, sig)
        service.process.wait(20)

    def restart(self, name: str) -> None:
        """Start a stopped service again on the same ports and schema."""
        old = self.services[name]
        accounts_file = self.workdir / "channel_accounts.json"
        self._spawn(name, old.schema, accounts_file, old.grpc_port, old.http_port)

    def stop(self) -> None:
        for service in self.services.values():
            if service.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGTERM)
        for service in self.services.values():
            try:
                service.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)

    async def drop_schemas(self) -> None:
        """Drop the services' schemas (after `stop`): every stack has its own, and the
        machine's Postgres outlives the test run."""
        conn = await asyncpg.connect(self.database_url)
        try:
            for schema in {service.schema for service in self.services.values()}:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def eventually(probe, timeout: float = 60.0, what: str = "condition"):
    """Poll `probe` until it returns a truthy value (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    workdir: Path,
    accounts,
    *,
    kafka_bootstrap: str | None = None,
    extra_env: dict[str, str] | None = None,
):
    """A started stack, stopped afterwards. `accounts(tenant_id)` lists its channel accounts.
    Without `kafka_bootstrap` it gets a broker of its own (`private_broker`)."""

    @contextlib.asynccontextmanager
    async def broker():
        if kafka_bootstrap is not None:
            yield kafka_bootstrap
        else:
            async with private_broker(workdir) as bootstrap:
                yield bootstrap

    async with broker() as bootstrap:
        s = ServiceStack(database_url, bootstrap, workdir)
        s.extra_env.update(extra_env or {})
        try:
            await s.start(accounts=accounts(s.tenant_id))
            yield s
        finally:
            s.stop()
            await s.drop_schemas()
