"""One module per benchmark. Every module here is imported by `python -m bench`; each registers
its benchmark with `bench.core.register(name, title, order=...)`. See docs/benchmarks.md."""
