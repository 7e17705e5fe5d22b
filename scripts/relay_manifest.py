"""Print the Kubernetes manifests (Deployment, PDB) of one service's outbox relay.

    uv run python scripts/relay_manifest.py orders > deploy/k8s/base/orders/relay.yaml

Then add the file to the service's kustomization.yaml. The relay publishes the service's event
store to Kafka. Only one is active per store (a Postgres advisory lock), so the second replica
is a warm standby. It has its own Deployment so that the API pods spend their CPU on requests
and the projector pods on their projections. tests/deploy checks that every service has exactly
one such Deployment and that no other pod runs the relay.

Rendered from a projector's manifest (scripts/projector_manifest.py, the same hardening), with
the relay's labels, roles and replicas and without the KEDA ScaledObject.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from parlay_kit.dev import SERVICE_PORTS

TEMPLATE = (
    "deploy/k8s/base/profile/projector-identity-resolution.yaml",
    "profile",
    "identity-resolution",
)


def render(service: str) -> str:
    path, template_service, template_projector = TEMPLATE
    text = Path(path).read_text()
    _header, _, rest = text.partition("apiVersion: apps/v1")
    body, _, _scaled_object = ("apiVersion: apps/v1" + rest).partition("---\napiVersion: keda")
    body, labels = re.subn(rf"(?m)^ *parlay\.dev/projector: {template_projector}\n", "", body)
    if not labels:
        raise SystemExit(f"the template {path} no longer labels its pods with the projector")
    replacements = [
        ("component: projector", "component: relay"),
        ("parlay.dev/tier: projector", "parlay.dev/tier: relay"),
        (f"name: {template_service}-{template_projector}", f"name: {service}-relay"),
        (
            "  # No `replicas`: the KEDA ScaledObject below owns it.\n",
            "  # One relay publishes (it holds the store's advisory lock); the other waits to take\n"
            "  # over, so a rollout or a lost node pauses publishing for seconds, not minutes.\n"
            "  replicas: 2\n",
        ),
        (
            f"            # Runs the {template_projector} projector (consumer group"
            f" {template_service}.{template_projector}).\n"
            "            - name: PARLAY_PROJECTORS\n"
            f'              value: "{template_projector}"\n'
            "            # The projector, and gRPC for the health probes: no HTTP, no relay"
            " (relay.yaml).\n"
            "            - name: PARLAY_ROLES\n"
            '              value: "grpc,projectors"\n',
            "            # The outbox relay, and gRPC for the health probes.\n"
            "            - name: PARLAY_PROJECTORS\n"
            '              value: "none"\n'
            "            - name: PARLAY_ROLES\n"
            '              value: "grpc,relay"\n',
        ),
        (
            f"containerPort: {SERVICE_PORTS[template_service]}",
            f"containerPort: {SERVICE_PORTS[service]}",
        ),
        (f"port: {SERVICE_PORTS[template_service]}", f"port: {SERVICE_PORTS[service]}"),
    ]
    for old, new in replacements:
        if old not in body:
            raise SystemExit(f"the template {path} no longer holds {old!r}")
        body = body.replace(old, new)
    body = body.replace(template_service, service)
    comment = (
        f"# The outbox relay of {service}: publishes the {service} event store to Kafka, in store\n"
        "# order. Two replicas, one active (scripts/relay_manifest.py; docs/deploy.md).\n"
    )
    return comment + body.rstrip("\n") + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in SERVICE_PORTS:
        sys.exit(__doc__)
    sys.stdout.write(render(sys.argv[1]))
