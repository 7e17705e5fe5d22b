"""`parlay events export`: ranges of the log to Parquet (or JSON lines), ready for DuckDB/pandas.

Layout (Hive partitioning, so `read_parquet('out/**/*.parquet', hive_partitioning = true)` and
`pyarrow.dataset.dataset('out', partitioning='hive')` both see `topic` and `date` columns)::

    out/topic=parlay.gateway.inbound.v1/date=2024-05-01/part-<run>-0000.parquet
    out/_export.json                           ranges, counts and options of the run

`date` is the UTC date of the envelope's `recorded_at`. Columns of every file:

    partition int32, offset int64, kafka_timestamp timestamp[ms, UTC], key string,
    event_id, event_type, source, tenant_id, aggregate_type, aggregate_id string,
    aggregate_version int64, occurred_at, recorded_at timestamp[us, UTC],
    correlation_id, causation_id string,
    payload string  (ProtoJSON of the payload after upcasting, field names as in the .proto),
    error string    (null; set when a record could not be decoded — the row is kept)

JSON lines: the same fields, one object per line (payload as a nested object), either one file
(`-o events.jsonl`, or `-o -` for stdout) or the same partitioned layout with `.jsonl` files.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from parlay_kit.analytics.decode import (
    Decoded,
    PayloadDecoder,
    decode_record,
    to_json_line,
)
from parlay_kit.analytics.jsonify import message_to_dict
from parlay_kit.analytics.logreader import (
    PartitionRange,
    make_consumer,
    read_ranges,
    resolve_ranges,
    topic_partitions,
)

SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.string()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("source", pa.string()),
        ("tenant_id", pa.string()),
        ("aggregate_type", pa.string()),
        ("aggregate_id", pa.string()),
        ("aggregate_version", pa.int64()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("correlation_id", pa.string()),
        ("causation_id", pa.string()),
        ("payload", pa.string()),
        ("error", pa.string()),
    ]
)
_EPOCH = date(1970, 1, 1)


@dataclass
class ExportStats:
    records: int = 0
    errors: int = 0
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    by_topic: dict[str, int] = field(default_factory=dict)
    ranges: list[PartitionRange] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


#: Rows gathered as Python objects before they become Arrow arrays: a row group is built from
#: such chunks, so at most this many rows are held as Python objects (~1.5 kB a row) rather
#: than a whole row group of them.
CHUNK_ROWS = 8192


class _Columns:
    """Column buffers of one output partition: the rows of the chunk being gathered, as
    Python lists, and the chunks of the row group so far, as Arrow record batches."""

    __slots__ = ("chunks", "cols", "n", "rows")

    def __init__(self) -> None:
        self.cols: list[list[Any]] = [[] for _ in SCHEMA]
        self.n = 0  # rows in `cols`
        self.chunks: list[pa.RecordBatch] = []
        self.rows = 0  # rows in `chunks` and `cols`

    def seal(self) -> None:
        """The gathered rows to a record batch."""
        if self.n == 0:
            return
        arrays = [pa.array(col, type=f.type) for col, f in zip(self.cols, SCHEMA, strict=True)]
        self.chunks.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
        self.cols = [[] for _ in SCHEMA]
        self.n = 0


class ParquetSink:
    """One ParquetWriter per (topic, date), row groups of `row_group_size` rows.

    Rows are gathered in Python lists per column (cheap appends) and become Arrow arrays
    every CHUNK_ROWS rows; a complete row group is then encoded, compressed and written by
    one background thread — pyarrow releases the GIL there, so the next records are decoded
    meanwhile. One thread keeps each file's row groups in order; `close` waits for it and
    re-raises its errors."""

    def __init__(
        self, out_dir: Path, *, row_group_size: int = 100_000, compression: str = "zstd"
    ) -> None:
        self.out_dir = out_dir
        self.row_group_size = row_group_size
        self.chunk_rows = min(CHUNK_ROWS, row_group_size)
        self.compression = compression
        self.run = secrets.token_hex(4)
        self._buffers: dict[tuple[str, int], _Columns] = {}
        self._writers: dict[tuple[str, int], pq.ParquetWriter] = {}
        self._paths: dict[tuple[str, int], Path] = {}
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="parquet-writer")
        self._pending: list[concurrent.futures.Future[None]] = []
        self.files: list[str] = []

    def add(self, d: Decoded, payload_json: str | None) -> None:
        """One row; `payload_json` is the payload's ProtoJSON."""
        e = d.envelope
        if e is not None:
            ts = e.recorded_at  # ts_micros, inlined: this runs once per exported record
            recorded = ts.seconds * 1_000_000 + ts.nanos // 1000
            day = recorded // 86_400_000_000
        else:
            recorded = None
            day = d.timestamp_ms // 86_400_000
        key = (d.topic, day)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = _Columns()
        c = buf.cols
        c[0].append(d.partition)
        c[1].append(d.offset)
        c[2].append(d.timestamp_ms)
        c[3].append(d.key)
        if e is not None:
            c[4].append(e.event_id)
            c[5].append(e.event_type)
            c[6].append(e.source)
            c[7].append(e.tenant_id)
            c[8].append(e.aggregate_type)
            c[9].append(e.aggregate_id)
            c[10].append(e.aggregate_version)
            ts = e.occurred_at
            c[11].append(ts.seconds * 1_000_000 + ts.nanos // 1000)
            c[12].append(recorded)
            c[13].append(e.correlation_id)
            c[14].append(e.causation_id)
        else:
            for i in range(4, 15):
                c[i].append(None)
        c[15].append(payload_json)
        c[16].append(d.error or None)
        buf.n += 1
        buf.rows += 1
        if buf.rows >= self.row_group_size:
            self._flush(key, buf)
        elif buf.n >= self.chunk_rows:
            buf.seal()

    def _flush(self, key: tuple[str, int], buf: _Columns) -> None:
        buf.seal()
        if not buf.chunks:
            return
        self._check_writes()
        table = pa.Table.from_batches(buf.chunks, schema=SCHEMA)
        path = self._paths.get(key)
        if path is None:
            topic, day = key
            directory = self.out_dir / f"topic={topic}" / f"date={_EPOCH + timedelta(days=day)}"
            path = self._paths[key] = directory / f"part-{self.run}-{len(self.files):04d}.parquet"
            self.files.append(str(path))
        self._pending.append(self._io.submit(self._write, key, path, table))
        self._buffers[key] = _Columns()

    def _write(self, key: tuple[str, int], path: Path, table: pa.Table) -> None:
        """In the writer thread: open the file on its first row group, append the group."""
        writer = self._writers.get(key)
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writers[key] = pq.ParquetWriter(
                path, SCHEMA, compression=self.compression
            )
        writer.write_table(table, row_group_size=self.row_group_size)

    def _check_writes(self) -> None:
        """Re-raise a failed write now rather than at close; forget the finished ones."""
        still = []
        for future in self._pending:
            if future.done():
                future.result()
            else:
                still.append(future)
        self._pending = still

    def close(self) -> None:
        try:
            for key, buf in list(self._buffers.items()):
                self._flush(key, buf)
            for future in self._pending:
                future.result()
        finally:
            self._io.shutdown(wait=True)
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()
            self._pending = []


class JsonLinesSink:
    """JSON lines: one stream (file or stdout), or files partitioned like the Parquet export."""

    def __init__(self, target: str | Path) -> None:
        self.files: list[str] = []
        self._partitioned = False
        self._out: IO[str] | None = None
        self._handles: dict[tuple[str, str], IO[str]] = {}
        if str(target) == "-":
            self._out = sys.stdout
        elif str(target).endswith((".jsonl", ".json", ".ndjson")):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.files.append(str(path))
        else:
            self._partitioned = True
            self.out_dir = Path(target)
            self.run = secrets.token_hex(4)

    def add(self, d: Decoded, payload_json: str | None) -> None:
        del payload_json  # the line carries the payload as a nested object
        line = to_json_line(d) + "\n"
        if not self._partitioned:
            assert self._out is not None
            self._out.write(line)
            return
        day = (
            datetime.fromtimestamp(d.envelope.recorded_at.seconds, UTC).date().isoformat()
            if d.envelope is not None
            else datetime.fromtimestamp(d.timestamp_ms / 1000, UTC).date().isoformat()
        )
        handle = self._handles.get((d.topic, day))
        if handle is None:
            directory = self.out_dir / f"topic={d.topic}" / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"part-{self.run}.jsonl"
            handle = self._handles[(d.topic, day)] = open(path, "w", encoding="utf-8")  # noqa: SIM115
            self.files.append(str(path))
        handle.write(line)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()
        elif self._out is not None:
            self._out.flush()


ProgressFn = Callable[[int], None]


def open_sink(
    output: str | Path, fmt: str, *, row_group_size: int = 100_000, compression: str = "zstd"
) -> ParquetSink | JsonLinesSink:
    if fmt == "parquet":
        out_dir = Path(output)
        out_dir.mkdir(parents=True, exist_ok=True)
        return ParquetSink(out_dir, row_group_size=row_group_size, compression=compression)
    if fmt == "jsonl":
        return JsonLinesSink(output)
    raise ValueError(f"unknown format {fmt!r} (parquet, jsonl)")


def write_manifest(
    out_dir: Path,
    stats: ExportStats,
    *,
    bootstrap: str,
    topics: Sequence[str],
    filters: dict[str, Any],
) -> None:
    """`_export.json`: what was exported (ranges per partition, counts, filters, files)."""
    manifest = {
        "exported_at": datetime.now(UTC).isoformat(),
        "bootstrap": bootstrap,
        "topics": list(topics),
        "format": "parquet",
        "records": stats.records,
        "errors": stats.errors,
        "by_topic": stats.by_topic,
        "ranges": [
            {"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end}
            for r in stats.ranges
        ],
        "filters": filters,
        "files": [os.path.relpath(f, out_dir) for f in stats.files],
    }
    (out_dir / "_export.json").write_text(json.dumps(manifest, indent=2))


async def export(
    bootstrap: str,
    topics: Sequence[str],
    output: str | Path,
    *,
    fmt: str = "parquet",
    from_offset: int | None = None,
    to_offset: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_types: Sequence[str] = (),
    tenant: str | None = None,
    on_ranges: Callable[[list[PartitionRange]], None] | None = None,
    progress: ProgressFn | None = None,
    row_group_size: int = 100_000,
    compression: str = "zstd",
) -> ExportStats:
    """Export [start, end) of every partition of `topics`; returns counts and files."""
    stats = ExportStats()
    decoder = PayloadDecoder()
    sink = open_sink(output, fmt, row_group_size=row_group_size, compression=compression)
    consumer = make_consumer(bootstrap)
    await consumer.start()
    started = time.perf_counter()
    wanted_types = set(event_types)
    try:
        tps = await topic_partitions(consumer, topics)
        ranges = await resolve_ranges(
            consumer,
            tps,
            from_offset=from_offset,
            to_offset=to_offset,
            since=since,
        )
        stats.ranges = ranges
        if on_ranges is not None:
            on_ranges(ranges)
        by_topic = stats.by_topic
        parquet = fmt == "parquet"
        async for batch in read_ranges(consumer, ranges, since=since, until=until):
            for r in batch:
                d = decode_record(
                    decoder, r.topic, r.partition, r.offset, r.timestamp, r.key, r.value
                )
                if wanted_types and (
                    d.envelope is None or d.envelope.event_type not in wanted_types
                ):
                    continue
                if tenant is not None and (d.envelope is None or d.envelope.tenant_id != tenant):
                    continue
                # As a str, not orjson's bytes: measured, the bytes objects cost twice the
                # fresh memory pages (page faults) for no gain in Arrow.
                payload_json = (
                    orjson.dumps(message_to_dict(d.payload)).decode()
                    if parquet and d.payload is not None
                    else None
                )
                sink.add(d, payload_json)
                stats.records += 1
                if d.error:
                    stats.errors += 1
                by_topic[r.topic] = by_topic.get(r.topic, 0) + 1
            if progress is not None:
                progress(len(batch))
    finally:
        sink.close()
        await consumer.stop()
    stats.seconds = time.perf_counter() - started
    stats.files = sink.files
    if fmt == "parquet":
        write_manifest(
            Path(output),
            stats,
            bootstrap=bootstrap,
            topics=topics,
            filters={
                "from_offset": from_offset,
                "to_offset": to_offset,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "event_types": sorted(wanted_types),
                "tenant": tenant,
            },
        )
    return stats
