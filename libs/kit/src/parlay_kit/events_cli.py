"""`parlay events tail|export|topics` and `parlay at`: the event log for analysts.

    parlay events tail parlay.gateway.inbound.v1 --type MessageReceived --tenant demo
    parlay events tail --all --customer <id> --from-beginning
    parlay events export --all -o out/                              Parquet, partitioned
    parlay events export parlay.profile.v1 --since 2024-05-01 --until 2024-05-02 -o out/
    parlay events export parlay.gateway.inbound.v1 --from-offset 0 --to-offset 1000 \\
        --format jsonl -o inbound.jsonl
    parlay at 2024-05-01T12:00:00Z customer <id>
    parlay at now conversation <id>

Registered in libs/kit/pyproject.toml under the `parlay.cli` entry-point group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from parlay_kit import topics as topic_names

app = typer.Typer(help="Read the event log: tail it live, export it.", no_args_is_help=True)
_err = Console(stderr=True)

Bootstrap = Annotated[
    str,
    typer.Option("--bootstrap", envvar="PARLAY_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."),
]


def parse_time(text: str) -> datetime:
    """ISO 8601 (a date alone is midnight UTC; no zone means UTC), `now`, or `-2h`/`-30m`/
    `-7d` relative to now."""
    raw = text.strip()
    if raw.lower() == "now":
        return datetime.now(UTC)
    if raw.startswith("-") and raw[-1:] in ("s", "m", "h", "d") and raw[1:-1].isdigit():
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[raw[-1]]
        return datetime.now(UTC) - timedelta(**{unit: int(raw[1:-1])})
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not a time: {text!r} (ISO 8601, 'now' or e.g. -2h)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _topics(topic: list[str] | None, all_: bool) -> list[str]:
    if all_ and topic:
        raise typer.BadParameter("give topics or --all, not both")
    if all_:
        return list(topic_names.EVENT_TOPICS)
    if not topic:
        raise typer.BadParameter("name a topic or use --all")
    return topic


@app.command()
def tail(
    topic: Annotated[list[str] | None, typer.Argument(help="Topic(s) to follow.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every Parlay event topic.")] = False,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only this event type (full or short name; repeat)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    aggregate: Annotated[str | None, typer.Option(help="Only this aggregate id.")] = None,
    customer: Annotated[
        str | None,
        typer.Option(help="Only events of this customer (its stream, or payloads naming it)."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    max_events: Annotated[
        int | None, typer.Option("--max", "-n", help="Stop after printing N events.")
    ] = None,
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Stop at the end of the log instead of waiting.")
    ] = False,
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Follow topics live, one decoded JSON object per line (envelope + payload)."""
    from parlay_kit.analytics.tail import TailFilter
    from parlay_kit.analytics.tail import tail as run_tail

    names = _topics(topic, all_)
    flt = TailFilter(
        event_types=frozenset(event_type or ()),
        tenant=tenant,
        aggregate=aggregate,
        customer=customer,
    )

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run_tail(
            bootstrap,
            names,
            emit,
            flt=flt,
            from_beginning=from_beginning,
            max_events=max_events,
            stop_at_end=no_follow,
            stop=stop,
            ready=lambda: _err.print(f"[dim]following {', '.join(names)} (Ctrl-C to stop)[/]"),
        )

    try:
        asyncio.run(main())
    except LookupError as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except BrokenPipeError:  # `| head`
        with contextlib.suppress(Exception):
            sys.stdout.close()


@app.command()
def export(
    topic: Annotated[list[str] | None, typer.Argument(help="Topic(s) to export.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every Parlay event topic.")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Directory (Parquet, or partitioned JSON lines); a .jsonl file or - for jsonl.",
        ),
    ] = "parlay-export",
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or jsonl.")] = "parquet",
    from_offset: Annotated[int | None, typer.Option(help="First offset (every partition).")] = None,
    to_offset: Annotated[
        int | None, typer.Option(help="End offset, exclusive (every partition).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="From this time (record timestamp; ISO 8601 or -2h).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Up to this time, exclusive.")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only these event types (full names).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Empty the output directory first.")
    ] = False,
    compression: Annotated[str, typer.Option(help="Parquet compression.")] = "zstd",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    bootstrap: Bootstrap = "127.0.0.1:9092",
) -> None:
    """Export a range of the log to Parquet (default) or JSON lines."""
    from parlay_kit.analytics.export import export as run_export

    names = _topics(topic, all_)
    if fmt not in ("parquet", "jsonl"):
        raise typer.BadParameter("--format is parquet or jsonl")
    out = Path(output)
    directory_output = fmt == "parquet" or not (
        output == "-" or output.endswith((".jsonl", ".json", ".ndjson"))
    )
    if directory_output and out.exists() and any(out.iterdir()):
        if not overwrite:
            _err.print(f"[red]{out} is not empty: choose another directory or --overwrite[/]")
            raise typer.Exit(2)
        shutil.rmtree(out)
    show = progress and output != "-"
    bar = Progress(
        TextColumn("[bold]export"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        disable=not show,
    )
    task = bar.add_task("export", total=None)
    try:
        with bar:
            stats = asyncio.run(
                run_export(
                    bootstrap,
                    names,
                    output,
                    fmt=fmt,
                    from_offset=from_offset,
                    to_offset=to_offset,
                    since=parse_time(since) if since else None,
                    until=parse_time(until) if until else None,
                    event_types=event_type or (),
                    tenant=tenant,
                    on_ranges=lambda rs: bar.update(task, total=sum(r.size for r in rs)),
                    progress=lambda n: bar.advance(task, n),
                    compression=compression,
                )
            )
    except (LookupError, TimeoutError) as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    summary = ", ".join(f"{t}: {n:,}" for t, n in sorted(stats.by_topic.items())) or "nothing"
    _err.print(
        f"exported {stats.records:,} events ({summary}) in {stats.seconds:.1f}s"
        f" ({stats.rate:,.0f}/s) to {output}"
        + (
            f"; [yellow]{stats.errors} undecodable (see the error column)[/]"
            if stats.errors
            else ""
        )
    )


@app.command("topics")
def list_event_topics(bootstrap: Bootstrap = "127.0.0.1:9092") -> None:
    """Parlay event topics with their partitions and record counts."""
    from parlay_kit.analytics.logreader import make_consumer, resolve_ranges, topic_partitions

    async def main() -> list[tuple[str, int, int]]:
        consumer = make_consumer(bootstrap)
        await consumer.start()
        try:
            existing = set(await consumer.topics())
            out = []
            for t in [t for t in topic_names.ALL_TOPICS if t in existing]:
                ranges = await resolve_ranges(consumer, await topic_partitions(consumer, [t]))
                out.append((t, len(ranges), sum(r.size for r in ranges)))
            return out
        finally:
            await consumer.stop()

    for name, partitions, records in asyncio.run(main()):
        print(f"{name}\t{partitions} partitions\t{records} records")


def at_command(
    when: Annotated[str, typer.Argument(help="The instant: ISO 8601, 'now', or e.g. -2h.")],
    kind: Annotated[str, typer.Argument(help="customer, conversation, order, ...")],
    aggregate_id: Annotated[str, typer.Argument(help="The aggregate id.")],
    schema: Annotated[
        str | None, typer.Option(help="The owning service's schema [default: its name].")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only if it belongs to this tenant.")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar=["PARLAY_DATABASE_URL", "DATABASE_URL"],
            help="Postgres [default: the running `parlay dev` stack's]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """An aggregate as it stood at an instant: its events recorded up to then, folded with the
    owning service's own rules. Prints JSON."""
    from parlay_kit.analytics.asof import UnknownAggregateKind
    from parlay_kit.analytics.asof import at as run_at
    from parlay_kit.cli import resolve_database_url

    url = resolve_database_url(database_url)
    instant = parse_time(when)
    try:
        result = asyncio.run(
            run_at(url, kind, aggregate_id, instant, schema=schema, tenant_id=tenant)
        )
    except UnknownAggregateKind as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    if result.state is None:
        _err.print(f"[yellow]{kind} {aggregate_id} did not exist at {instant.isoformat()}[/]")
        raise typer.Exit(1)
