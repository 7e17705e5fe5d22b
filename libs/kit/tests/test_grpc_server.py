"""The shared gRPC server against a real grpc.aio server on a free port and a real client channel."""

from __future__ import annotations

import asyncio
import logging

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit import errors, telemetry, tenancy
from parlay_kit.auth import current_tenant
from parlay_kit.grpc_server import (
    FIELD_TRAILER,
    GrpcServer,
    build_server,
    create_channel,
    require,
)

ORDERS = "parlay.orders.v1.OrdersService"
STREAM = "parlay.test.v1.StreamService"
KEYS = {"key-a": "tenant-a", "key-b": "tenant-b", "svc-key": tenancy.SERVICE_PRINCIPAL}
SPANS = InMemorySpanExporter()


class DictResolver:
    """In-memory TenantResolver: api key -> tenant. The key "explode" simulates a database outage."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    async def resolve(self, api_key: str) -> str | None:
        if api_key == "explode":
            raise ConnectionError("tenancy database down")
        return self.keys.get(api_key)


DOMAIN_ERRORS: dict[str, tuple[Exception, grpc.StatusCode]] = {
    "not-found": (errors.NotFound("order not-found does not exist"), grpc.StatusCode.NOT_FOUND),
    "exists": (errors.AlreadyExists("order exists already exists"), grpc.StatusCode.ALREADY_EXISTS),
    "precondition": (
        errors.FailedPrecondition("order is cancelled"),
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    "lagging": (
        errors.NotYetKnown("conversation c-1 is not known to orders yet"),
        grpc.StatusCode.UNAVAILABLE,
    ),
    "conflict": (
        errors.ConcurrencyError("order moved to version 4"),
        grpc.StatusCode.ABORTED,
    ),
    "denied": (errors.PermissionDenied("not your order"), grpc.StatusCode.PERMISSION_DENIED),
    "unauth": (errors.Unauthenticated("session expired"), grpc.StatusCode.UNAUTHENTICATED),
    "bad-field": (
        errors.InvalidArgument("order.customer_id", "must be a uuid"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
}


class Orders(pb_grpc.OrdersServiceServicer):
    def __init__(self) -> None:
        self.barrier = asyncio.Barrier(2)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def GetOrder(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext):
        require(request, "order_id")
        oid = request.order_id
        if oid in DOMAIN_ERRORS:
            raise DOMAIN_ERRORS[oid][0]
        if oid == "boom":
            raise RuntimeError("password=hunter2 leaked in an unexpected error")
        if oid == "self-abort":
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        if oid == "together":  # two calls in flight at once, each must keep its own tenant
            await self.barrier.wait()
        if oid == "hold":
            self.entered.set()
            await self.release.wait()
        status = telemetry.current_traceparent() if oid == "trace" else "open"
        return pb.GetOrderResponse(
            order=pb.Order(order_id=oid, tenant_id=current_tenant(), status=status)
        )


async def stream_gen(request: pb.GetOrderRequest, context: grpc.aio.ServicerContext):
    for i in range(3):
        if request.order_id == "not-found" and i == 1:
            raise errors.NotFound("order vanished mid-stream")
        if request.order_id == "boom" and i == 1:
            raise ValueError("kaput")
        yield pb.Order(order_id=f"{request.order_id}-{i}", tenant_id=current_tenant())


async def stream_writer(request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> None:
    require(request, "order_id")
    for i in range(2):
        await context.write(
            pb.Order(order_id=f"{request.order_id}-{i}", tenant_id=current_tenant())
        )


def add_stream_service(_servicer: object, server: grpc.aio.Server) -> None:
    def handler(fn):  # type: ignore[no-untyped-def]
        return grpc.unary_stream_rpc_method_handler(
            fn,
            request_deserializer=pb.GetOrderRequest.FromString,
            response_serializer=pb.Order.SerializeToString,
        )

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                STREAM, {"Gen": handler(stream_gen), "Writer": handler(stream_writer)}
            ),
        )
    )


class Env:
    def __init__(self, server: GrpcServer, servicer: Orders, traced: bool) -> None:
        self.server = server
        self.servicer = servicer
        self.traced = traced
        self.channel = create_channel(server.address, telemetry_enabled=False)
        self.orders = pb_grpc.OrdersServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def stream(self, method: str):  # type: ignore[no-untyped-def]
        return self.channel.unary_stream(
            f"/{STREAM}/{method}",
            request_serializer=pb.GetOrderRequest.SerializeToString,
            response_deserializer=pb.Order.FromString,
        )


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["traced", "plain"])
async def env(request: pytest.FixtureRequest):
    traced = request.param == "traced"
    if traced:
        telemetry.setup_telemetry("parlay-test", span_exporter=SPANS)
    servicer = Orders()
    server = build_server(
        [(pb_grpc.add_OrdersServiceServicer_to_server, servicer), (add_stream_service, None)],
        resolver=DictResolver(KEYS),
        service_names=[ORDERS, STREAM],
        port=0,
        telemetry_enabled=traced,
    )
    await server.start()
    e = Env(server, servicer, traced)
    yield e
    await e.channel.close()
    await server.stop(0)


async def test_health_serving_overall_and_per_service(env: Env) -> None:
    for service in ("", ORDERS, STREAM):
        reply = await env.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_set_not_serving_and_back(env: Env) -> None:
    await env.server.set_not_serving(ORDERS)
    reply = await env.health.Check(health_pb2.HealthCheckRequest(service=ORDERS))
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await env.server.set_not_serving()
    reply = await env.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await env.server.set_serving()
    for service in ("", ORDERS):
        reply = await env.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def _reflect(env: Env, method: str, req: reflection_pb2.ServerReflectionRequest):
    call = env.channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return [r async for r in call(iter([req]))]


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
async def test_reflection_lists_services_without_credentials(env: Env, method: str) -> None:
    (reply,) = await _reflect(env, method, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in reply.list_services_response.service}
    assert {ORDERS, STREAM, "grpc.health.v1.Health"} <= names
    assert "grpc.reflection.v1alpha.ServerReflection" in names


async def test_reflection_describes_orders_service(env: Env) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(env.channel)
    replies = [
        r
        async for r in stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=ORDERS)])
        )
    ]
    protos = replies[0].file_descriptor_response.file_descriptor_proto
    assert protos and any(b"GetOrder" in p for p in protos)


async def test_missing_credentials_unauthenticated(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <api key>" in err.value.details()


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((("authorization", "Bearer nope"),), "invalid API key"),
        ((("authorization", "Basic a2V5LWE6"),), "expected 'Bearer <api key>'"),
        ((("authorization", "Bearer "),), "expected 'Bearer <api key>'"),
    ],
)
async def test_bad_credentials_unauthenticated(env: Env, metadata, expected: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert expected in err.value.details()


async def test_resolver_failure_is_unavailable(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=bearer("explode"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_valid_key_handler_sees_tenant(env: Env) -> None:
    reply = await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=bearer("key-a"))
    assert reply.order.tenant_id == "tenant-a"
    # scheme is case-insensitive
    meta = (("authorization", "bearer key-b"),)
    reply = await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=meta)
    assert reply.order.tenant_id == "tenant-b"


async def test_service_key_acts_for_the_tenant_it_names(env: Env) -> None:
    for_a = (*bearer("svc-key"), ("x-parlay-tenant", "tenant-a"))
    reply = await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=for_a)
    assert reply.order.tenant_id == "tenant-a"
    for bad in ((), (("x-parlay-tenant", "Not A Tenant!"),)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await env.orders.GetOrder(
                pb.GetOrderRequest(order_id="o1"), metadata=(*bearer("svc-key"), *bad)
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "x-parlay-tenant" in err.value.details()
    # A tenant key cannot borrow another tenant by naming it.
    borrowed = (*bearer("key-a"), ("x-parlay-tenant", "tenant-b"))
    reply = await env.orders.GetOrder(pb.GetOrderRequest(order_id="o1"), metadata=borrowed)
    assert reply.order.tenant_id == "tenant-a"


async def test_channel_helper_sends_api_key(env: Env) -> None:
    async with create_channel(env.server.address, api_key="key-b") as channel:
        reply = await pb_grpc.OrdersServiceStub(channel).GetOrder(pb.GetOrderRequest(order_id="o1"))
    assert reply.order.tenant_id == "tenant-b"


async def test_concurrent_requests_keep_their_own_tenant(env: Env) -> None:
    env.servicer.barrier = asyncio.Barrier(2)
    a, b = await asyncio.gather(
        env.orders.GetOrder(pb.GetOrderRequest(order_id="together"), metadata=bearer("key-a")),
        env.orders.GetOrder(pb.GetOrderRequest(order_id="together"), metadata=bearer("key-b")),
    )
    assert (a.order.tenant_id, b.order.tenant_id) == ("tenant-a", "tenant-b")


async def test_missing_field_is_invalid_argument_naming_it(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(pb.GetOrderRequest(), metadata=bearer("key-a"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "order_id: is required"
    assert (FIELD_TRAILER, "order_id") in tuple(err.value.trailing_metadata())


@pytest.mark.parametrize("order_id", sorted(DOMAIN_ERRORS))
async def test_domain_error_maps_to_status(env: Env, order_id: str) -> None:
    exc, code = DOMAIN_ERRORS[order_id]
    before = REGISTRY.get_sample_value(
        "parlay_grpc_server_handled_total",
        {"grpc_service": ORDERS, "grpc_method": "GetOrder", "grpc_code": code.name},
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=bearer("key-a"))
    assert err.value.code() == code
    assert err.value.details() == str(exc)
    if isinstance(exc, errors.InvalidArgument):
        assert err.value.details().startswith("order.customer_id: ")
        assert (FIELD_TRAILER, "order.customer_id") in tuple(err.value.trailing_metadata())
    # The server counts the RPC after the client already has its status: wait for it.
    labels = {"grpc_service": ORDERS, "grpc_method": "GetOrder", "grpc_code": code.name}
    for _ in range(200):
        if (
            REGISTRY.get_sample_value("parlay_grpc_server_handled_total", labels)
            == (before or 0) + 1
        ):
            break
        await asyncio.sleep(0.01)
    assert (
        REGISTRY.get_sample_value("parlay_grpc_server_handled_total", labels) == (before or 0) + 1
    )


async def test_unknown_exception_is_internal_with_generic_message(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="parlay_kit.grpc"),
        pytest.raises(grpc.aio.AioRpcError) as err,
    ):
        await env.orders.GetOrder(pb.GetOrderRequest(order_id="boom"), metadata=bearer("key-a"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    details = err.value.details()
    assert details.startswith("internal error (ref ") and "hunter2" not in details
    ref = details.removeprefix("internal error (ref ").rstrip(")")
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert logged and logged[0].exc_info and "hunter2" in str(logged[0].exc_info[1])


async def test_handler_own_abort_passes_through(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.orders.GetOrder(
            pb.GetOrderRequest(order_id="self-abort"), metadata=bearer("key-a")
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details() == "slow down"


async def test_unary_stream_async_generator(env: Env) -> None:
    call = env.stream("Gen")(pb.GetOrderRequest(order_id="s"), metadata=bearer("key-b"))
    got = [(o.order_id, o.tenant_id) async for o in call]
    assert got == [("s-0", "tenant-b"), ("s-1", "tenant-b"), ("s-2", "tenant-b")]


async def test_unary_stream_context_write_style(env: Env) -> None:
    call = env.stream("Writer")(pb.GetOrderRequest(order_id="w"), metadata=bearer("key-a"))
    got = [(o.order_id, o.tenant_id) async for o in call]
    assert got == [("w-0", "tenant-a"), ("w-1", "tenant-a")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        call = env.stream("Writer")(pb.GetOrderRequest(), metadata=bearer("key-a"))
        [o async for o in call]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "order_id: is required"


async def test_unary_stream_errors_and_auth(env: Env) -> None:
    received: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for o in env.stream("Gen")(
            pb.GetOrderRequest(order_id="not-found"), metadata=bearer("key-a")
        ):
            received.append(o.order_id)
    assert received == ["not-found-0"]
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "order vanished mid-stream"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        [
            o
            async for o in env.stream("Gen")(
                pb.GetOrderRequest(order_id="boom"), metadata=bearer("key-a")
            )
        ]
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "kaput" not in err.value.details()

    with pytest.raises(grpc.aio.AioRpcError) as err:
        [o async for o in env.stream("Gen")(pb.GetOrderRequest(order_id="x"))]
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_trace_context_reaches_handler(env: Env) -> None:
    if not env.traced:
        pytest.skip("telemetry off for this server")
    tracer = telemetry.get_tracer("test")
    with tracer.start_as_current_span("caller") as span:
        caller_trace = format(span.get_span_context().trace_id, "032x")
        metadata = bearer("key-a") + tuple(
            (k, v.decode()) for k, v in telemetry.inject_traceparent()
        )
        reply = await env.orders.GetOrder(pb.GetOrderRequest(order_id="trace"), metadata=metadata)
    # The handler ran in a server span that continues the caller's trace.
    assert telemetry.trace_id_of(reply.order.status) == caller_trace
    server_spans = [
        s
        for s in SPANS.get_finished_spans()
        if s.kind == trace.SpanKind.SERVER and format(s.context.trace_id, "032x") == caller_trace
    ]
    assert [s.name for s in server_spans] == [f"/{ORDERS}/GetOrder"]
    # Health probes are not traced.
    await env.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert not [s for s in SPANS.get_finished_spans() if "Health" in s.name]


async def test_channel_helper_propagates_trace(env: Env) -> None:
    if not env.traced:
        pytest.skip("telemetry off for this server")
    tracer = telemetry.get_tracer("test")
    async with create_channel(env.server.address, api_key="key-a") as channel:
        with tracer.start_as_current_span("caller") as span:
            reply = await pb_grpc.OrdersServiceStub(channel).GetOrder(
                pb.GetOrderRequest(order_id="trace")
            )
    assert telemetry.trace_id_of(reply.order.status) == format(
        span.get_span_context().trace_id, "032x"
    )


def test_require_rules() -> None:
    require(pb.GetOrderResponse(order=pb.Order(order_id="x")), "order", "order.order_id")
    with pytest.raises(errors.InvalidArgument) as err:
        require(pb.GetOrderResponse(), "order")
    assert err.value.field == "order"
    with pytest.raises(errors.InvalidArgument) as err:
        require(pb.GetOrderResponse(order=pb.Order()), "order.order_id")
    assert str(err.value) == "order.order_id: is required"
    with pytest.raises(ValueError):
        require(pb.GetOrderRequest(order_id="x"), "no_such_field")


async def test_graceful_stop_finishes_inflight_rpc() -> None:
    servicer = Orders()
    server = build_server(
        [(pb_grpc.add_OrdersServiceServicer_to_server, servicer)],
        resolver=DictResolver(KEYS),
        service_names=[ORDERS],
        telemetry_enabled=False,
    )
    await server.start()
    async with create_channel(server.address, api_key="key-a") as channel:
        stub = pb_grpc.OrdersServiceStub(channel)
        inflight = asyncio.ensure_future(stub.GetOrder(pb.GetOrderRequest(order_id="hold")))
        await servicer.entered.wait()
        stopping = asyncio.create_task(server.stop(grace=10))
        # Wait until the server refuses new RPCs, i.e. it is draining, then release the handler.
        while True:
            async with create_channel(server.address) as probe:
                try:
                    await health_pb2_grpc.HealthStub(probe).Check(
                        health_pb2.HealthCheckRequest(), timeout=0.5
                    )
                except grpc.aio.AioRpcError:
                    break
        assert not inflight.done()
        servicer.release.set()
        reply = await inflight
        assert reply.order.tenant_id == "tenant-a"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(pb.GetOrderRequest(order_id="o1"), timeout=2)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_port_in_use_is_refused() -> None:
    first = build_server([], resolver=DictResolver(KEYS), service_names=[], telemetry_enabled=False)
    await first.start()
    try:
        with pytest.raises(OSError):
            build_server(
                [],
                resolver=DictResolver(KEYS),
                service_names=[],
                port=first.port,
                telemetry_enabled=False,
            )
    finally:
        await first.stop(0)
    await asyncio.sleep(0)  # let the refused server's shutdown task run


async def test_unknown_method_is_unimplemented(env: Env) -> None:
    call = env.channel.unary_unary(
        f"/{ORDERS}/NoSuchMethod",
        request_serializer=pb.GetOrderRequest.SerializeToString,
        response_deserializer=pb.GetOrderResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(pb.GetOrderRequest(order_id="o1"), metadata=bearer("key-a"))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_current_tenant_outside_a_request_and_tenant_scope() -> None:
    from parlay_kit.auth import tenant_scope

    with pytest.raises(errors.Unauthenticated):
        current_tenant()
    with tenant_scope("tenant-x"):
        assert current_tenant() == "tenant-x"
    with pytest.raises(errors.Unauthenticated):
        current_tenant()


async def test_caching_resolver() -> None:
    from parlay_kit.auth import CachingResolver, TenantResolver

    class Counting(DictResolver):
        calls = 0

        async def resolve(self, api_key: str) -> str | None:
            self.calls += 1
            return await super().resolve(api_key)

    inner = Counting(dict(KEYS))
    cached = CachingResolver(inner, ttl=60, negative_ttl=60)
    assert isinstance(cached, TenantResolver)
    assert [await cached.resolve("key-a") for _ in range(3)] == ["tenant-a"] * 3
    assert [await cached.resolve("nope") for _ in range(3)] == [None] * 3
    assert inner.calls == 2
    inner.keys.pop("key-a")  # revoked
    cached.invalidate("key-a")
    assert await cached.resolve("key-a") is None
