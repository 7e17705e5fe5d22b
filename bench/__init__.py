"""Parlay benchmarks: ``make bench`` (= ``uv run python -m bench``). See docs/benchmarks.md."""
