"""``python -m bench`` (what ``make bench`` runs): run the registered benchmarks, print a table,
write ``bench/results/latest.json``.

    uv run python -m bench                      # everything
    uv run python -m bench --only ingest        # one benchmark (repeatable / comma-separated)
    uv run python -m bench --list

Postgres: PARLAY_BENCH_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test (fresh
schemas with a random suffix, dropped afterwards). Every child process runs in its own process
group and is stopped on exit, failure, Ctrl-C or SIGTERM. Logs of a run: bench/results/runs/<id>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import timeit
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.core import REGISTRY, REPO_ROOT, Context, Options, Result, load_registry, new_run_id
from bench.procs import ProcessGroup, install_signal_handlers, machine_cpu_times
from bench.stack import check_database

RESULTS_DIR = REPO_ROOT / "bench" / "results"
KEEP_RUNS = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Options()
    p = argparse.ArgumentParser(
        prog="python -m bench", description="Parlay benchmarks (make bench)."
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these benchmarks (repeatable or comma-separated); see --list",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--duration", type=float, default=defaults.duration, help="measured seconds")
    p.add_argument("--warmup", type=float, default=defaults.warmup, help="warm-up seconds")
    p.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="ingest: connections"
    )
    p.add_argument("--rate", type=float, default=defaults.rate, help="e2e: messages per second")
    p.add_argument(
        "--poll-interval-ms",
        type=float,
        default=defaults.poll_interval_ms,
        help="e2e: read-model poll interval",
    )
    p.add_argument(
        "--fetch-max-wait-ms",
        type=int,
        default=None,
        help="services' consumer fetch wait (PARLAY_KAFKA_FETCH_MAX_WAIT_MS; default: theirs)",
    )
    p.add_argument(
        "--database-url",
        default=os.environ.get("PARLAY_BENCH_DATABASE_URL") or defaults.database_url,
        help="Postgres (default: $PARLAY_BENCH_DATABASE_URL or %(default)s)",
    )
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "latest.json", help="result file")
    p.add_argument("--keep", action="store_true", help="keep the bench schemas (for inspection)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the gateway with py-spy during the ingest run (bench/results/runs/<id>/)",
    )
    p.add_argument(
        "--service-module",
        action="append",
        default=[],
        metavar="SVC=MODULE",
        help="run MODULE instead of parlay_SVC (to compare a patched service; repeatable)",
    )
    p.add_argument("--strict", action="store_true", help="exit 2 when a figure misses its target")
    return p.parse_args(argv)


def selected(names: list[str]) -> list[str]:
    wanted = [n.strip() for arg in names for n in arg.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in REGISTRY]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}"
        )
    return [n for n in REGISTRY if not wanted or n in wanted]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "--short", "HEAD"), "dirty": bool(run("status", "--short"))}


def machine_facts(pg_version: str) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 0
    versions: dict[str, str] = {}
    for dist in ("uvicorn", "fastapi", "httptools", "uvloop", "asyncpg", "aiokafka"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    busy = None
    before = machine_cpu_times()
    time.sleep(1.0)
    after = machine_cpu_times()
    if before and after and after[1] > before[1]:
        busy = round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)
    # Figures move with the machine's single-core speed (seen: 2.5x between two "2-core"
    # machines); this fixed pure-Python loop lets runs from different machines be compared.
    reference_us = round(
        min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 1
    )
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = []
    return {
        "busy_pct_before_start": busy,
        "load_average_before_start": load,
        "cores": usable,
        "python_reference_loop_us": reference_us,
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "postgres": pg_version,
        "packages": versions,
    }


def command_line() -> str:
    if os.environ.get("MAKELEVEL"):
        return "make bench"
    return "uv run python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def render(console: Console, report: dict[str, Any], results: list[Result]) -> None:
    m = report["machine"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("command", report["command"])
    facts.add_row("date", report["started_at"])
    facts.add_row(
        "machine",
        f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['platform']}",
    )
    facts.add_row(
        "single-core speed",
        f"{m.get('python_reference_loop_us')} µs per sum(range(1000)) (lower is faster; "
        "compare figures from machines with similar values)",
    )
    busy = m.get("busy_pct_before_start")
    facts.add_row(
        "load before start",
        f"{busy}% CPU busy, load average {' '.join(map(str, m.get('load_average_before_start', [])))}"
        + (
            "  [yellow](other work running: figures will be lower and noisier)[/]"
            if busy is not None and busy > 20
            else ""
        ),
    )
    facts.add_row(
        "software",
        f"Python {m['python']}, Postgres {m['postgres']}, "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
    )
    git = report["git"]
    facts.add_row("commit", f"{git['commit']}{' (+ uncommitted changes)' if git['dirty'] else ''}")
    console.print(facts)
    for r in results:
        table = Table(title=f"{r.name}: {r.title}", title_justify="left", show_lines=False)
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_column("", justify="center")
        if r.error:
            table.add_row("[red]failed[/]", "", "", "[red]✗[/]")
            console.print(table)
            console.print(f"[red]{r.error}[/]", highlight=False)
            continue
        for f in r.figures:
            mark = "" if f.ok is None else ("[green]✓[/]" if f.ok else "[red]✗[/]")
            table.add_row(f.label, f.text(), f.target, mark)
        console.print(table)
        for note in r.notes:
            console.print(f"  [yellow]note:[/] {note}", highlight=False)
        console.print(f"  [dim]{r.seconds:.0f} s[/]")


def prune_runs(runs_dir: Path) -> None:
    """Keep the newest KEEP_RUNS run directories (runs hold the lock, so none is in progress)."""
    runs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    for old in runs[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def exclusive_run(console: Console) -> Iterator[None]:
    """One bench run at a time on this machine: two runs would measure each other."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            console.print(f"[yellow]another bench run is in progress ({holder}); waiting for it[/]")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}: {command_line()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


async def run_all(names: list[str], ctx: Context) -> list[Result]:
    results: list[Result] = []
    for name in names:
        bench = REGISTRY[name]
        ctx.console.rule(f"[bold]{name}[/]: {bench.title}")
        started = time.monotonic()
        try:
            result = await bench.run(ctx)
        except Exception as exc:  # one benchmark failing does not hide the others
            result = Result(name, bench.title, error=f"{type(exc).__name__}: {exc}")
            result.details["traceback"] = traceback.format_exc()
        finally:
            ctx.procs.stop_all()
        result.seconds = time.monotonic() - started
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if args.list:
        load_registry()
        listing = Table.grid(padding=(0, 2))
        listing.add_column(style="bold", no_wrap=True)
        listing.add_column()
        for bench in REGISTRY.values():
            listing.add_row(bench.name, bench.title)
        console.print(listing)
        return 0
    with exclusive_run(console):
        return run(args, console)


def run(args: argparse.Namespace, console: Console) -> int:
    load_registry()
    names = selected(args.only)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        rate=args.rate,
        poll_interval_ms=args.poll_interval_ms,
        fetch_max_wait_ms=args.fetch_max_wait_ms,
        database_url=args.database_url,
        keep=args.keep,
        profile=args.profile,
        service_modules=dict(m.split("=", 1) for m in args.service_module),
    )
    run_id = new_run_id()
    started_at = dt.datetime.now(dt.UTC)
    work_dir = RESULTS_DIR / "runs" / f"{started_at:%Y%m%dT%H%M%S}-{run_id}"
    work_dir.mkdir(parents=True, exist_ok=True)
    prune_runs(work_dir.parent)
    procs = ProcessGroup(work_dir / "logs", cwd=REPO_ROOT)
    install_signal_handlers(procs)
    ctx = Context(options, procs, console, run_id, work_dir)

    try:
        pg_version = asyncio.run(check_database(options.database_url))
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    report: dict[str, Any] = {
        "command": command_line(),
        "started_at": started_at.isoformat(timespec="seconds"),
        "run_id": run_id,
        "work_dir": str(work_dir),
        "machine": machine_facts(pg_version),
        "git": _git(),
        "options": {k: v for k, v in vars(options).items() if k != "database_url"},
        "benchmarks": {},
    }
    console.print(
        f"bench run {run_id}: {', '.join(names)} — logs in {work_dir.relative_to(REPO_ROOT)}"
    )
    busy = report["machine"]["busy_pct_before_start"]
    if busy is not None and busy > 20:
        console.print(
            f"[yellow]warning: the machine is already {busy}% busy before the benchmarks start; "
            "the figures will be lower and noisier than on a quiet machine[/]"
        )
    try:
        results = asyncio.run(run_all(names, ctx))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping every child process[/]")
        procs.stop_all()
        return 130
    finally:
        procs.stop_all()

    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["benchmarks"] = {r.name: r.to_json() for r in results}
    console.print()
    render(console, report, results)
    text = json.dumps(report, indent=2, default=str)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text)
    (work_dir / "result.json").write_text(text)
    console.print(f"\nwrote {args.json}")
    if any(r.error for r in results):
        return 1
    if args.strict and any(f.ok is False for r in results for f in r.figures):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
