"""ParquetSink on its own (no broker): rows gathered in Arrow chunks and written by the
background writer come back in order, in row groups of exactly `row_group_size`, one file per
(topic, date); a failed write is raised, not lost."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.envelope.v1.envelope_pb2 import Envelope
from parlay_kit.analytics.decode import Decoded
from parlay_kit.analytics.export import ParquetSink

DAY = 86_400


def decoded(i: int, day: int) -> Decoded:
    e = Envelope(event_id=f"e{i}", event_type="parlay.conversation.v1.ConversationOpened")
    e.aggregate_id = f"c{i % 3}"
    e.aggregate_version = i
    e.recorded_at.seconds = 1_700_000_000 - 1_700_000_000 % DAY + day * DAY + i
    e.occurred_at.seconds = e.recorded_at.seconds
    payload = ce.ConversationOpened(conversation_id=f"c{i % 3}")
    return Decoded("parlay.conversation.v1", 0, i, 1_700_000_000_000 + i, f"k{i}", e, payload)


def test_chunks_and_row_groups_come_back_in_order(tmp_path: Path) -> None:
    sink = ParquetSink(tmp_path, row_group_size=7)
    sink.chunk_rows = 3  # several Arrow chunks per row group, and a partial one at the end
    rows = [decoded(i, day=i % 2) for i in range(40)]
    for d in rows:
        sink.add(d, f'{{"n":{d.offset}}}' if d.offset % 5 else None)
    sink.close()

    assert len(sink.files) == 2  # one per recorded_at date
    seen = []
    for path in sink.files:
        f = pq.ParquetFile(path)
        sizes = [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]
        assert sizes == [7, 7] + [6]  # 20 rows of that date
        table = f.read()
        offsets = table.column("offset").to_pylist()
        assert offsets == sorted(offsets)  # in the order added
        for offset, event_id, payload in zip(
            offsets,
            table.column("event_id").to_pylist(),
            table.column("payload").to_pylist(),
            strict=True,
        ):
            assert event_id == f"e{offset}"
            assert payload == (f'{{"n":{offset}}}' if offset % 5 else None)
        seen += offsets
    assert sorted(seen) == list(range(40))


def test_a_failed_write_is_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    sink = ParquetSink(blocker, row_group_size=2)
    with pytest.raises(OSError):
        for i in range(6):
            sink.add(decoded(i, day=0), None)
        sink.close()
