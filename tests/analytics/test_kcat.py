"""A plain Kafka client plus the shipped descriptor set decode an event with no Parlay code:
Debian's kcat reads the record, protoc (from grpcio-tools) decodes it with proto/parlay.binpb."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.broker import ensure_topics
from parlay_kit.envelope import NewEvent, encode
from parlay_kit.testing import unique_name

REPO = Path(__file__).resolve().parents[2]
DESCRIPTORS = REPO / "proto" / "parlay.binpb"


def protoc(*args: str, stdin: bytes) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


#: librdkafka 2.0 (Debian's kcat) cannot parse the ApiVersions v3 answer of Tansu 0.6 (the
#: local broker); with the version probe off and the pre-0.10 protocol it reads Tansu fine,
#: from an absolute offset (Tansu's ListOffsets v0 is not understood either).
LEGACY_PROTOCOL = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


def kcat_first_record(bootstrap: str, topic: str) -> bytes:
    """The first record's value, read by kcat: the ordinary invocation (real Kafka), else the
    legacy-protocol one (Tansu)."""
    attempts = [
        [
            "kcat",
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
            "-f",
            "%s",
        ],
        [
            "kcat",
            *LEGACY_PROTOCOL,
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "0",
            "-c",
            "1",
            "-e",
            "-f",
            "%s",
        ],
    ]
    errors = []
    for cmd in attempts:
        result = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        if result.returncode == 0 and result.stdout:
            return result.stdout
        errors.append(result.stderr.decode(errors="replace")[-500:])
    raise AssertionError("kcat could not read the topic:\n" + "\n".join(errors))


@pytest.mark.skipif(
    shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)"
)
async def test_kcat_and_protoc_decode_an_envelope_and_its_payload(kafka_bootstrap: str) -> None:
    topic = unique_name("kcat")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    msg = ge.MessageReceived(
        channel="whatsapp",
        channel_account_id="acc-k",
        provider_message_id="wamid.kcat1",
        sender=ge.ChannelAddress(channel="whatsapp", address="16505550199"),
        content=ge.MessageContent(text=ge.TextContent(body="decoded without Parlay")),
    )
    event = NewEvent(
        event_id="7b0bd1f2-8f5c-5c59-9f0e-3a3a0b7c5a11",
        tenant_id="tenant-kcat",
        aggregate_type="contact",
        aggregate_id="acc-k:16505550199",
        payload=msg,
        occurred_at=datetime(2024, 5, 6, 9, 0, tzinfo=UTC),
        topic=topic,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, encode(event.to_envelope("gateway", 1, datetime.now(UTC))), key=b"k"
        )
    finally:
        await producer.stop()

    raw = kcat_first_record(kafka_bootstrap, topic)
    envelope_text = protoc(
        "--decode=parlay.envelope.v1.Envelope",
        f"--descriptor_set_in={DESCRIPTORS}",
        # the files to load from the set: the envelope and every event file (for the Any)
        "parlay/envelope/v1/envelope.proto",
        *sorted(
            str(p.relative_to(REPO / "proto"))
            for p in (REPO / "proto").glob("parlay/*/v1/*_events.proto")
        ),
        stdin=raw,
    )
    assert 'event_id: "7b0bd1f2-8f5c-5c59-9f0e-3a3a0b7c5a11"' in envelope_text
    assert 'event_type: "parlay.gateway.v1.MessageReceived"' in envelope_text
    assert 'tenant_id: "tenant-kcat"' in envelope_text
    # The payload is an Any: its type URL names the message, its value is that message's
    # bytes (C-escaped in protoc's text output) — decode them with protoc too.
    type_url = re.search(r'type_url: "type.googleapis.com/([^"]+)"', envelope_text)
    value = re.search(r'value: "((?:[^"\\]|\\.)*)"', envelope_text)
    assert type_url and value
    payload_bytes = value.group(1).encode("latin-1").decode("unicode_escape").encode("latin-1")
    payload_text = protoc(
        f"--decode={type_url.group(1)}",
        f"--descriptor_set_in={DESCRIPTORS}",
        "parlay/gateway/v1/gateway_events.proto",
        stdin=payload_bytes,
    )
    assert 'provider_message_id: "wamid.kcat1"' in payload_text
    assert 'body: "decoded without Parlay"' in payload_text
