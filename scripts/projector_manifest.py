"""Print the Kubernetes manifests (Deployment, PDB, KEDA ScaledObject) of one projector.

    uv run python scripts/projector_manifest.py orders order-saga \
        parlay.conversation.v1 parlay.payments.v1 parlay.profile.v1 \
        > deploy/k8s/base/orders/projector-order-saga.yaml

Then add the file to the service's kustomization.yaml. tests/deploy checks every projector in
the code has one (consumer group <schema>.<projector>, PARLAY_PROJECTORS, a trigger per topic).
"""

from __future__ import annotations

import sys
from pathlib import Path

from parlay_kit.dev import SERVICE_PORTS

TEMPLATE = (
    "deploy/k8s/base/profile/projector-identity-resolution.yaml",
    "profile",
    "identity-resolution",
)


def render(service: str, projector: str, topics: list[str]) -> str:
    path, template_service, template_projector = TEMPLATE
    text = Path(path).read_text()
    _header, _, rest = text.partition("apiVersion: apps/v1")
    body, _, _triggers = ("apiVersion: apps/v1" + rest).partition("  triggers:\n")
    body = body.replace(template_projector, projector).replace(template_service, service)
    body = body.replace(
        f"containerPort: {SERVICE_PORTS[template_service]}",
        f"containerPort: {SERVICE_PORTS[service]}",
    ).replace(f"port: {SERVICE_PORTS[template_service]}", f"port: {SERVICE_PORTS[service]}")
    comment = (
        f"# The {projector} projector of {service}: consumer group `{service}.{projector}`\n"
        "# (<schema>.<projector>), reading\n"
        + "".join(f"#   {t}\n" for t in topics)
        + "# Scaled by KEDA on consumer lag; never more replicas than the topics have partitions\n"
        '# (docs/deploy.md, "Scaling a projector past its partition count").\n'
    )
    triggers = "  triggers:\n" + "".join(
        f"""    - type: kafka
      metadata:
        bootstrapServers: parlay-kafka-bootstrap.parlay.svc:9092
        consumerGroup: {service}.{projector}
        topic: {topic}
        lagThreshold: "1000"
        activationLagThreshold: "0"
        offsetResetPolicy: latest
        allowIdleConsumers: "false"
        scaleToZeroOnInvalidOffset: "false"
"""
        for topic in topics
    )
    return comment + body + triggers


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.stdout.write(render(sys.argv[1], sys.argv[2], sys.argv[3:]))
