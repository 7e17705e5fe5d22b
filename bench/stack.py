"""The parts of the real stack a benchmark starts: a fresh Tansu broker (memory, its own port),
fresh Postgres schemas with a random suffix, and services as separate processes
(``python -m parlay_<svc>``), configured by environment exactly as `parlay dev` configures them.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.core import REPO_ROOT, Context
from bench.httpclient import get_status
from bench.payloads import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN
from bench.procs import Child, ChildExited

HOST = "127.0.0.1"
#: Environment variables kept from the caller when a service is started (everything else
#: PARLAY_* is dropped, so a developer's shell cannot change what the bench measures).
_KEEP_ENV = ("PARLAY_TANSU_BIN",)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLAY_") or k in _KEEP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Broker:
    bootstrap: str
    child: Child
    cluster_id: str


async def start_broker(ctx: Context, name: str = "broker") -> Broker:
    """A new, empty Tansu (memory storage) on a free port, with every Parlay topic created."""
    from parlay_kit import topics
    from parlay_kit.broker import ensure_topics, resolve_broker_bin, wait_for_kafka

    port = free_port()
    url = f"tcp://{HOST}:{port}"
    cluster_id = f"bench-{ctx.run_id}-{name}"
    env = clean_env()
    env.setdefault("RUST_LOG", "warn")
    child = ctx.procs.spawn(
        name,
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--cluster-id",
            cluster_id,
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
    )
    bootstrap = f"{HOST}:{port}"
    await wait_for_kafka(bootstrap, 30.0, expect_cluster_id=cluster_id, alive=child.running)
    await ensure_topics(bootstrap, topics.ALL_TOPICS, topics.DEFAULT_PARTITIONS)
    return Broker(bootstrap, child, cluster_id)


@dataclass
class Account:
    tenant_id: str
    channel_account_id: str
    app_secret: str = APP_SECRET

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/whatsapp/{self.channel_account_id}"

    def write_config(self, path: Path) -> Path:
        """The gateway's channel-accounts file (PARLAY_CHANNEL_ACCOUNTS_FILE), JSON."""
        path.write_text(
            json.dumps(
                {
                    "channel_accounts": [
                        {
                            "tenant_id": self.tenant_id,
                            "channel_account_id": self.channel_account_id,
                            "channel": "whatsapp",
                            "credentials": {
                                "app_secret": self.app_secret,
                                "verify_token": VERIFY_TOKEN,
                                "access_token": ACCESS_TOKEN,
                            },
                            "settings": {"phone_number_id": PHONE_NUMBER_ID},
                        }
                    ]
                },
                indent=2,
            )
        )
        return path


@dataclass
class Service:
    name: str
    schema: str
    grpc_port: int
    child: Child
    http_port: int | None = None


@dataclass
class Stack:
    """Services of one benchmark; `close()` stops them and drops their schemas."""

    ctx: Context
    broker: Broker
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.ctx.options.database_url

    def schema(self, service: str) -> str:
        return f"bench_{self.ctx.run_id}_{service}"

    def start(
        self, service: str, *, extra_env: dict[str, str] | None = None, name: str | None = None
    ) -> Service:
        """Start `service`; `name` tells apart several processes of one service (the request
        tier and the projector tier, as on Kubernetes). Only the gateway's request tier serves
        HTTP."""
        grpc_port = free_port()
        roles = (extra_env or {}).get("PARLAY_ROLES", "all")
        serves_http = service == "gateway" and ("all" in roles or "http" in roles)
        http_port = free_port() if serves_http else None
        schema = self.schema(service)
        env = clean_env()
        env.update(
            {
                "PARLAY_SERVICE_NAME": service,
                "PARLAY_DATABASE_URL": self.database_url,
                "PARLAY_DB_SCHEMA": schema,
                "PARLAY_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "PARLAY_GRPC_HOST": HOST,
                "PARLAY_GRPC_PORT": str(grpc_port),
                "PARLAY_DEV_MODE": "true",
                "PARLAY_LOG_LEVEL": "INFO",
            }
        )
        if self.ctx.options.fetch_max_wait_ms is not None:
            env["PARLAY_KAFKA_FETCH_MAX_WAIT_MS"] = str(self.ctx.options.fetch_max_wait_ms)
        if http_port is not None:
            env["PARLAY_HTTP_HOST"] = HOST
            env["PARLAY_HTTP_PORT"] = str(http_port)
        for peer, svc in self.services.items():
            env[f"PARLAY_{peer.upper()}_GRPC_TARGET"] = f"{HOST}:{svc.grpc_port}"
        env.update(extra_env or {})
        child = self.ctx.procs.spawn(
            f"{name or service}-{self.ctx.run_id}",
            self.ctx.python_module(
                self.ctx.options.service_modules.get(service, f"parlay_{service}")
            ),
            env=env,
            cwd=REPO_ROOT,
        )
        svc = Service(name or service, schema, grpc_port, child, http_port)
        self.services[name or service] = svc
        return svc

    def start_gateway(self, accounts_file: Path, *tiers: str) -> Service:
        """The gateway as deployed (deploy/k8s): one process per tier, "api" (HTTP + gRPC),
        "relay" or "projectors", each with the channel accounts of `accounts_file`. Returns
        the first (services are named "gateway", "gateway-relay", "gateway-projectors")."""
        roles = {"api": "http,grpc", "relay": "grpc,relay", "projectors": "grpc,projectors"}
        started = [
            self.start(
                "gateway",
                name="gateway" if tier == "api" else f"gateway-{tier}",
                extra_env={
                    "PARLAY_CHANNEL_ACCOUNTS_FILE": str(accounts_file),
                    "PARLAY_ROLES": roles[tier],
                },
            )
            for tier in tiers
        ]
        return started[0]

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """gRPC health SERVING for every service, and GET /healthz 200 on the gateway."""
        await asyncio.gather(*(_wait_service(s, timeout) for s in self.services.values()))

    def check_alive(self) -> None:
        for svc in self.services.values():
            if not svc.child.running():
                raise ChildExited(svc.child)

    async def close(self) -> None:
        for svc in reversed(list(self.services.values())):
            await asyncio.to_thread(self.ctx.procs.stop, svc.child, 15.0)
        if not self.ctx.options.keep:
            await drop_schemas(self.database_url, [s.schema for s in self.services.values()])
        self.services.clear()


async def _grpc_health(target: str) -> str:
    try:
        from parlay_kit.dev import grpc_health
    except ImportError:  # pragma: no cover
        return "SERVING"
    return await grpc_health(target, 1.0)


async def _wait_service(svc: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = "UNREACHABLE"
    while True:
        if not svc.child.running():
            raise ChildExited(svc.child)
        if status != "SERVING":
            status = await _grpc_health(f"{HOST}:{svc.grpc_port}")
        if status == "SERVING" and (
            svc.http_port is None or await get_status(HOST, svc.http_port, "/healthz") == 200
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{svc.name} not ready after {timeout:.0f}s (gRPC {status}):\n"
                + svc.child.log_tail()
            )
        await asyncio.sleep(0.2)


async def drop_schemas(database_url: str, schemas: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def check_database(database_url: str) -> str:
    """The server version, or raise with a readable message."""
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except Exception as exc:
        raise RuntimeError(
            f"cannot connect to Postgres at {database_url} ({exc!r}); set PARLAY_BENCH_DATABASE_URL"
        ) from exc
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
