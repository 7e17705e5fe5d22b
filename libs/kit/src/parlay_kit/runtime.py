"""One composition helper for every service: pool, migrations, event store, outbox relay,
projectors, gRPC server and background tasks, started together and stopped cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from parlay_kit.db import Migration, create_pool, migrate
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore, GroupCommitter
from parlay_kit.projector import Handler, Projector
from parlay_kit.relay import OutboxRelay
from parlay_kit.settings import ServiceSettings
from parlay_kit.telemetry import setup_telemetry, start_metrics_server

log = logging.getLogger(__name__)

Task = Callable[[asyncio.Event], Awaitable[None]]


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, *, migrations: Sequence[Migration] = ()) -> None:
        self.settings = settings
        self.schema = settings.store_schema
        self.migrations = [*EVENT_STORE_MIGRATIONS, *migrations]
        self.stop_event = asyncio.Event()
        self.store = EventStore(self.schema, source=settings.service_name)
        self.pool: asyncpg.Pool | None = None
        self.group_commit: GroupCommitter | None = None
        self.relay: OutboxRelay | None = None
        self.projectors: list[Projector] = []
        self._grpc: list[tuple[Callable[[Any, Any], None], Any, str]] = []
        self._tasks: list[tuple[str, str, str | None, Task]] = []
        self._grpc_server: Any = None
        self._running: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------ composition

    async def open(self) -> asyncpg.Pool:
        """Connect and migrate. Safe to call before wiring projectors and servicers."""
        if self.pool is None:
            # Tracing first, so asyncpg, gRPC and FastAPI instrumentation see the provider.
            setup_telemetry(self.settings.service_name, self.settings.otlp_endpoint)
            self.pool = await create_pool(
                self.settings.database_url,
                self.schema,
                max_size=self.settings.db_pool_size,
                password=self.settings.database_password(),
            )
            async with self.pool.acquire() as conn:
                applied = await migrate(conn, self.schema, self.migrations)
            if applied:
                log.info("%s: applied migrations %s", self.schema, ", ".join(applied))
            self.group_commit = GroupCommitter(self.pool, self.store)
            await self.group_commit.start()
        return self.pool

    def add_projector(self, name: str, topics: Sequence[str], handler: Handler) -> Projector:
        assert self.pool is not None, "call open() first"
        projector = Projector(
            name=name,
            service=self.settings.service_name,
            topics=topics,
            handler=handler,
            pool=self.pool,
            schema=self.schema,
            kafka=self.settings.kafka,
            store=self.store,
            max_attempts=self.settings.max_event_attempts,
        )
        self.projectors.append(projector)
        return projector

    def add_grpc(
        self, add_to_server: Callable[[Any, Any], None], servicer: Any, service_name: str
    ) -> None:
        self._grpc.append((add_to_server, servicer, service_name))

    def add_task(
        self, name: str, task: Task, *, role: str = "http", projector: str | None = None
    ) -> None:
        """A long-running coroutine (e.g. the HTTP server) that stops when the event is set.
        It runs when the process's roles include `role`; with `projector`, only in the process
        that runs that projector (a part of it: the outbound sender, a timer)."""
        self._tasks.append((name, role, projector, task))

    # ------------------------------------------------------------ running

    async def start(self) -> None:
        pool = await self.open()
        self.relay = OutboxRelay(
            self.settings.database_url,
            self.schema,
            self.settings.kafka,
            name=f"{self.schema}-outbox",
        )
        if self.settings.runs("relay"):
            self._spawn("relay", self.relay.run)
        if self.settings.runs("projectors"):
            for projector in self.projectors:
                if self.settings.runs_projector(projector.name):
                    self._spawn(f"projector:{projector.name}", projector.run)
        if self.settings.metrics_port:
            start_metrics_server(self.settings.metrics_port, self.settings.metrics_host)
        for name, role, projector_name, task in self._tasks:
            if self.settings.runs(role) and (
                projector_name is None or self.settings.runs_projector(projector_name)
            ):
                self._spawn(name, task)
        if self._grpc and self.settings.runs("grpc"):
            from parlay_kit.grpc_server import TlsConfig, build_server
            from parlay_kit.tenancy import ApiKeyResolver

            resolver = ApiKeyResolver(
                await create_pool(self.settings.tenancy_dsn, "tenancy", max_size=2),
                dev_mode=self.settings.dev_mode,
            )
            self._grpc_server = build_server(
                [(add, servicer) for add, servicer, _ in self._grpc],
                resolver=resolver,
                service_names=[name for _, _, name in self._grpc],
                host=self.settings.grpc_host,
                port=self.settings.grpc_port,
                tls=TlsConfig.optional(
                    self.settings.grpc_tls_cert_file,
                    self.settings.grpc_tls_key_file,
                    self.settings.grpc_tls_client_ca_file,
                ),
            )
            await self._grpc_server.start()
        log.info("%s started (schema %s)", self.settings.service_name, self.schema)
        del pool

    def _spawn(self, name: str, task: Task) -> None:
        async def guarded() -> None:
            try:
                await task(self.stop_event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: task %s crashed; stopping the service", self.schema, name)
                self.stop_event.set()

        self._running.append(asyncio.create_task(guarded(), name=name))

    async def stop(self) -> None:
        self.stop_event.set()
        if self._grpc_server is not None:
            await self._grpc_server.stop(5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._running, return_exceptions=True), 15.0)
        for task in self._running:
            task.cancel()
        if self.group_commit is not None:
            await self.group_commit.close()
        if self.pool is not None:
            await self.pool.close()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        await self.start()
        await self.stop_event.wait()
        log.info("%s stopping", self.settings.service_name)
        await self.stop()


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
