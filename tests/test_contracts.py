"""Contract checks on proto/: the committed generated code and descriptor set are current,
`buf lint` (STANDARD) passes, and the descriptor set alone is enough to decode an event."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
CONTRACTS_SRC = ROOT / "libs" / "contracts" / "src"
DESCRIPTOR_SET = PROTO / "parlay.binpb"
GEN_SCRIPT = ROOT / "scripts" / "gen_proto.py"
BUF = ROOT / "node_modules" / ".bin" / "buf"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
ENVELOPE = "parlay.envelope.v1.Envelope"


def _proto_files() -> list[str]:
    return sorted(p.relative_to(PROTO).as_posix() for p in (PROTO / "parlay").rglob("*.proto"))


def _generated_files(root: Path) -> dict[str, bytes]:
    base = root / "parlay"
    if not base.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def _top_level_messages(proto_file: Path) -> tuple[str, list[str]]:
    """(package, top-level message names) of a .proto, read from its source text."""
    text = proto_file.read_text()
    package = re.search(r"^package\s+([\w.]+)\s*;", text, re.M)
    assert package, f"{proto_file} has no package"
    return package.group(1), re.findall(r"^message\s+(\w+)", text, re.M)


@pytest.fixture(scope="module")
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(DESCRIPTOR_SET.read_bytes())
    return fds


# (a) ------------------------------------------------------------------------------------------


def test_generated_code_and_descriptor_set_are_current(tmp_path: Path) -> None:
    out, desc = tmp_path / "src", tmp_path / "parlay.binpb"
    subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--out", str(out), "--descriptor-set", str(desc)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    fresh, committed = _generated_files(out), _generated_files(CONTRACTS_SRC)
    assert fresh, "generator produced no files"
    contracts = CONTRACTS_SRC.relative_to(ROOT).as_posix()
    problems = [
        f"stale (differs from proto/): {contracts}/{name}"
        for name in sorted(fresh.keys() & committed.keys())
        if fresh[name] != committed[name]
    ]
    problems += [f"missing: {contracts}/{name}" for name in sorted(fresh.keys() - committed.keys())]
    problems += [
        f"orphaned (no .proto generates it): {contracts}/{name}"
        for name in sorted(committed.keys() - fresh.keys())
    ]
    if not DESCRIPTOR_SET.exists():
        problems.append("missing: proto/parlay.binpb")
    elif DESCRIPTOR_SET.read_bytes() != desc.read_bytes():
        problems.append("stale (differs from proto/): proto/parlay.binpb")
    if problems:
        pytest.fail(
            "generated protobuf code is out of date; run `make proto` and commit the result:\n  "
            + "\n  ".join(problems),
            pytrace=False,
        )


def test_generator_is_deterministic(tmp_path: Path) -> None:
    outputs = []
    for run in ("one", "two"):
        out, desc = tmp_path / run / "src", tmp_path / run / "parlay.binpb"
        subprocess.run(
            [sys.executable, str(GEN_SCRIPT), "--out", str(out), "--descriptor-set", str(desc)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        outputs.append((_generated_files(out), desc.read_bytes()))
    assert outputs[0] == outputs[1]


# (b) ------------------------------------------------------------------------------------------


def _buf() -> Path:
    if not BUF.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("buf unavailable: node_modules/.bin/buf is absent and npm is not installed")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, check=True
        )
    assert BUF.exists(), "npm ci did not install node_modules/.bin/buf (see package.json)"
    return BUF


def test_buf_lint() -> None:
    result = subprocess.run(
        [str(_buf()), "lint", "proto"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"buf lint proto failed:\n{result.stdout}{result.stderr}"


# (c) ------------------------------------------------------------------------------------------


def test_descriptor_set_holds_every_proto_and_event(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    files = {f.name: f for f in descriptor_set.file}
    missing_files = [name for name in _proto_files() if name not in files]
    assert not missing_files, f"proto/parlay.binpb lacks {missing_files}; run `make proto`"

    messages = {f"{f.package}.{m.name}" for f in descriptor_set.file for m in f.message_type}
    assert ENVELOPE in messages

    event_files = sorted((PROTO / "parlay").rglob("*_events.proto"))
    assert event_files, "no *_events.proto under proto/parlay"
    for path in event_files:
        package, names = _top_level_messages(path)
        assert names, f"{path.relative_to(ROOT)} declares no message"
        absent = [f"{package}.{n}" for n in names if f"{package}.{n}" not in messages]
        assert not absent, f"proto/parlay.binpb lacks {absent} from {path.relative_to(ROOT)}"


def _fresh_pool(fds: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:  # --include_imports writes files in dependency order
        pool.Add(f)
    return pool


def test_descriptor_set_alone_decodes_an_event_written_by_generated_code(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
) -> None:
    """What a notebook or a kcat pipe does: decode envelope + payload with only parlay.binpb,
    and agree with the generated modules both ways."""
    from parlay.envelope.v1 import envelope_pb2

    pool = _fresh_pool(descriptor_set)
    DynEnvelope = message_factory.GetMessageClass(pool.FindMessageTypeByName(ENVELOPE))

    for path in sorted((PROTO / "parlay").rglob("*_events.proto")):
        package, names = _top_level_messages(path)
        rel = path.relative_to(PROTO).as_posix()
        module = importlib.import_module(rel.removesuffix(".proto").replace("/", ".") + "_pb2")
        for name in names:
            full_name = f"{package}.{name}"
            generated_cls = getattr(module, name)
            event = generated_cls()
            for field in event.DESCRIPTOR.fields:
                if field.type == field.TYPE_STRING and not _is_repeated(field):
                    setattr(event, field.name, f"{name}.{field.name}")
            env = envelope_pb2.Envelope(
                event_id="11111111-2222-5333-8444-555555555555",
                event_type=full_name,
                source="contract-test",
                aggregate_version=7,
            )
            env.payload.Pack(event)
            wire = env.SerializeToString()

            # Decode with the descriptor set only.
            decoded = DynEnvelope()
            decoded.ParseFromString(wire)
            assert decoded.event_type == full_name and decoded.aggregate_version == 7
            type_name = decoded.payload.type_url.rsplit("/", 1)[-1]
            assert type_name == full_name
            payload_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))
            payload = payload_cls()
            payload.ParseFromString(decoded.payload.value)
            assert payload.SerializeToString(deterministic=True) == event.SerializeToString(
                deterministic=True
            )

            # And back: bytes written from the descriptor set parse with the generated class.
            roundtrip = generated_cls()
            roundtrip.ParseFromString(payload.SerializeToString())
            assert roundtrip == event


def _is_repeated(field) -> bool:  # type: ignore[no-untyped-def]
    # protobuf >= 5.28 has is_repeated; older runtimes only label.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return field.label == field.LABEL_REPEATED
