"""TLS and mTLS on the shared gRPC server, with certificates made by the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit.auth import current_tenant
from parlay_kit.grpc_server import ClientTls, TlsConfig, build_server, create_channel

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

ORDERS = "parlay.orders.v1.OrdersService"


class Resolver:
    async def resolve(self, api_key: str) -> str | None:
        return {"key-a": "tenant-a"}.get(api_key)


class Orders(pb_grpc.OrdersServiceServicer):
    async def GetOrder(self, request, context):  # type: ignore[no-untyped-def]
        return pb.GetOrderResponse(
            order=pb.Order(order_id=request.order_id, tenant_id=current_tenant())
        )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=parlay-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn in (("server", "localhost"), ("client", "orders-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                 "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


def _server(tls: TlsConfig):  # type: ignore[no-untyped-def]
    return build_server(
        [(pb_grpc.add_OrdersServiceServicer_to_server, Orders())],
        resolver=Resolver(),
        service_names=[ORDERS],
        tls=tls,
        telemetry_enabled=False,
    )


async def test_tls_server(certs: Path) -> None:
    server = _server(TlsConfig(str(certs / "server.pem"), str(certs / "server.key")))
    await server.start()
    try:
        tls = ClientTls(ca_file=str(certs / "ca.pem"))
        async with create_channel(server.address, api_key="key-a", tls=tls) as channel:
            reply = await pb_grpc.OrdersServiceStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="o1")
            )
            assert reply.order.tenant_id == "tenant-a"
        async with create_channel(server.address) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(plaintext).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_mtls_requires_client_certificate(certs: Path) -> None:
    tls = TlsConfig.optional(
        str(certs / "server.pem"), str(certs / "server.key"), str(certs / "ca.pem")
    )
    assert tls is not None
    server = _server(tls)
    await server.start()
    try:
        with_cert = ClientTls(
            ca_file=str(certs / "ca.pem"),
            cert_file=str(certs / "client.pem"),
            key_file=str(certs / "client.key"),
        )
        async with create_channel(server.address, api_key="key-a", tls=with_cert) as channel:
            reply = await pb_grpc.OrdersServiceStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="o1")
            )
            assert reply.order.tenant_id == "tenant-a"
        without_cert = ClientTls(ca_file=str(certs / "ca.pem"))
        async with create_channel(server.address, api_key="key-a", tls=without_cert) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.OrdersServiceStub(channel).GetOrder(
                    pb.GetOrderRequest(order_id="o1"), timeout=2
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


def test_tls_config_optional() -> None:
    assert TlsConfig.optional() is None
    assert TlsConfig.optional("c.pem", "k.pem") == TlsConfig("c.pem", "k.pem", "")
    with pytest.raises(ValueError):
        TlsConfig.optional("c.pem")
    with pytest.raises(ValueError):
        TlsConfig.optional(ca_file="ca.pem")
