"""The NetworkPolicies of each overlay, evaluated with Kubernetes' semantics over the pods the
overlay creates (from the workload templates), the pods the operators create (CloudNativePG
instances, Strimzi brokers, with the labels those operators put on them) and pods of other
namespaces (ingress controller, KEDA, integrators, a stranger).

A flow is allowed when the source may send it (no policy isolates the source for egress, or
one allows it) and the destination may receive it (likewise for ingress). Strimzi generates
the ingress policies of the Kafka pods from the listeners' `networkPolicyPeers`; they are
synthesized here from the rendered Kafka resource.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from parlay_kit.dev import SERVICE_HTTP_PORTS, SERVICE_PORTS

from .support import OVERLAYS, Rendered, grpc_calls_in_settings

#: gRPC calls between services that the design needs (caller -> callee), read from the code: a
#: `<callee>_grpc_target` setting in the caller's settings class.
DESIGN_GRPC_CALLS: set[tuple[str, str]] = grpc_calls_in_settings()
#: Services that call providers on the internet: the gateway (outbound delivery and the
#: payment-provider calls it makes for payments; it alone holds provider secrets).
INTERNET_EGRESS = {"gateway"}

INTERNET = "203.0.113.10"  # a public address
METADATA = "169.254.169.254"  # the cloud metadata endpoint
PRIVATE = "10.96.0.1"  # something inside the cluster network


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    ns_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ns_labels = {"kubernetes.io/metadata.name": self.namespace, **self.ns_labels}


Endpoint = Pod | str  # a pod, or an IP address outside the cluster


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(other.ip if isinstance(other, Pod) else other)
        block = peer["ipBlock"]
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], other.ns_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return matches(peer.get("podSelector"), other.labels)


def port_matches(
    rule_ports: list[dict[str, Any]] | None,
    target: Pod | None,
    port: int,
    protocol: str,
    named: dict[str, dict[str, int]],
) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        value = p.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            value = named.get(target.name, {}).get(value) if target else None
            if value is None:
                continue
        if value <= port <= p.get("endPort", value):
            return True
    return False


@dataclass
class Cluster:
    pods: list[Pod]
    policies: list[dict[str, Any]]
    named_ports: dict[str, dict[str, int]]

    def _allowed(
        self, direction: str, subject: Pod, other: Endpoint, port: int, protocol: str
    ) -> bool:
        kind = "Ingress" if direction == "ingress" else "Egress"
        key = "from" if direction == "ingress" else "to"
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == subject.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and matches(p["spec"]["podSelector"], subject.labels)
        ]
        if not selecting:
            return True
        target = subject if direction == "ingress" else (other if isinstance(other, Pod) else None)
        for policy in selecting:
            for rule in policy["spec"].get(direction, []) or []:
                peers = rule.get(key)
                if peers and not any(
                    peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
                ):
                    continue
                if port_matches(rule.get("ports"), target, port, protocol, self.named_ports):
                    return True
        return False

    def allowed(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        if isinstance(src, Pod) and not self._allowed("egress", src, dst, port, protocol):
            return False
        return not (isinstance(dst, Pod) and not self._allowed("ingress", dst, src, port, protocol))


def build(r: Rendered) -> tuple[Cluster, dict[str, Pod]]:
    (namespace,) = r.of_kind("Namespace")
    ns, ns_labels = namespace["metadata"]["name"], namespace["metadata"].get("labels", {})
    counter = itertools.count(10)
    pods: dict[str, Pod] = {}
    named: dict[str, dict[str, int]] = {}

    def add(
        name: str,
        namespace: str,
        labels: dict[str, str],
        nsl: dict[str, str] | None = None,
        ports: dict[str, int] | None = None,
    ) -> Pod:
        pod = Pod(
            name, namespace, labels, f"10.244.0.{next(counter)}", nsl if nsl is not None else {}
        )
        pods[name] = pod
        named[name] = ports or {}
        return pod

    for deployment in r.of_kind("Deployment"):
        template = deployment["spec"]["template"]
        ports = {
            p["name"]: p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
            if "name" in p
        }
        add(deployment["metadata"]["name"], ns, template["metadata"]["labels"], ns_labels, ports)

    (kafka,) = r.of_kind("Kafka")
    (pg,) = r.of_kind("Cluster")
    kname, pgname = kafka["metadata"]["name"], pg["metadata"]["name"]
    add(
        "postgres-1",
        ns,
        {
            "cnpg.io/cluster": pgname,
            "cnpg.io/instanceRole": "primary",
            "cnpg.io/podRole": "instance",
        },
        ns_labels,
        {"metrics": 9187},
    )
    add(
        "postgres-2",
        ns,
        {
            "cnpg.io/cluster": pgname,
            "cnpg.io/instanceRole": "replica",
            "cnpg.io/podRole": "instance",
        },
        ns_labels,
        {"metrics": 9187},
    )
    for i in (0, 1):
        add(
            f"kafka-broker-{i}",
            ns,
            {
                "strimzi.io/cluster": kname,
                "strimzi.io/kind": "Kafka",
                "strimzi.io/name": f"{kname}-kafka",
                "strimzi.io/broker-role": "true",
            },
            ns_labels,
        )
    add(
        "kafka-entity-operator",
        ns,
        {
            "strimzi.io/cluster": kname,
            "strimzi.io/kind": "Kafka",
            "strimzi.io/name": f"{kname}-entity-operator",
        },
        ns_labels,
    )
    add(
        "ingress-controller",
        "ingress",
        {"app": "controller"},
        {"parlay.dev/ingress-controller": "true"},
    )
    add("keda-operator", "keda", {"app": "keda-operator"})
    add("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
    add("integrator", "shop", {"app": "shop"}, {"parlay.dev/grpc-clients": "true"})
    add("stranger", "elsewhere", {"app": "stranger"})
    add("prometheus", "monitoring", {"app": "prometheus"}, {"parlay.dev/monitoring": "true"})
    add("kube-dns", "kube-system", {"k8s-app": "kube-dns"})

    policies = [dict(p) for p in r.of_kind("NetworkPolicy")]
    # What Strimzi generates for the Kafka pods: each listener port open to its peers.
    policies.append(
        {
            "metadata": {"name": "strimzi-generated", "namespace": ns},
            "spec": {
                "podSelector": {
                    "matchLabels": {
                        "strimzi.io/cluster": kname,
                        "strimzi.io/name": f"{kname}-kafka",
                    }
                },
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": listener.get("networkPolicyPeers") or [],
                        "ports": [{"protocol": "TCP", "port": listener["port"]}],
                    }
                    for listener in kafka["spec"]["kafka"]["listeners"]
                ]
                + [
                    {
                        "from": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": kname}}}],
                        "ports": [
                            {"protocol": "TCP", "port": 9090},
                            {"protocol": "TCP", "port": 9091},
                        ],
                    }
                ],
            },
        }
    )
    return Cluster(list(pods.values()), policies, named), pods


def app_pods(pods: dict[str, Pod]) -> list[Pod]:
    return [p for p in pods.values() if "parlay.dev/service" in p.labels]


@pytest.fixture(scope="module", params=OVERLAYS)
def cluster(request: pytest.FixtureRequest, rendered: dict[str, Rendered]):
    r = rendered[request.param]
    c, pods = build(r)
    return r, c, pods


def test_default_deny_for_the_whole_namespace(cluster) -> None:
    r, _, _ = cluster
    deny = [
        p
        for p in r.of_kind("NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny policy"


def test_services_reach_postgres_kafka_and_dns(cluster) -> None:
    _, c, pods = cluster
    assert app_pods(pods)
    for pod in app_pods(pods):
        for target in ("postgres-1", "postgres-2"):
            assert c.allowed(pod, pods[target], 5432), f"{pod.name} -> {target}:5432"
            assert not c.allowed(pod, pods[target], 8000), f"{pod.name} -> {target}:8000"
        for port in (9092, 9093):
            assert c.allowed(pod, pods["kafka-broker-0"], port), f"{pod.name} -> kafka:{port}"
        assert not c.allowed(pod, pods["kafka-broker-0"], 9091), "replication port"
        assert c.allowed(pod, pods["kube-dns"], 53, "UDP")


def test_grpc_calls_between_services_are_read_from_the_code() -> None:
    assert ("conversation", "orders") in DESIGN_GRPC_CALLS


def test_services_do_not_call_each_other_unless_the_design_says_so(cluster) -> None:
    _, c, pods = cluster
    for src, dst in itertools.product(app_pods(pods), app_pods(pods)):
        if src.name == dst.name:
            continue
        for port in (
            SERVICE_PORTS[dst.labels["parlay.dev/service"]],
            SERVICE_HTTP_PORTS.get(dst.labels["parlay.dev/service"]),
        ):
            if port is None:
                continue
            expected = (src.labels["parlay.dev/service"], dst.labels["parlay.dev/service"]) in (
                DESIGN_GRPC_CALLS
            ) and dst.labels["parlay.dev/tier"] == "api"
            assert c.allowed(src, dst, port) == expected, f"{src.name} -> {dst.name}:{port}"


def test_webhooks_enter_only_through_the_ingress_controller(cluster) -> None:
    _, c, pods = cluster
    gateway, controller = pods["gateway"], pods["ingress-controller"]
    assert c.allowed(controller, gateway, SERVICE_HTTP_PORTS["gateway"])
    assert not c.allowed(controller, gateway, SERVICE_PORTS["gateway"]), "gRPC is not public"
    assert not c.allowed(pods["stranger"], gateway, SERVICE_HTTP_PORTS["gateway"])
    for pod in app_pods(pods):
        if pod.name != "gateway":
            for port in (SERVICE_PORTS[pod.labels["parlay.dev/service"]], 8080):
                assert not c.allowed(controller, pod, port), f"ingress -> {pod.name}:{port}"
    assert not c.allowed(controller, pods["postgres-1"], 5432)


def test_integrators_reach_the_grpc_apis_only(cluster) -> None:
    _, c, pods = cluster
    integrator, stranger = pods["integrator"], pods["stranger"]
    for pod in app_pods(pods):
        port = SERVICE_PORTS[pod.labels["parlay.dev/service"]]
        api = pod.labels["parlay.dev/tier"] == "api"
        assert c.allowed(integrator, pod, port) == api, f"integrator -> {pod.name}:{port}"
        assert not c.allowed(stranger, pod, port), f"stranger -> {pod.name}:{port}"
        assert not c.allowed(integrator, pod, 8080), f"integrator -> {pod.name}:8080"
    for data in ("postgres-1", "kafka-broker-0"):
        for port in (5432, 9092, 9093):
            assert not c.allowed(integrator, pods[data], port)
            assert not c.allowed(stranger, pods[data], port)


def test_operators_reach_their_data_services(cluster) -> None:
    _, c, pods = cluster
    assert c.allowed(pods["keda-operator"], pods["kafka-broker-0"], 9092), "KEDA reads lag"
    assert c.allowed(pods["cnpg-operator"], pods["postgres-1"], 8000)
    assert c.allowed(pods["postgres-1"], pods["postgres-2"], 5432), "streaming replication"
    assert c.allowed(pods["kafka-broker-0"], pods["kafka-broker-1"], 9091), "replication"
    assert c.allowed(pods["kafka-entity-operator"], pods["kafka-broker-0"], 9091)
    for pod in ("postgres-1", "kafka-entity-operator"):
        assert c.allowed(pods[pod], INTERNET, 6443), f"{pod} -> Kubernetes API"


def test_only_provider_facing_services_reach_the_internet(cluster) -> None:
    _, c, pods = cluster
    for pod in app_pods(pods):
        expected = pod.labels["parlay.dev/service"] in INTERNET_EGRESS
        assert c.allowed(pod, INTERNET, 443) == expected, f"{pod.name} -> internet:443"
        assert not c.allowed(pod, INTERNET, 80), f"{pod.name} -> internet:80"
        assert not c.allowed(pod, METADATA, 443), f"{pod.name} -> cloud metadata"
        assert not c.allowed(pod, PRIVATE, 443), f"{pod.name} -> cluster network"


def test_telemetry_flows(cluster) -> None:
    r, c, pods = cluster
    collector = pods.get("otel-collector")
    if collector is not None:
        for pod in app_pods(pods):
            assert c.allowed(pod, collector, 4317), f"{pod.name} -> collector"
        assert c.allowed(collector, INTERNET, 4317), "collector -> tracing backend"
        assert not c.allowed(pods["stranger"], collector, 4317)
        assert not c.allowed(collector, pods["postgres-1"], 5432)
    if r.of_kind("PodMonitor"):
        prometheus = pods["prometheus"]
        for pod in app_pods(pods):  # API, relay and projector pods alike
            assert c.allowed(prometheus, pod, 9464), f"prometheus -> {pod.name}:9464"
        assert c.allowed(prometheus, pods["postgres-1"], 9187)
        assert not c.allowed(prometheus, pods["orders"], SERVICE_PORTS["orders"])
        assert not c.allowed(prometheus, pods["gateway"], 8080), "webhooks only via ingress"
        assert not c.allowed(pods["stranger"], pods["gateway-relay"], 9464)
    else:
        assert not c.allowed(pods["prometheus"], pods["gateway"], 9464)


def test_prod_has_telemetry_components(rendered: dict[str, Rendered]) -> None:
    assert rendered["prod"].find("Deployment", "otel-collector")
    assert rendered["prod"].of_kind("PodMonitor")
