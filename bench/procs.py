"""Child processes of a bench run: each in its own session/process group, output to a log file,
stopped group-wide (SIGTERM, then SIGKILL) when the benchmark is done, when it fails, on Ctrl-C
or SIGTERM, and — through PR_SET_PDEATHSIG — even if the bench process itself is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 32 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    if os.uname().sysname != "Linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


class ChildExited(RuntimeError):
    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.name} exited with code {child.proc.returncode} (log {child.log_path}):\n"
            + child.log_tail()
        )


class ProcessGroup:
    """Every process the bench starts. `stop_all()` is idempotent and runs at exit."""

    def __init__(self, logs_dir: Path, cwd: Path | None = None) -> None:
        self.logs_dir = logs_dir
        self.cwd = cwd
        self.children: list[Child] = []
        atexit.register(self.stop_all)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout_pipe: bool = False,
        death_signal: int = signal.SIGTERM,
    ) -> Child:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        log.write(f"=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(  # noqa: S603
            list(argv),
            env=env,
            cwd=cwd or self.cwd,
            stdin=stdin,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent(death_signal),
        )
        child = Child(name, list(argv), proc, log_path, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 10.0) -> int | None:
        """SIGTERM the child's process group, wait, then SIGKILL whatever is left in it."""
        if child.proc.poll() is None:
            _killpg(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout)
        _killpg(child.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)
        for stream in (child.proc.stdin, child.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if child._log is not None:
            with contextlib.suppress(OSError):
                child._log.close()
            child._log = None
        if child in self.children:
            self.children.remove(child)
        return child.proc.returncode

    def stop_all(self, timeout: float = 10.0) -> None:
        # Newest first: services before the broker they talk to. SIGTERM all, then wait.
        children = list(reversed(self.children))
        for child in children:
            if child.proc.poll() is None:
                _killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            self.stop(child, timeout=0)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def install_signal_handlers(procs: ProcessGroup) -> None:
    """Ctrl-C, SIGTERM and SIGHUP: signal every child group at once (so threads blocked on a
    child return), then unwind with KeyboardInterrupt so every `finally` runs and waits for
    them. A second signal kills the groups outright."""
    received = 0

    def interrupt(signum: int, frame: object) -> None:
        nonlocal received
        received += 1
        for child in list(procs.children):
            _killpg(child.pid, signal.SIGTERM if received == 1 else signal.SIGKILL)
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int, *, reaped_children: bool = False) -> float | None:
    """User + system CPU time of a process (all its threads) so far; None if unreadable.
    With `reaped_children`, plus the CPU of its children that have exited and been waited for
    (how a Postgres backend that ends inside a window still counts: in the postmaster)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14 to 17.
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def machine_cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


def group_cpu_seconds(comm: str) -> dict[int, float]:
    """CPU so far (with reaped children) of every process named `comm`, by pid."""
    out = {}
    for pid in pids_named(comm):
        cpu = process_cpu_seconds(pid, reaped_children=True)
        if cpu is not None:
            out[pid] = cpu
    return out


def group_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU a process group used between two `group_cpu_seconds` readings. A process that
    started in between counts in full; one that ended counts through its parent's reaped
    children (when the parent is in the group, as the postmaster is), less what it had used
    before."""
    started_or_lasted = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    ended = sum(cpu for pid, cpu in before.items() if pid not in after)
    return max(0.0, started_or_lasted - ended)


def pids_named(comm: str) -> list[int]:
    """Processes whose command name is `comm` (e.g. every Postgres backend on the machine)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
    return pids


class CpuWindow:
    """CPU used by some processes, and by the whole machine, between start() and stop().
    `groups` are process names summed over every process of that name (e.g. "postgres": all
    backends, whoever they serve)."""

    def __init__(self, pids: dict[str, int], groups: tuple[str, ...] = ("postgres",)) -> None:
        self.pids = pids
        self.groups = groups
        self._groups: dict[str, dict[int, float]] = {}
        self._start: dict[str, float | None] = {}
        self._machine: tuple[float, float] | None = None
        self._t = 0.0

    def start(self) -> None:
        self._t = time.monotonic()
        self._start = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._groups = {g: group_cpu_seconds(g) for g in self.groups}
        self._machine = machine_cpu_times()

    def stop(self) -> dict[str, float | None]:
        elapsed = time.monotonic() - self._t
        out: dict[str, float | None] = {"seconds": round(elapsed, 2)}
        for name, pid in self.pids.items():
            before, after = self._start.get(name), process_cpu_seconds(pid)
            out[f"{name}_cpu_seconds"] = (
                None if before is None or after is None else round(after - before, 3)
            )
        for group, at_start in self._groups.items():
            used = group_cpu_between(at_start, group_cpu_seconds(group))
            out[f"{group}_cpu_seconds"] = round(used, 3)
        machine = machine_cpu_times()
        if self._machine and machine:
            busy = machine[0] - self._machine[0]
            total = machine[1] - self._machine[1]
            out["machine_busy_pct"] = round(100 * busy / total, 1) if total else None
        return out
