"""The benchmark registry and what every benchmark gets and returns.

A benchmark is one module that registers an async function::

    @register("ingest", "Webhook ingest throughput: gateway vs bare FastAPI endpoint")
    async def run(ctx: Context) -> Result: ...

`bench/__main__.py` imports every module of `bench.benchmarks`, runs the selected benchmarks by
`order` (each isolated: its own processes, ports, schemas) and reports their figures.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.procs import Child, ChildExited, ProcessGroup

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Options:
    duration: float = 10.0
    warmup: float = 2.0
    concurrency: int = 64
    rate: float = 500.0
    poll_interval_ms: float = 5.0
    #: PARLAY_KAFKA_FETCH_MAX_WAIT_MS for the services (None: their default).
    fetch_max_wait_ms: int | None = None
    database_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    keep: bool = False
    profile: bool = False
    #: Module run for a service instead of parlay_<svc> (A/B a patched build): {"gateway": "x"}.
    service_modules: dict[str, str] = field(default_factory=dict)


@dataclass
class Figure:
    """One reported number. `target` is a human-readable goal; `ok` whether it was met."""

    key: str
    label: str
    value: float | int | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None
    fmt: str = ",.0f"

    def text(self) -> str:
        if self.value is None:
            return "—"
        return f"{self.value:{self.fmt}}" + (f" {self.unit}" if self.unit else "")


@dataclass
class Result:
    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "figures": {
                f.key: {
                    "label": f.label,
                    "value": f.value,
                    "unit": f.unit,
                    "target": f.target or None,
                    "ok": f.ok,
                }
                for f in self.figures
            },
            "notes": self.notes,
            "details": self.details,
        }


@dataclass
class Context:
    options: Options
    procs: ProcessGroup
    console: Console
    run_id: str
    work_dir: Path

    def path(self, name: str) -> Path:
        return self.work_dir / name

    def python_module(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    async def run_ready_go(
        self,
        children: list[Child],
        *,
        start_in: float = 0.5,
        ready_timeout: float = 60.0,
    ) -> float:
        """Wait until every child printed READY, then send them all ``GO <t0>``."""

        async def ready(child: Child) -> None:
            assert child.proc.stdout is not None
            while True:
                line = await asyncio.to_thread(child.proc.stdout.readline)
                if not line:
                    raise ChildExited(child)
                if line.strip() == b"READY":
                    return

        await asyncio.wait_for(asyncio.gather(*(ready(c) for c in children)), ready_timeout)
        t0 = time.monotonic() + start_in
        for child in children:
            assert child.proc.stdin is not None
            child.proc.stdin.write(f"GO {t0!r}\n".encode())
            child.proc.stdin.flush()
        return t0

    async def wait_exit(self, child: Child, timeout: float) -> int:
        try:
            return await asyncio.to_thread(child.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.procs.stop(child)
            raise TimeoutError(f"{child.name} did not finish within {timeout:.0f}s") from None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def new_run_id() -> str:
    return secrets.token_hex(3)


Runner = Callable[[Context], Awaitable[Result]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Runner
    order: int = 100


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, title: str, *, order: int = 100) -> Callable[[Runner], Runner]:
    """Register a benchmark. `name` is what `--only` takes; lower `order` runs first."""

    def decorate(fn: Runner) -> Runner:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = Benchmark(name, title, fn, order)
        return fn

    return decorate


def load_registry() -> dict[str, Benchmark]:
    """Import every module of bench.benchmarks; the registry sorted by order, then name."""
    import importlib
    import pkgutil

    import bench.benchmarks as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    ordered = sorted(REGISTRY.values(), key=lambda b: (b.order, b.name))
    REGISTRY.clear()
    REGISTRY.update((b.name, b) for b in ordered)
    return REGISTRY


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles (p50, p95, p99, max) and the mean; {} if empty."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def q(p: float) -> float:
        # nearest rank: the smallest value with at least p of the sample at or below it
        rank = max(1, -(-int(p * 1000) * n // 1000))
        return ordered[min(n, rank) - 1]

    return {
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": ordered[-1],
        "mean": sum(ordered) / n,
    }
