"""`parlay dev`: the whole stack on a laptop, no Docker.

Order of start: Tansu broker and Postgres (DATABASE_URL, else embedded, data under `.parlay/`),
then all topics, the tenancy schema and the dev tenant/key, then the five services as separate
processes (`python -m parlay_<svc>`), then it waits until every gRPC health check reports
SERVING and the gateway's /healthz answers 200, and prints where everything is.

Ctrl-C / SIGTERM stops the services (SIGTERM to each process group, SIGKILL after a timeout),
then the broker, then the embedded Postgres. Every child runs in its own process group and, on
Linux, gets a parent-death signal, so nothing outlives the launcher. A second Ctrl-C kills
at once.

The broker keeps its log in memory, so every `parlay dev` starts with an empty broker (fresh
cluster id); services rebuild it from their event stores (relays republish, consumers skip what
their read models already hold).

Provider stand-ins (`python -m parlay_standins`, the package libs/standins) start by default on
127.0.0.1:8090 (+ port offset): local HTTP servers speaking the WhatsApp/Messenger/Instagram
(Graph), Telegram, Twilio, WeChat, LINE and Viber APIs, so outbound messages work on a laptop.
The services get PARLAY_<CHANNEL>_API_BASE_URL pointing at them; PARLAY_DEV_STANDINS=0 (or
DevOptions.standins=False) leaves the real providers' URLs in place.

Service logs go to `.parlay/logs/<svc>.log` (the previous run's to `<svc>.log.1`); `--follow`
also prints them, prefixed with the service name. `.parlay/dev.json` describes the running stack
(endpoints, pids) for other tools and is removed on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from parlay_kit import tenancy
from parlay_kit.broker import (
    LocalBroker,
    die_with_parent_preexec,
    ensure_topics,
    port_is_free,
)
from parlay_kit.postgres import LocalPostgres, database_url_from_env, redact
from parlay_kit.topics import ALL_TOPICS, DEFAULT_PARTITIONS

# --------------------------------------------------------------------------------------------
# The one table of services and ports (DESIGN.md "Local stack, defaults and ports")
# --------------------------------------------------------------------------------------------

HOST = "127.0.0.1"
KAFKA_PORT = 9092
GATEWAY_HTTP_PORT = 8080
#: The provider stand-ins (all API families on one port, under /meta, /telegram, ...).
STANDINS_PORT = 8090
#: Where each channel's API lives on the stand-in server (PARLAY_<X>_API_BASE_URL = url + path).
STANDIN_BASE_PATHS: dict[str, str] = {
    "PARLAY_WHATSAPP_API_BASE_URL": "/meta",
    "PARLAY_MESSENGER_API_BASE_URL": "/meta",
    "PARLAY_INSTAGRAM_API_BASE_URL": "/meta",
    "PARLAY_TELEGRAM_API_BASE_URL": "/telegram",
    "PARLAY_TWILIO_API_BASE_URL": "/twilio",
    "PARLAY_WECHAT_API_BASE_URL": "/wechat",
    "PARLAY_LINE_API_BASE_URL": "/line",
    "PARLAY_LINE_API_DATA_BASE_URL": "/line",
    "PARLAY_VIBER_API_BASE_URL": "/viber",
    "PARLAY_STRIPE_API_BASE_URL": "/stripe",
}
#: The stand-ins honour an Idempotency-Key header, so after a crash mid-send every channel can be
#: re-sent safely against them (real providers: only LINE; see docs/outbound.md).
#: The dev tenant's Stripe account when the stand-ins play Stripe: the gateway gets it from a
#: channel-accounts file `parlay dev` writes, the Stripe stand-in gets it (with the gateway's
#: webhook URL) at start, so payment links and their webhooks work out of the box.
DEV_STRIPE_ACCOUNT = {
    "tenant_id": tenancy.DEV_TENANT_ID,
    "channel_account_id": "demo-stripe",
    "channel": "stripe",
    "credentials": {"api_key": "sk_test_parlay_dev", "webhook_secret": "whsec_parlay_dev"},
    "settings": {},
}

STANDIN_RESEND_CHANNELS = "whatsapp,messenger,instagram,telegram,twilio,wechat,viber"


def _standins_default() -> bool:
    return os.environ.get("PARLAY_DEV_STANDINS", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def standins_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("parlay_standins") is not None


#: gRPC port of each service, in start order.
SERVICE_PORTS: dict[str, int] = {
    "gateway": 50051,
    "conversation": 50052,
    "profile": 50053,
    "orders": 50054,
    "payments": 50055,
}
#: HTTP port of the services that serve HTTP (webhooks, /healthz, /metrics).
SERVICE_HTTP_PORTS: dict[str, int] = {"gateway": GATEWAY_HTTP_PORT}


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    grpc_port: int
    http_port: int | None = None

    @property
    def module(self) -> str:
        return f"parlay_{self.name}"


SERVICES: tuple[ServiceSpec, ...] = tuple(
    ServiceSpec(name, port, SERVICE_HTTP_PORTS.get(name)) for name, port in SERVICE_PORTS.items()
)


def default_state_dir(cwd: Path | None = None) -> Path:
    """Where the local stack keeps data and logs.

    $PARLAY_STATE_DIR if set; else the nearest `.parlay` directory at or above the working
    directory; else `.parlay` next to the nearest `uv.lock` (the workspace root, so running
    from a service's folder finds the same stack); else `./.parlay`.
    """
    env = os.environ.get("PARLAY_STATE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    here = (cwd or Path.cwd()).resolve()
    for parent in (here, *here.parents):
        if (parent / ".parlay").is_dir():
            return parent / ".parlay"
    for parent in (here, *here.parents):
        if (parent / "uv.lock").is_file():
            return parent / ".parlay"
    return here / ".parlay"


@dataclass
class DevOptions:
    state_dir: Path = field(default_factory=default_state_dir)
    host: str = HOST
    #: Added to every port (Kafka, gRPC, HTTP): run a second stack next to the first.
    port_offset: int = 0
    #: None: PARLAY_DATABASE_URL / DATABASE_URL, else embedded Postgres under state_dir/pg.
    database_url: str | None = None
    services: tuple[str, ...] = tuple(SERVICE_PORTS)
    #: Module run for each service ("{svc}" is replaced); tests point it at a stand-in.
    service_module: str = "parlay_{svc}"
    python: str = sys.executable
    start_timeout: float = 120.0
    stop_timeout: float = 10.0
    follow_logs: bool = False
    partitions: int = DEFAULT_PARTITIONS
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Start the provider stand-ins and point the services at them (PARLAY_DEV_STANDINS=0: no).
    standins: bool = field(default_factory=_standins_default)

    @property
    def kafka_port(self) -> int:
        return KAFKA_PORT + self.port_offset

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def specs(self) -> list[ServiceSpec]:
        unknown = [s for s in self.services if s not in SERVICE_PORTS]
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_PORTS)}"
            )
        return [
            ServiceSpec(
                s.name,
                s.grpc_port + self.port_offset,
                s.http_port + self.port_offset if s.http_port else None,
            )
            for s in SERVICES
            if s.name in self.services
        ]

    def grpc_target(self, svc: str) -> str:
        return f"{self.host}:{SERVICE_PORTS[svc] + self.port_offset}"

    @property
    def standins_port(self) -> int:
        return STANDINS_PORT + self.port_offset

    @property
    def standins_url(self) -> str:
        return f"http://{self.host}:{self.standins_port}"

    @property
    def runs_standins(self) -> bool:
        return self.standins and standins_installed()


def service_env(
    spec: ServiceSpec, options: DevOptions, database_url: str, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment one service process gets."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "PARLAY_SERVICE_NAME": spec.name,
            "PARLAY_DATABASE_URL": database_url,
            "PARLAY_KAFKA_BOOTSTRAP": options.kafka_bootstrap,
            "PARLAY_GRPC_HOST": options.host,
            "PARLAY_GRPC_PORT": str(spec.grpc_port),
            "PARLAY_DEV_MODE": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if spec.http_port is not None:
        env["PARLAY_HTTP_PORT"] = str(spec.http_port)
    else:
        env.pop("PARLAY_HTTP_PORT", None)
    # Where every peer's gRPC server is (PARLAY_<SVC>_GRPC_TARGET), so services find each other.
    for svc in SERVICE_PORTS:
        env[f"PARLAY_{svc.upper()}_GRPC_TARGET"] = options.grpc_target(svc)
    # ... and how they authenticate to each other (the dev service key; dev mode only).
    env.setdefault("PARLAY_SERVICE_API_KEY", tenancy.DEV_SERVICE_API_KEY)
    if options.runs_standins:
        # Outbound messages go to the local provider stand-ins instead of the real providers.
        for name, path in STANDIN_BASE_PATHS.items():
            env[name] = options.standins_url + path
        env.setdefault("PARLAY_OUTBOUND_IDEMPOTENT_RESEND_CHANNELS", STANDIN_RESEND_CHANNELS)
        if spec.name == "gateway" and "PARLAY_CHANNEL_ACCOUNTS_FILE" not in env:
            env["PARLAY_CHANNEL_ACCOUNTS_FILE"] = str(dev_accounts_file(options))
    env.update(options.extra_env)
    return env


def dev_accounts_file(options: DevOptions) -> Path:
    """The channel-accounts file of the dev stack (the demo Stripe account), written on use."""
    path = options.state_dir / "dev_channel_accounts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"channel_accounts": [DEV_STRIPE_ACCOUNT]}, indent=2))
    return path


async def register_dev_stripe_account(options: DevOptions) -> None:
    """Tell the Stripe stand-in about the demo account and where its webhooks go."""
    gateway = next(s for s in options.specs() if s.name == "gateway")
    body = json.dumps(
        {
            "channel": "stripe",
            "credentials": DEV_STRIPE_ACCOUNT["credentials"],
            "webhook_url": f"http://{options.host}:{gateway.http_port}/webhooks/stripe/"
            f"{DEV_STRIPE_ACCOUNT['channel_account_id']}",
        }
    ).encode()
    request = urllib.request.Request(
        f"{options.standins_url}/_standin/accounts",
        data=body,
        headers={"content-type": "application/json"},
        method="POST",
    )
    await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).close())


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


class StartupError(RuntimeError):
    """The stack could not start; `detail` is shown to the user (e.g. a log tail)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ServiceExited(StartupError):
    def __init__(self, service: str, returncode: int | None, log_tail: str, log_path: Path) -> None:
        super().__init__(
            f"service {service} exited with code {returncode} (log: {log_path})", log_tail
        )
        self.service = service
        self.returncode = returncode


# --------------------------------------------------------------------------------------------
# readiness probes
# --------------------------------------------------------------------------------------------


async def grpc_health(target: str, timeout: float = 1.0, channel: Any = None) -> str:
    """The grpc.health.v1 status of service "" at target ("SERVING", ...; "UNREACHABLE")."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    own = channel is None
    ch = channel or grpc.aio.insecure_channel(target)
    try:
        stub = health_pb2_grpc.HealthStub(ch)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return "NO_HEALTH_SERVICE"
        return "UNREACHABLE"
    finally:
        if own:
            await ch.close()


async def http_get_status(
    host: str, port: int, path: str = "/healthz", timeout: float = 2.0
) -> int:
    """Status code of a plain HTTP/1.1 GET (0 if unreachable). No client library needed."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return 0
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.decode("latin-1").split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (TimeoutError, OSError, ValueError):
        return 0
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# --------------------------------------------------------------------------------------------
# one service process
# --------------------------------------------------------------------------------------------


class _StateColumn(SpinnerColumn):
    """A spinner while running, a green check when done, a red cross when it failed."""

    def render(self, task: Any) -> Any:
        failed = task.fields.get("failed")
        if failed == "cancelled":
            return Text("–", style="yellow")
        if failed:
            return Text("✗", style="red")
        if task.finished:
            return Text("✓", style="green")
        return super().render(task)


_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red")


class ServiceProcess:
    """A service child process: own process group, output to its log file (and console)."""

    def __init__(
        self,
        spec: ServiceSpec,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.echo = echo
        self.proc: asyncio.subprocess.Process | None = None
        self.recent: deque[str] = deque(maxlen=60)
        self._reader: asyncio.Task[None] | None = None
        self._log_fh: IO[bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(list(self.recent)[-lines:])

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        self._log_fh = open(self.log_path, "wb")  # noqa: SIM115, ASYNC230 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(signal.SIGTERM),
        )
        self._reader = asyncio.create_task(self._pump(), name=f"log-{self.name}")

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit
                line = await stream.read(64 * 1024)
            if not line:
                break
            if self._log_fh is not None:
                self._log_fh.write(line)
                self._log_fh.flush()
            text = line.decode("utf-8", "replace").rstrip("\n")
            self.recent.append(text)
            if self.echo is not None:
                self.echo(self.name, text)

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, timeout: float, *, force: bool = False) -> int | None:
        if self.proc is None:
            return None
        pgid = self.proc.pid
        if self.proc.returncode is None:
            _killpg(pgid, signal.SIGKILL if force else signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                _killpg(pgid, signal.SIGKILL)
                await self.proc.wait()
        _killpg(pgid, signal.SIGKILL)  # anything the service left behind in its group
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return self.proc.returncode


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --------------------------------------------------------------------------------------------
# the stack
# --------------------------------------------------------------------------------------------


class DevStack:
    def __init__(self, options: DevOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console()
        self.broker: LocalBroker | None = None
        self.postgres: LocalPostgres | None = None
        self.database_url: str | None = None
        self.services: list[ServiceProcess] = []
        self.standins: ServiceProcess | None = None
        self._force = False
        self._color = {s: _COLORS[i % len(_COLORS)] for i, s in enumerate(SERVICE_PORTS)}

    @property
    def state_file(self) -> Path:
        return self.options.state_dir / "dev.json"

    # -- pre-flight ---------------------------------------------------------------------------
    def preflight(self) -> None:
        opts = self.options
        opts.specs()  # validates service names
        if self.state_file.exists():
            try:
                pid = int(json.loads(self.state_file.read_text()).get("pid", 0))
            except (ValueError, OSError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise StartupError(
                    f"parlay dev is already running from {opts.state_dir} (pid {pid})",
                    "Stop it first, or use another --state-dir and --port-offset.",
                )
        wanted = [("Kafka", opts.kafka_port)]
        if opts.runs_standins:
            wanted.append(("provider stand-ins", opts.standins_port))
        for spec in opts.specs():
            wanted.append((f"{spec.name} gRPC", spec.grpc_port))
            if spec.http_port:
                wanted.append((f"{spec.name} HTTP", spec.http_port))
        busy = [
            f"{what} {opts.host}:{port}"
            for what, port in wanted
            if not port_is_free(port, opts.host)
        ]
        if busy:
            raise StartupError(
                "ports already in use: " + ", ".join(busy),
                "Another stack running? Stop it, or pass --port-offset N to shift every port.",
            )

    # -- start --------------------------------------------------------------------------------
    async def start(self) -> None:
        opts = self.options
        self.preflight()
        opts.logs_dir.mkdir(parents=True, exist_ok=True)
        with Progress(
            _StateColumn(),
            TextColumn("{task.description}"),
            TextColumn("[dim]{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as progress:
            await self._start_with(progress)

    async def _step(
        self, progress: Progress, task: TaskID, coro: Awaitable[Any], done: str = "ready"
    ) -> Any:
        try:
            result = await coro
        except asyncio.CancelledError:
            progress.update(task, status="[dim]cancelled", failed="cancelled")
            progress.stop_task(task)
            raise
        except BaseException:
            progress.update(task, status="[red]failed", failed=True)
            progress.stop_task(task)
            raise
        progress.update(task, status=done, completed=1)
        progress.stop_task(task)
        return result

    async def _start_with(self, progress: Progress) -> None:
        opts = self.options
        specs = opts.specs()
        db_url = opts.database_url or database_url_from_env()

        t_broker = progress.add_task(
            f"Kafka broker (tansu) {opts.kafka_bootstrap}", total=1, status="starting"
        )
        pg_label = "Postgres " + (
            redact(db_url) if db_url else f"(embedded, {opts.state_dir / 'pg'})"
        )
        t_pg = progress.add_task(pg_label, total=1, status="starting")

        self.broker = LocalBroker(opts.host, opts.kafka_port, log_path=opts.logs_dir / "broker.log")
        self.postgres = LocalPostgres(
            opts.state_dir / "pg", url=db_url, log_path=opts.logs_dir / "postgres.log"
        )
        # Spawn both before anything else (no gRPC/threads initialised yet), then wait.
        self.broker.spawn()
        results = await asyncio.gather(
            self._step(progress, t_broker, self.broker.wait_ready(), "ready"),
            self._step(progress, t_pg, self.postgres.start(), "ready"),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise StartupError(str(result).split("\n", 1)[0], str(result)) from result
        self.database_url = self.postgres.url
        progress.update(t_pg, description=f"Postgres {redact(self.database_url)}")

        t_topics = progress.add_task(f"topics ({len(ALL_TOPICS)})", total=1, status="creating")
        t_tenancy = progress.add_task("tenancy schema + dev tenant", total=1, status="migrating")

        async def topics() -> str:
            created = await ensure_topics(opts.kafka_bootstrap, ALL_TOPICS, opts.partitions)
            return f"{len(created)} created, {len(ALL_TOPICS) - len(created)} existed"

        async def tenants() -> str:
            conn = await asyncpg.connect(self.database_url)
            try:
                await tenancy.migrate(conn)
                await tenancy.seed_dev(conn)
            finally:
                await conn.close()
            return f"{tenancy.DEV_TENANT_ID} / {tenancy.DEV_API_KEY}"

        created, _ = await _all_or_nothing(
            [
                self._step(progress, t_topics, topics(), "ok"),
                self._step(progress, t_tenancy, tenants(), "ok"),
            ]
        )
        progress.update(t_topics, status=created)

        if opts.runs_standins:
            await self._start_standins(progress)

        # Services: spawn all, then probe.
        tasks: dict[str, TaskID] = {}
        for spec in specs:
            module = opts.service_module.format(svc=spec.name)
            proc = ServiceProcess(
                spec,
                [opts.python, "-m", module],
                service_env(spec, opts, self.database_url),
                opts.logs_dir / f"{spec.name}.log",
                echo=self._echo if opts.follow_logs else None,
            )
            self.services.append(proc)
            tasks[spec.name] = progress.add_task(
                f"{spec.name:<13} gRPC {opts.host}:{spec.grpc_port}"
                + (f"  HTTP :{spec.http_port}" if spec.http_port else ""),
                total=1,
                status="starting",
            )
        for proc in self.services:
            await proc.start()
        self._write_state_file()
        await _all_or_nothing(
            [self._wait_service(proc, progress, tasks[proc.name]) for proc in self.services]
        )

    async def _start_standins(self, progress: Progress) -> None:
        """The provider stand-ins, one process for every API family; ready when /healthz is."""
        opts = self.options
        task = progress.add_task(
            f"provider stand-ins {opts.standins_url}", total=1, status="starting"
        )
        proc = ServiceProcess(
            ServiceSpec("standins", 0, opts.standins_port),
            [
                opts.python,
                "-m",
                "parlay_standins",
                "--host",
                opts.host,
                "--port",
                str(opts.standins_port),
                "--log-level",
                "warning",
            ],
            {**os.environ, "PYTHONUNBUFFERED": "1"},
            opts.logs_dir / "standins.log",
            echo=self._echo if opts.follow_logs else None,
        )
        self.standins = proc
        await proc.start()

        async def ready() -> str:
            deadline = time.monotonic() + opts.start_timeout
            while await http_get_status(opts.host, opts.standins_port, "/healthz") != 200:
                if not proc.running():
                    raise ServiceExited("standins", proc.returncode, proc.log_tail(), proc.log_path)
                if time.monotonic() > deadline:
                    raise StartupError("provider stand-ins not ready", proc.log_tail())
                await asyncio.sleep(0.1)
            if "gateway" in opts.services:
                await register_dev_stripe_account(opts)
            return "ready"

        await self._step(progress, task, ready(), "ready")

    async def _wait_service(self, proc: ServiceProcess, progress: Progress, task: TaskID) -> None:
        import grpc

        opts = self.options
        spec = proc.spec
        target = f"{opts.host}:{spec.grpc_port}"
        deadline = time.monotonic() + opts.start_timeout
        channel = grpc.aio.insecure_channel(target)
        grpc_status = "UNREACHABLE"
        http_status = 0
        try:
            while True:
                if not proc.running():
                    # let the log pump drain the last lines before reporting
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(proc._reader), 2)  # type: ignore[arg-type]
                    progress.update(task, status=f"[red]exited ({proc.returncode})", failed=True)
                    progress.stop_task(task)
                    raise ServiceExited(spec.name, proc.returncode, proc.log_tail(), proc.log_path)
                if grpc_status != "SERVING":
                    grpc_status = await grpc_health(target, 1.0, channel)
                if grpc_status == "SERVING" and spec.http_port and http_status != 200:
                    http_status = await http_get_status(opts.host, spec.http_port, "/healthz")
                ready = grpc_status == "SERVING" and (not spec.http_port or http_status == 200)
                if ready:
                    progress.update(task, status="SERVING", completed=1)
                    progress.stop_task(task)
                    return
                status = f"gRPC {grpc_status.lower()}"
                if spec.http_port and grpc_status == "SERVING":
                    status += f", /healthz {http_status or 'unreachable'}"
                progress.update(task, status=status)
                if time.monotonic() > deadline:
                    progress.update(task, status=f"[red]not ready ({status})", failed=True)
                    progress.stop_task(task)
                    raise StartupError(
                        f"service {spec.name} not ready after {opts.start_timeout:.0f}s ({status})",
                        proc.log_tail(),
                    )
                await asyncio.sleep(0.25)
        except asyncio.CancelledError:
            progress.update(task, status="[dim]cancelled", failed="cancelled")
            progress.stop_task(task)
            raise
        finally:
            await channel.close()

    def _echo(self, service: str, line: str) -> None:
        color = self._color.get(service, "white")
        self.console.print(
            f"[{color}]{service:>12} |[/] {line}", markup=True, highlight=False, soft_wrap=True
        )

    def _write_state_file(self) -> None:
        opts = self.options
        data = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "kafka_bootstrap": opts.kafka_bootstrap,
            "kafka_cluster_id": self.broker.cluster_id if self.broker else None,
            "database_url": self.database_url,
            "embedded_postgres": bool(self.postgres and self.postgres.embedded),
            "services": {
                p.name: {
                    "pid": p.pid,
                    "grpc": f"{opts.host}:{p.spec.grpc_port}",
                    "http": f"http://{opts.host}:{p.spec.http_port}" if p.spec.http_port else None,
                    "log": str(p.log_path),
                }
                for p in self.services
            },
            "dev_tenant": tenancy.DEV_TENANT_ID,
            "dev_api_key": tenancy.DEV_API_KEY,
        }
        if self.standins is not None:
            data["standins"] = {
                "pid": self.standins.pid,
                "url": opts.standins_url,
                "log": str(self.standins.log_path),
            }
        if self.broker is not None:
            data["broker_pid"] = self.broker.pid
        if self.postgres is not None and self.postgres.embedded:
            data["postgres_pid"] = self.postgres.pid
        self.state_file.write_text(json.dumps(data, indent=2))

    # -- summary ------------------------------------------------------------------------------
    def endpoints_table(self) -> Table:
        opts = self.options
        table = Table(title="Parlay dev stack", title_justify="left", show_header=True)
        table.add_column("what", style="bold")
        table.add_column("where")
        table.add_column("notes", style="dim")
        cluster = self.broker.cluster_id if self.broker else ""
        table.add_row(
            "Kafka bootstrap", opts.kafka_bootstrap, f"tansu, in memory, cluster id {cluster}"
        )
        if self.database_url:
            pg_note = (
                f"embedded, data {opts.state_dir / 'pg'}"
                if self.postgres and self.postgres.embedded
                else "from DATABASE_URL"
            )
            table.add_row("Postgres", redact(self.database_url), pg_note)
        for proc in self.services:
            spec = proc.spec
            if spec.http_port:
                table.add_row(
                    f"{spec.name} HTTP",
                    f"http://{opts.host}:{spec.http_port}",
                    "webhooks /webhooks/<channel>/<account>, /healthz, /metrics",
                )
            table.add_row(f"{spec.name} gRPC", f"{opts.host}:{spec.grpc_port}", f"pid {proc.pid}")
        if self.standins is not None:
            url = opts.standins_url
            table.add_row(
                "provider stand-ins",
                url,
                "outbound goes here: /meta /telegram /twilio /wechat /line /viber;"
                f" Stripe (account demo-stripe): /stripe; sent requests: {url}/_standin/requests",
            )
        table.add_row(
            "dev tenant / API key",
            f"{tenancy.DEV_TENANT_ID} / {tenancy.DEV_API_KEY}",
            "authorization: Bearer dev-key (dev mode only)",
        )
        table.add_row("logs", str(opts.logs_dir), "<svc>.log, broker.log, postgres.log")
        return table

    # -- stop ---------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Services first (all at once), then the broker, then Postgres. Safe to call twice."""
        opts = self.options
        if self.services:
            await asyncio.gather(
                *(p.stop(opts.stop_timeout, force=self._force) for p in self.services),
                return_exceptions=True,
            )
            self.services = []
        if self.standins is not None:
            await self.standins.stop(opts.stop_timeout, force=self._force)
            self.standins = None
        if self.broker is not None:
            await self.broker.stop(1.0 if self._force else opts.stop_timeout)
            self.broker = None
        if self.postgres is not None:
            await self.postgres.stop(5.0 if self._force else 30.0)
            self.postgres = None
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    # -- run ----------------------------------------------------------------------------------
    async def run(self) -> int:
        """Start, print endpoints, run until Ctrl-C/SIGTERM or a service dies. Exit code."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()

        first_signal_at: list[float] = []

        def on_signal(signame: str) -> None:
            if stop_requested.is_set():
                # A wrapper (uv run, a process manager) may forward the same Ctrl-C: only a
                # second signal a moment later means "kill now".
                if time.monotonic() - first_signal_at[0] < 1.0:
                    return
                self._force = True
                self.console.print(f"[red]{signame} again: killing everything now[/]")
            else:
                first_signal_at.append(time.monotonic())
                self.console.print(f"\n[yellow]{signame}: stopping the stack...[/]")
            stop_requested.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
        exit_code = 0
        try:
            starter = asyncio.create_task(self.start(), name="dev-start")
            stopper = asyncio.create_task(stop_requested.wait(), name="dev-stop-wait")
            await asyncio.wait({starter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not starter.done():
                starter.cancel()
                with contextlib.suppress(BaseException):
                    await starter
                return 130
            try:
                starter.result()
            except Exception as exc:  # noqa: BLE001 - reported, then everything is stopped
                stopper.cancel()
                if not isinstance(exc, StartupError):
                    exc = StartupError(f"{type(exc).__name__}: {exc}")
                self._report_failure(exc)
                reported = getattr(exc, "service", None)
                for proc in self.services:
                    if proc.name != reported and proc.returncode is not None:
                        last = proc.recent[-1] if proc.recent else ""
                        self.console.print(
                            f"[red]✗ service {proc.name} also exited with code {proc.returncode}"
                            f"[/] (log: {proc.log_path}): {last}",
                            highlight=False,
                        )
                return 1

            self.console.print(self.endpoints_table())
            hint = (
                "" if self.options.follow_logs else "  (service output: --follow, or the log files)"
            )
            self.console.print(
                f"[green]Up: {len(self.services)} service(s).[/] Press Ctrl-C to stop.{hint}"
            )
            watchers = {
                asyncio.create_task(p.wait(), name=f"wait-{p.name}"): p for p in self.services
            }
            done, _ = await asyncio.wait({stopper, *watchers}, return_when=asyncio.FIRST_COMPLETED)
            for task in watchers:
                if task not in done:
                    task.cancel()
            if stopper not in done:
                stopper.cancel()
                dead = [watchers[t] for t in done if t in watchers]
                for proc in dead:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(proc._reader), 2)  # type: ignore[arg-type]
                    self._report_failure(
                        ServiceExited(proc.name, proc.returncode, proc.log_tail(), proc.log_path)
                    )
                self.console.print("[yellow]stopping the rest of the stack...[/]")
                exit_code = 1
            return exit_code
        finally:
            await self.stop()
            for sig in installed:
                loop.remove_signal_handler(sig)
            self.console.print("[dim]parlay dev stopped.[/]")

    def _report_failure(self, exc: StartupError) -> None:
        self.console.print(f"[bold red]✗ {exc}[/]")
        if exc.detail:
            self.console.print(
                Panel(exc.detail, title="last lines", border_style="red", expand=False)
            )


def run_dev(options: DevOptions, console: Console | None = None) -> int:
    """Blocking entry point used by `parlay dev`."""
    return asyncio.run(DevStack(options, console).run())


# --------------------------------------------------------------------------------------------
# migrations of every service (`parlay migrate`)
# --------------------------------------------------------------------------------------------

MIGRATIONS_ENTRY_POINT_GROUP = "parlay.migrations"


def discover_migrations(services: Iterable[str] = SERVICE_PORTS) -> dict[str, Callable[..., Any]]:
    """name -> `migrate(database_url)` callable (sync or async), for `parlay migrate`.

    Contract for a service: a module `parlay_<svc>.migrations` with either

    * `MIGRATIONS`: a sequence of `parlay_kit.db.Migration`, applied with the event-store
      migrations to schema `<svc>` -- exactly what `ServiceRuntime.open()` applies at start; or
    * `migrate(database_url: str)`: full control (sync or async), idempotent.

    Other packages can add steps through the entry-point group `parlay.migrations`
    (name = label, value = a `migrate(database_url)` callable).
    """
    import importlib
    import importlib.metadata

    found: dict[str, Callable[..., Any]] = {}
    for svc in services:
        module_name = f"parlay_{svc}.migrations"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in (module_name, f"parlay_{svc}"):
                raise
            continue
        migrate = getattr(module, "migrate", None)
        if callable(migrate):
            found[svc] = migrate
        elif getattr(module, "MIGRATIONS", None) is not None:
            found[svc] = _schema_migrator(svc, list(module.MIGRATIONS))
    for ep in importlib.metadata.entry_points(group=MIGRATIONS_ENTRY_POINT_GROUP):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def _schema_migrator(schema: str, migrations: list[Any]) -> Callable[[str], Awaitable[None]]:
    async def migrate(database_url: str) -> None:
        from parlay_kit import db
        from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS

        conn = await asyncpg.connect(database_url)
        try:
            await db.migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *migrations])
        finally:
            await conn.close()

    return migrate


async def migrate_all(
    database_url: str, services: Iterable[str] = SERVICE_PORTS
) -> list[tuple[str, str]]:
    """Tenancy first, then every discovered service migration; [(name, "ok"|"absent")]."""
    results: list[tuple[str, str]] = []
    conn = await asyncpg.connect(database_url)
    try:
        await tenancy.migrate(conn)
    finally:
        await conn.close()
    results.append(("tenancy", "ok"))
    services = list(services)
    found = discover_migrations(services)
    for name in [*services, *(n for n in found if n not in services)]:
        migrate = found.get(name)
        if migrate is None:
            results.append((name, "absent"))
            continue
        outcome = migrate(database_url)
        if asyncio.iscoroutine(outcome):
            await outcome
        results.append((name, "ok"))
    return results


async def _all_or_nothing(coros: Sequence[Awaitable[Any]]) -> list[Any]:
    """Like gather, but the first failure cancels the others and is raised as it is."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
