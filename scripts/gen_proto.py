#!/usr/bin/env python3
"""Regenerate the Python protobuf/gRPC code and the descriptor set from proto/.

    uv run python scripts/gen_proto.py                      # into the repo (what `make proto` does)
    uv run python scripts/gen_proto.py --out DIR --descriptor-set FILE  # elsewhere, e.g. a test

Inputs: every ``*.proto`` under ``proto/parlay``, in sorted order, with ``proto`` as the only
include path (the well-known types come from grpcio-tools). Outputs:

* ``<out>/parlay/<context>/v1/*_pb2.py``, ``*_pb2.pyi``, ``*_pb2_grpc.py``
* ``<descriptor-set>``: a ``FileDescriptorSet`` with imports, so kcat, a notebook or any
  protobuf runtime can decode the Kafka log without Parlay's code.

The output is deterministic: running it twice yields identical bytes. Generated files under
``<out>/parlay`` whose ``.proto`` no longer exists are removed, so a deleted schema does not
leave stale modules behind. Nothing else under ``<out>`` is touched.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "libs" / "contracts" / "src"
DEFAULT_DESCRIPTOR_SET = PROTO_ROOT / "parlay.binpb"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(proto_root: Path = PROTO_ROOT) -> list[str]:
    """Every .proto under proto/parlay, relative to proto/, sorted bytewise."""
    return sorted(
        p.relative_to(proto_root).as_posix() for p in (proto_root / "parlay").rglob("*.proto")
    )


def is_generated(path: Path) -> bool:
    return path.is_file() and path.name.endswith(GENERATED_SUFFIXES)


def generate(out: Path, descriptor_set: Path, python: str = sys.executable) -> list[Path]:
    """Generate into ``out`` and write ``descriptor_set``; return the generated files (relative)."""
    files = proto_files()
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / 'parlay'}")
    out = out.resolve()
    descriptor_set = descriptor_set.resolve()
    with tempfile.TemporaryDirectory(prefix="parlay-proto-") as tmp_s:
        tmp = Path(tmp_s)
        gen = tmp / "gen"
        gen.mkdir()
        cmd = [
            python,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={gen}",
            f"--pyi_out={gen}",
            f"--grpc_python_out={gen}",
            f"--descriptor_set_out={tmp / 'parlay.binpb'}",
            "--include_imports",
            *files,
        ]
        subprocess.run(cmd, cwd=ROOT, check=True)

        new = sorted(p.relative_to(gen) for p in gen.rglob("*") if p.is_file())
        # Drop generated modules whose .proto is gone; keep hand-written files.
        if (out / "parlay").is_dir():
            for old in sorted((out / "parlay").rglob("*")):
                if is_generated(old) and old.relative_to(out) not in new:
                    print(f"removing stale {old}")
                    old.unlink()
        for rel in new:
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(gen / rel, dest)
        descriptor_set.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp / "parlay.binpb", descriptor_set)
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="python output root")
    parser.add_argument(
        "--descriptor-set", type=Path, default=DEFAULT_DESCRIPTOR_SET, help="FileDescriptorSet path"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter with grpcio-tools")
    args = parser.parse_args(argv)
    new = generate(args.out, args.descriptor_set, args.python)
    print(f"generated {len(new)} files -> {args.out}, {args.descriptor_set}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
