"""Optional sampling profiles (``--profile``): py-spy records a service process during the
measured window; the collapsed stacks are summarized as the functions with the most samples
(self and inclusive). py-spy comes from PyPI through `uvx` (not a project dependency).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.core import Context
from bench.procs import Child

_LINE = re.compile(r":\d+\)$")
_PROFILERS: list[tuple[str, Child, Path]] = []


def py_spy_command() -> list[str]:
    if shutil.which("py-spy"):
        return ["py-spy"]
    if shutil.which("uvx"):
        return ["uvx", "py-spy"]
    return [sys.executable, "-m", "uv", "tool", "run", "py-spy"]


def start_profiler(ctx: Context, pid: int, name: str, seconds: float, rate: int = 200) -> None:
    out = ctx.path(f"profile-{name}.txt")
    child = ctx.procs.spawn(
        f"py-spy-{name}",
        [
            *py_spy_command(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            str(rate),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
    )
    _PROFILERS.append((name, child, out))


def _frame(raw: str) -> str:
    return _LINE.sub(")", raw.strip())


def summarize(path: Path, top: int = 25) -> dict[str, Any]:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(self_counts), "inclusive_pct": share(inclusive)}


async def summarize_profiles(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    while _PROFILERS:
        name, child, path = _PROFILERS.pop(0)
        try:
            child.proc.wait(30)
        except subprocess.TimeoutExpired:
            ctx.procs.stop(child)
        if not path.exists():
            out[name] = {"error": f"py-spy wrote nothing; see {child.log_path}"}
            continue
        summary = summarize(path)
        summary["raw"] = str(path)
        out[name] = summary
        lines = [f"{name}: {summary['samples']} samples (CPU only)", "", "self %:"]
        lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["self_pct"]]
        lines += ["", "inclusive %:"]
        lines += [f"  {pct:5.1f}  {frame}" for frame, pct in summary["inclusive_pct"]]
        ctx.path(f"profile-{name}-summary.txt").write_text("\n".join(lines) + "\n")
    return out
