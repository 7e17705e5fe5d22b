"""Analyst tools over the event log: decoding (with upcasting), export to Parquet/JSON lines,
live tail, point-in-time aggregates (`parlay at`) and the registry of rebuildable projections
(`parlay replay`, in parlay_kit.replay). See docs/analytics.md."""
