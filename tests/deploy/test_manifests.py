"""deploy/k8s: every overlay renders, validates, and agrees with the code.

The code is the single source of truth: ports from `parlay_kit.dev.SERVICE_PORTS` /
`SERVICE_HTTP_PORTS`, topics from `parlay_kit.topics`, projectors from each service's
package (`add_projector(...)` calls anywhere in services/<svc>/src/parlay_<svc>/).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from parlay_kit import topics as topic_names
from parlay_kit.dev import SERVICE_HTTP_PORTS, SERVICE_PORTS

from .projectors import ProjectorSpec, discover_projectors
from .support import OVERLAYS, REPO, Rendered, grpc_calls_in_settings

#: Kubernetes versions the built-in objects are validated against: the oldest we support
#: (native gRPC probes, the preStop sleep action, Strimzi 1.x's minimum) and the newest known.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
BUILTIN_GROUPS = {
    "",
    "apps",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
}
SCHEMAS = yaml.safe_load((Path(__file__).parent / "schemas" / "custom-resources.yaml").read_text())
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def group_of(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(rendered: Rendered, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the pod sees it (envFrom ConfigMaps, then env)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(rendered.get("ConfigMap", name).get("data") or {})
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "<from valueFrom>")
    return env


# --------------------------------------------------------------------------------------------
# projectors, read from the composition roots
# --------------------------------------------------------------------------------------------


PROJECTORS = discover_projectors()


def test_projector_discovery_finds_the_known_projectors() -> None:
    names = {(p.service, p.name) for p in PROJECTORS}
    # Guards the AST discovery itself: these three exist today (more may be added).
    assert {
        ("gateway", "normalizer"),
        ("profile", "identity-resolution"),
        ("conversation", "timeline"),
    } <= names


def test_consumer_group_naming_is_schema_dot_projector() -> None:
    """KEDA reads lag by consumer group; the groups are named <schema>.<projector>."""
    source = (REPO / "libs/kit/src/parlay_kit/projector.py").read_text()
    assert 'group_id=f"{self.schema}.{self.name}"' in source, (
        "the projector's consumer group naming changed: update the ScaledObjects "
        "(consumerGroup) and this test"
    )


# --------------------------------------------------------------------------------------------
# rendering and schemas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(rendered: dict[str, Rendered], overlay: str) -> None:
    objects = rendered[overlay].objects
    assert objects, f"{overlay} rendered nothing"
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "parlay", obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_objects_match_kubernetes_schemas(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    errors = []
    for obj in rendered[overlay].objects:
        if group_of(obj) not in BUILTIN_GROUPS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(map(str, exc.absolute_path))
                errors.append(
                    f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {path}: "
                    f"{exc.message[:300]}"
                )
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_shipped_schemas(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    errors = []
    for obj in rendered[overlay].objects:
        if group_of(obj) in BUILTIN_GROUPS:
            continue
        key = f"{obj['apiVersion']}/{obj['kind']}"
        schema = SCHEMAS["schemas"].get(key)
        if schema is None:
            errors.append(f"{key} has no schema in tests/deploy/schemas/custom-resources.yaml")
            continue
        validator = jsonschema.Draft202012Validator({**schema, "$defs": SCHEMAS["$defs"]})
        for error in validator.iter_errors(obj):
            path = "/".join(map(str, error.absolute_path))
            errors.append(f"{key} {obj['metadata']['name']}: {path}: {error.message}")
    assert not errors, "\n".join(errors)


# --------------------------------------------------------------------------------------------
# services: Deployment, Service, ConfigMap, ports
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", list(SERVICE_PORTS))
def test_service_manifests_match_the_code(
    rendered: dict[str, Rendered], overlay: str, service: str
) -> None:
    r = rendered[overlay]
    grpc_port = SERVICE_PORTS[service]
    http_port = SERVICE_HTTP_PORTS.get(service)

    deployment = r.get("Deployment", service)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == grpc_port
    assert ports.get("http") == http_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == grpc_port, f"{probe} not on grpc.health.v1"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == service
    r.get("ServiceAccount", service)

    env = env_of(r, container)
    assert env["PARLAY_GRPC_PORT"] == str(grpc_port)
    assert env["PARLAY_GRPC_HOST"] == "0.0.0.0", "a pod must listen on all interfaces"
    assert env["PARLAY_DB_SCHEMA"] == service
    if http_port:
        assert env["PARLAY_HTTP_PORT"] == str(http_port)
        assert env["PARLAY_HTTP_HOST"] == "0.0.0.0"
    assert env["PARLAY_KAFKA_ENABLE_IDEMPOTENCE"] == "true", "real Kafka: idempotent producer"

    svc = r.get("Service", service)
    service_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert service_ports["grpc"]["port"] == grpc_port
    assert service_ports["grpc"]["targetPort"] == "grpc"
    if http_port:
        assert service_ports["http"]["port"] == http_port
    else:
        assert "http" not in service_ports
    selector = svc["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the Service must select the API pods"
    assert selector.get("app.kubernetes.io/component") == "api", "projector pods serve no traffic"

    hpa = r.get("HorizontalPodAutoscaler", service)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": service,
    }
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"
    pdb = r.get("PodDisruptionBudget", service)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_targets_between_services_point_at_their_services(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    r = rendered[overlay]
    for caller, callee in grpc_calls_in_settings():
        for deployment in r.of_kind("Deployment"):
            if deployment["metadata"]["labels"].get("parlay.dev/service") != caller:
                continue
            env = env_of(r, pod_spec(deployment)["containers"][0])
            target = env[f"PARLAY_{callee.upper()}_GRPC_TARGET"]
            assert target == f"{callee}:{SERVICE_PORTS[callee]}", deployment["metadata"]["name"]
            r.get("Service", callee)


def test_service_settings_defaults_match_the_ports() -> None:
    for service, port in SERVICE_PORTS.items():
        module = importlib.import_module(f"parlay_{service}.settings")
        (cls,) = [
            v
            for k, v in vars(module).items()
            if k.endswith("Settings") and k != "ServiceSettings" and isinstance(v, type)
        ]
        assert cls.model_fields["grpc_port"].default == port, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_unknown_services(rendered: dict[str, Rendered], overlay: str) -> None:
    for obj in rendered[overlay].objects:
        service = obj["metadata"].get("labels", {}).get("parlay.dev/service")
        if service is not None:
            assert service in SERVICE_PORTS, f"{obj['kind']}/{obj['metadata']['name']}"


# --------------------------------------------------------------------------------------------
# Postgres: one database and role per service, the DSNs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", list(SERVICE_PORTS))
def test_each_service_has_its_database_and_role(
    rendered: dict[str, Rendered], overlay: str, service: str
) -> None:
    r = rendered[overlay]
    (cluster,) = r.of_kind("Cluster")
    name = cluster["metadata"]["name"]
    role, secret = f"parlay_{service}", f"parlay-db-{service}"
    roles = {x["name"]: x for x in cluster["spec"]["managed"]["roles"]}
    assert roles[role]["login"] is True
    assert roles[role]["passwordSecret"]["name"] == secret
    assert "parlay_tenancy_reader" in roles[role]["inRoles"]
    databases = {d["spec"]["name"]: d["spec"] for d in r.of_kind("Database")}
    assert databases[role]["owner"] == role
    assert databases[role]["cluster"]["name"] == name
    assert databases[role].get("databaseReclaimPolicy") == "retain"

    for deployment in r.of_kind("Deployment"):
        if deployment["metadata"]["labels"].get("parlay.dev/service") != service:
            continue
        (container,) = pod_spec(deployment)["containers"]
        password = {e["name"]: e for e in container["env"]}["PGPASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "password"}
        env = env_of(r, container)
        for key, database, host in (
            ("PARLAY_DATABASE_URL", role, f"{name}-rw"),
            ("PARLAY_TENANCY_DATABASE_URL", "parlay_tenancy", f"{name}-r"),
        ):
            url = urlsplit(env[key])
            assert url.scheme == "postgresql"
            assert url.username == role and url.password is None, "no password in a ConfigMap"
            assert url.hostname == host and url.port == 5432
            assert url.path == f"/{database}"
            query = parse_qs(url.query)
            assert query["sslmode"] == ["verify-full"]
            (ca,) = query["sslrootcert"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volume = {v["name"]: v for v in pod_spec(deployment)["volumes"]}[
                mounts[str(Path(ca).parent)]
            ]
            assert volume["secret"]["secretName"] == f"{name}-ca"
            assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], (
                "mount the CA certificate only, never the CA key"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tenancy_database_is_bootstrapped_read_only_for_services(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    (cluster,) = rendered[overlay].of_kind("Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert initdb["database"] == "parlay_tenancy" and initdb["owner"] == "parlay_tenancy"
    assert initdb["secret"]["name"] == "parlay-db-tenancy"
    sql = " ".join(initdb["postInitApplicationSQL"])
    assert "GRANT SELECT ON TABLES TO parlay_tenancy_reader" in sql
    assert "GRANT USAGE ON SCHEMA tenancy TO parlay_tenancy_reader" in sql
    assert cluster["spec"]["enableSuperuserAccess"] is False


# --------------------------------------------------------------------------------------------
# Kafka: a KafkaTopic per topic, the cluster's durability settings
# --------------------------------------------------------------------------------------------


def kafka_topics(r: Rendered) -> dict[str, dict[str, Any]]:
    out = {}
    for obj in r.of_kind("KafkaTopic"):
        name = obj["spec"].get("topicName", obj["metadata"]["name"])
        assert name not in out, f"two KafkaTopics for {name}"
        out[name] = obj
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_has_a_kafka_topic(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[overlay]
    (kafka,) = r.of_kind("Kafka")
    declared = kafka_topics(r)
    assert set(declared) == set(topic_names.ALL_TOPICS)
    for name, obj in declared.items():
        assert obj["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        config = obj["spec"]["config"]
        assert config["cleanup.policy"] == "delete", f"{name}: no compaction on an event log"
        if name in topic_names.EVENT_TOPICS:
            assert int(config["retention.ms"]) == -1, f"{name}: the event log is kept forever"
            assert int(config["retention.bytes"]) == -1, name
        else:
            assert int(config["retention.ms"]) >= 30 * 24 * 3600 * 1000, f"{name}: DLQ retention"
    # Raw webhooks of up to 1 MiB plus the envelope must fit in one record.
    assert int(declared[topic_names.WEBHOOKS]["spec"]["config"]["max.message.bytes"]) > 2**20


def test_prod_topics_and_cluster_are_durable(rendered: dict[str, Rendered]) -> None:
    r = rendered["prod"]
    for name, obj in kafka_topics(r).items():
        assert obj["spec"]["replicas"] == 3, name
        assert int(obj["spec"]["config"]["min.insync.replicas"]) == 2, name
    (kafka,) = r.of_kind("Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert int(config["default.replication.factor"]) == 3
    assert int(config["min.insync.replicas"]) == 2
    assert int(config["offsets.topic.replication.factor"]) == 3
    assert config["unclean.leader.election.enable"] is False
    pools = r.of_kind("KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers >= 3 and controllers >= 3 and controllers % 2 == 1
    (cluster,) = r.of_kind("Cluster")
    assert cluster["spec"]["instances"] >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_and_keda_use_the_kafka_cluster(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    r = rendered[overlay]
    (kafka,) = r.of_kind("Kafka")
    name = kafka["metadata"]["name"]
    plain = [
        x for x in kafka["spec"]["kafka"]["listeners"] if x["type"] == "internal" and not x["tls"]
    ]
    assert plain, "the services use a plain internal listener"
    port = plain[0]["port"]
    for service in SERVICE_PORTS:
        env = env_of(r, pod_spec(r.get("Deployment", service))["containers"][0])
        assert env["PARLAY_KAFKA_BOOTSTRAP"] == f"{name}-kafka-bootstrap:{port}"
    for scaled in r.of_kind("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            # KEDA runs in its own namespace: the bootstrap address must be namespaced.
            assert trigger["metadata"]["bootstrapServers"] == (
                f"{name}-kafka-bootstrap.{scaled['metadata']['namespace']}.svc:{port}"
            )


# --------------------------------------------------------------------------------------------
# projectors: a Deployment and a KEDA ScaledObject each
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("projector", PROJECTORS, ids=lambda p: f"{p.service}.{p.name}")
def test_every_projector_has_a_scaled_object(
    rendered: dict[str, Rendered], overlay: str, projector: ProjectorSpec
) -> None:
    r = rendered[overlay]
    name = f"{projector.service}-{projector.name}"
    deployment = r.get("Deployment", name)
    assert "replicas" not in deployment["spec"], "the ScaledObject owns replicas"
    (container,) = pod_spec(deployment)["containers"]
    env = env_of(r, container)
    assert env["PARLAY_PROJECTORS"] == projector.name
    assert container["image"].split("@")[0].rsplit(":", 1)[0].endswith(f"/{projector.service}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == SERVICE_PORTS[projector.service]
    r.get("PodDisruptionBudget", name)

    scaled = r.get("ScaledObject", name)
    assert scaled["spec"]["scaleTargetRef"]["name"] == name
    group = f"{env['PARLAY_DB_SCHEMA']}.{projector.name}"
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {group}
    assert {t["metadata"]["topic"] for t in triggers} == set(projector.topics)
    for trigger in triggers:
        meta = trigger["metadata"]
        # Parlay keeps its offsets in Postgres; Kafka sees a group's offsets only once the
        # projector also commits them there. Until then "earliest" would count the whole log
        # as lag and hold the projector at its maximum; "latest" counts 1 per partition.
        assert meta["offsetResetPolicy"] == "latest"
        assert meta["scaleToZeroOnInvalidOffset"] == "false"
        assert meta["allowIdleConsumers"] == "false"
        assert int(meta["lagThreshold"]) > 0
    # Consumers beyond the partition count idle: never scale past it.
    partitions = [kafka_topics(r)[t]["spec"]["partitions"] for t in projector.topics]
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["maxReplicaCount"] <= min(partitions)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_scaled_object_without_a_projector(rendered: dict[str, Rendered], overlay: str) -> None:
    known = {f"{p.service}-{p.name}" for p in PROJECTORS}
    r = rendered[overlay]
    assert {s["metadata"]["name"] for s in r.of_kind("ScaledObject")} == known
    projector_deployments = {
        d["metadata"]["name"]
        for d in r.of_kind("Deployment")
        if d["metadata"]["labels"].get("parlay.dev/tier") == "projector"
    }
    assert projector_deployments == known


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_tier_runs_no_projectors(rendered: dict[str, Rendered], overlay: str) -> None:
    r = rendered[overlay]
    for service in SERVICE_PORTS:
        env = env_of(r, pod_spec(r.get("Deployment", service))["containers"][0])
        assert env["PARLAY_PROJECTORS"] == "none"


@pytest.mark.parametrize("service", list(SERVICE_PORTS))
def test_relay_manifests_are_what_the_script_renders(service: str, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "relay_manifest", REPO / "scripts" / "relay_manifest.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(REPO)  # the script reads its template relative to the repository
    shipped = (REPO / "deploy" / "k8s" / "base" / service / "relay.yaml").read_text()
    assert shipped == script.render(service), f"regenerate with scripts/relay_manifest.py {service}"


def roles_of(r: Rendered, deployment: dict[str, Any]) -> set[str]:
    (container,) = pod_spec(deployment)["containers"]
    raw = env_of(r, container).get("PARLAY_ROLES", "all")  # the settings' default
    return {role.strip() for role in raw.split(",") if role.strip()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_runs_its_relay_in_one_deployment_of_its_own(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    """API pods spend their CPU on requests and projector pods on projections; the relay (one
    active per store, an advisory lock) has a Deployment with a standby replica."""
    r = rendered[overlay]
    for service in SERVICE_PORTS:
        deployments = [
            d
            for d in r.of_kind("Deployment")
            if d["metadata"]["labels"].get("parlay.dev/service") == service
        ]
        relays = [d["metadata"]["name"] for d in deployments if "relay" in roles_of(r, d)]
        assert relays == [f"{service}-relay"], f"{service}: the relay runs in {relays}"
        relay = r.get("Deployment", f"{service}-relay")
        assert roles_of(r, relay) == {"grpc", "relay"}
        assert relay["spec"]["replicas"] >= 2, "a standby takes over the lock"
        (container,) = pod_spec(relay)["containers"]
        assert env_of(r, container)["PARLAY_PROJECTORS"] == "none"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == SERVICE_PORTS[service]
        r.get("PodDisruptionBudget", f"{service}-relay")
        assert roles_of(r, r.get("Deployment", service)) == {"http", "grpc"}
        for d in deployments:
            if d["metadata"]["labels"].get("parlay.dev/tier") == "projector":
                assert roles_of(r, d) == {"grpc", "projectors"}, d["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_serves_metrics_on_its_metrics_port(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    """API, relay and projector pods alike: what the PodMonitor scrapes (components/prometheus)."""
    r = rendered[overlay]
    deployments = [
        d for d in r.of_kind("Deployment") if "parlay.dev/service" in d["metadata"]["labels"]
    ]
    assert len(deployments) >= 3 * len(SERVICE_PORTS)
    for d in deployments:
        (container,) = pod_spec(d)["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = env_of(r, container)
        name = d["metadata"]["name"]
        assert ports.get("metrics") == int(env["PARLAY_METRICS_PORT"]) == 9464, name
        assert env["PARLAY_METRICS_HOST"] == "0.0.0.0", f"{name}: metrics on all interfaces"


# --------------------------------------------------------------------------------------------
# images and pod hardening (checkov checks these too; these say precisely what is wrong)
# --------------------------------------------------------------------------------------------

TAG = re.compile(r"^(?P<repo>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_have_exact_tags(rendered: dict[str, Rendered], overlay: str) -> None:
    for obj in rendered[overlay].objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        for container in containers(obj):
            image = container["image"]
            match = TAG.match(image)
            assert match, image
            assert match["tag"] or "@sha256:" in image, f"{image}: no tag"
            assert match["tag"] != "latest", f"{image}: latest"
    (cluster,) = rendered[overlay].of_kind("Cluster")
    assert not cluster["spec"]["imageName"].endswith(":latest")


def test_prod_images_come_from_a_registry(rendered: dict[str, Rendered]) -> None:
    for service in SERVICE_PORTS:
        image = pod_spec(rendered["prod"].get("Deployment", service))["containers"][0]["image"]
        assert "/" in image.split(":")[0] and "." in image.split("/")[0], image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_are_hardened(rendered: dict[str, Rendered], overlay: str) -> None:
    for obj in rendered[overlay].objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("topologySpreadConstraints"), where
        for container in containers(obj):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where} {kind}"
            assert container.get("readinessProbe") and container.get("livenessProbe"), where
        # A read-only root filesystem: the only writable path is an emptyDir.
        for mount in container.get("volumeMounts", []):
            volume = {v["name"]: v for v in spec.get("volumes", [])}[mount["name"]]
            assert "emptyDir" in volume or mount.get("readOnly") is True, f"{where} {mount}"


# --------------------------------------------------------------------------------------------
# Ingress
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_exposes_only_the_webhooks_with_tls(
    rendered: dict[str, Rendered], overlay: str
) -> None:
    (ingress,) = rendered[overlay].of_kind("Ingress")
    spec = ingress["spec"]
    hosts = {rule["host"] for rule in spec["rules"]}
    assert spec["tls"] and hosts <= {h for t in spec["tls"] for h in t["hosts"]}
    for rule in spec["rules"]:
        for path in rule["http"]["paths"]:
            assert path["path"] == "/webhooks" and path["pathType"] == "Prefix"
            assert path["backend"]["service"] == {"name": "gateway", "port": {"name": "http"}}
    public_url = rendered[overlay].config_map("gateway-config")["PARLAY_PUBLIC_URL"]
    assert urlsplit(public_url).hostname in hosts
    assert public_url.startswith("https://")


def test_prod_ingress_certificate_from_cert_manager(rendered: dict[str, Rendered]) -> None:
    (ingress,) = rendered["prod"].of_kind("Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
