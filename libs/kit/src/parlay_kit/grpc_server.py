"""gRPC server setup shared by every service: grpc.aio with health, reflection, tenant
authentication, domain-error -> status-code mapping, OpenTelemetry and Prometheus metrics.

Servicer methods stay small: they call `require(request, "field")`, read `current_tenant()` and
raise the errors in `parlay_kit.errors`; the interceptor turns those into status codes:

    InvalidArgument    -> INVALID_ARGUMENT  (message "<field>: <why>", trailer parlay-field)
    NotFound           -> NOT_FOUND
    AlreadyExists      -> ALREADY_EXISTS
    FailedPrecondition -> FAILED_PRECONDITION
    NotYetKnown        -> UNAVAILABLE (retry: the service's view of the log lags)
    ConcurrencyError   -> ABORTED
    PermissionDenied   -> PERMISSION_DENIED
    Unauthenticated    -> UNAUTHENTICATED
    anything else      -> INTERNAL "internal error (ref <id>)", traceback logged with the same ref

Servicer methods must be `async def` (unary responses) or async generators / `async def` using
`context.write` (streaming responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from parlay_kit import auth, errors, telemetry, tenancy
from parlay_kit.auth import TenantResolver

log = logging.getLogger("parlay_kit.grpc")

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1ALPHA = reflection.SERVICE_NAME
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
#: Methods under these prefixes need no credentials (probes, grpcurl / Postman discovery).
EXEMPT_PREFIXES: tuple[str, ...] = (
    f"/{HEALTH_SERVICE}/",
    f"/{REFLECTION_V1ALPHA}/",
    f"/{REFLECTION_V1}/",
)
#: Trailing metadata key naming the offending field on INVALID_ARGUMENT.
FIELD_TRAILER = "parlay-field"

STATUS_BY_ERROR: tuple[tuple[type[errors.ParlayError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.NotYetKnown, grpc.StatusCode.UNAVAILABLE),
    (errors.ConcurrencyError, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)

AddFn = Callable[[Any, grpc.aio.Server], None]


# --------------------------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------------------------


def require(request: Message, *fields: str) -> None:
    """Raise InvalidArgument naming the first missing field. A field is missing when it is unset
    (message / `optional` fields), empty (repeated, map) or has its default value (proto3
    scalars: "", 0, false). Dotted paths reach into sub-messages: `require(req, "order.order_id")`.
    """
    for path in fields:
        node: Any = request
        for name in path.split("."):
            if not _present(node, name):
                raise errors.InvalidArgument(path, "is required")
            node = getattr(node, name)


def _present(message: Any, name: str) -> bool:
    descriptor = message.DESCRIPTOR.fields_by_name.get(name)
    if descriptor is None:
        raise ValueError(f"{message.DESCRIPTOR.full_name} has no field {name!r}")
    repeated = getattr(descriptor, "is_repeated", None)
    if repeated is None:  # protobuf < 5.29
        repeated = descriptor.label == descriptor.LABEL_REPEATED
    if repeated:
        return len(getattr(message, name)) > 0
    if descriptor.has_presence:
        return message.HasField(name)
    return bool(getattr(message, name))


# --------------------------------------------------------------------------------------------
# Error mapping
# --------------------------------------------------------------------------------------------


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    for error_type, code in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return code
    return None


async def _abort_for(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    """Abort the RPC with the status for `exc` (always raises grpc.aio.AbortError)."""
    code = status_for(exc)
    if code is None:
        ref = telemetry.trace_id_of() or uuid.uuid4().hex
        log.error("unhandled error in %s (ref %s)", method, ref, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")
        return
    message = str(exc) or code.name.lower().replace("_", " ")
    trailers: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, errors.InvalidArgument):
        trailers = ((FIELD_TRAILER, exc.field),)
    await context.abort(code, message, trailers)


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _code_of(context: grpc.aio.ServicerContext, failed: bool) -> str:
    try:
        code = context.code()
    except Exception:  # pragma: no cover - older grpc without ServicerContext.code()
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "UNKNOWN" if failed else "OK"


class ParlayServerInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates the caller, sets the tenant for the handler, maps domain errors to status
    codes and records Prometheus metrics. Wraps unary and streaming handlers alike."""

    def __init__(
        self, resolver: TenantResolver, *, exempt_prefixes: Sequence[str] = EXEMPT_PREFIXES
    ) -> None:
        self._resolver = resolver
        self._exempt = tuple(exempt_prefixes)
        # method -> (registered handler, wrapped handler): wrap once, not per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(self._exempt):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap_handler(handler, method, self._authenticate)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> str:
        api_key = auth.bearer_token(context.invocation_metadata())
        try:
            tenant = await self._resolver.resolve(api_key)
        except Exception as exc:
            log.exception("API key lookup failed")
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot verify credentials right now: {type(exc).__name__}",
            )
            raise  # unreachable: abort raises
        if not tenant:
            raise errors.Unauthenticated("invalid API key")
        if tenant == tenancy.SERVICE_PRINCIPAL:
            return _tenant_named_by_service(context.invocation_metadata())
        return tenant


#: Metadata a service key uses to name the tenant it calls for (ignored for tenant keys).
TENANT_HEADER = "x-parlay-tenant"


def _tenant_named_by_service(metadata: Any) -> str:
    named = next((v for k, v in metadata or () if k.lower() == TENANT_HEADER), None)
    if isinstance(named, bytes):
        named = named.decode("latin-1")
    if not named:
        raise errors.Unauthenticated(f"a service key must name the tenant in '{TENANT_HEADER}'")
    try:
        return tenancy.validate_tenant_id(named)
    except errors.InvalidArgument as exc:
        raise errors.Unauthenticated(f"'{TENANT_HEADER}' is not a tenant id: {named!r}") from exc


def _wrap_handler(
    handler: grpc.RpcMethodHandler,
    method: str,
    authenticate: Callable[[grpc.aio.ServicerContext], Any],
) -> grpc.RpcMethodHandler:
    service, name = _split(method)
    handled = telemetry.GRPC_SERVER_HANDLED
    seconds = telemetry.GRPC_SERVER_HANDLING_SECONDS.labels(service, name)

    if handler.request_streaming and handler.response_streaming:
        behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler

    if not handler.response_streaming:

        async def unary_response(
            request_or_iterator: Any, context: grpc.aio.ServicerContext
        ) -> Any:
            start = time.perf_counter()
            failed = True
            try:
                tenant = await authenticate(context)
                token = auth.set_tenant(tenant)
                try:
                    result = behavior(request_or_iterator, context)
                    if inspect.isawaitable(result):
                        result = await result
                finally:
                    auth.reset_tenant(token)
                failed = False
                return result
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)
                raise  # unreachable: abort raises
            finally:
                seconds.observe(time.perf_counter() - start)
                handled.labels(service, name, _code_of(context, failed)).inc()

        wrapped: Callable[..., Any] = unary_response
    else:

        async def stream_response(
            request_or_iterator: Any, context: grpc.aio.ServicerContext
        ) -> Any:
            start = time.perf_counter()
            failed = True
            token = None
            try:
                token = auth.set_tenant(await authenticate(context))
                if inspect.isasyncgenfunction(behavior):
                    async for response in behavior(request_or_iterator, context):
                        yield response
                else:
                    result = behavior(request_or_iterator, context)
                    if inspect.isawaitable(result):  # reader/writer style: uses context.write
                        result = await result
                    if result is not None:  # a plain iterable of responses
                        for response in result:
                            yield response
                failed = False
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)
                raise  # unreachable: abort raises
            finally:
                if token is not None:
                    with contextlib.suppress(ValueError):  # closed from another context
                        auth.reset_tenant(token)
                seconds.observe(time.perf_counter() - start)
                handled.labels(service, name, _code_of(context, failed)).inc()

        wrapped = stream_response

    return factory(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# --------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS. With `ca_file` the server requires and verifies client certificates (mTLS)."""

    cert_file: str
    key_file: str
    ca_file: str = ""

    @classmethod
    def optional(
        cls, cert_file: str = "", key_file: str = "", ca_file: str = ""
    ) -> TlsConfig | None:
        """None when no certificate is configured (plaintext), else a TlsConfig."""
        if not cert_file and not key_file:
            if ca_file:
                raise ValueError("a client CA without a server certificate and key")
            return None
        if not (cert_file and key_file):
            raise ValueError("TLS needs both a certificate and a key file")
        return cls(cert_file, key_file, ca_file)

    def server_credentials(self) -> grpc.ServerCredentials:
        ca = Path(self.ca_file).read_bytes() if self.ca_file else None
        return grpc.ssl_server_credentials(
            [(Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


class GrpcServer:
    """A built, not yet started server. `port` is the bound port (useful with port=0)."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health: HealthServicer,
        service_names: Sequence[str],
        host: str,
        port: int,
    ) -> None:
        self.server = server
        self.health = health
        self.service_names = tuple(service_names)
        self.host = host
        self.port = port
        self._started = False

    @property
    def address(self) -> str:
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    async def start(self, *, serving: bool = True) -> None:
        """Start accepting RPCs; health reports SERVING unless `serving=False` (then call
        `set_serving()` once the service is ready, e.g. its projections caught up)."""
        await self.server.start()
        self._started = True
        if serving:
            await self.set_serving()
        else:
            await self.set_not_serving()

    async def set_serving(self, service: str | None = None) -> None:
        await self._set(service, health_pb2.HealthCheckResponse.SERVING)

    async def set_not_serving(self, service: str | None = None) -> None:
        await self._set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def _set(self, service: str | None, status: int) -> None:
        names = ("", *self.service_names) if service is None else (service,)
        for name in names:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Graceful shutdown: health goes NOT_SERVING for good, new RPCs are refused and RPCs
        in flight get `grace` seconds to finish before they are cancelled."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self._started = False

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return await self.server.wait_for_termination(timeout)

    async def __aenter__(self) -> GrpcServer:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def build_server(
    servicers: Iterable[tuple[AddFn, Any]],
    *,
    resolver: TenantResolver,
    service_names: Sequence[str],
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsConfig | None = None,
    telemetry_enabled: bool | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    options: Sequence[tuple[str, Any]] = (),
    maximum_concurrent_rpcs: int | None = None,
) -> GrpcServer:
    """Build a grpc.aio server (call inside a running event loop).

    servicers: `(add_XServicer_to_server, servicer)` pairs from the generated `*_pb2_grpc`.
    service_names: the full names of those services ("parlay.orders.v1.OrdersService"), for
        health and reflection.
    port: 0 picks a free port; the bound one is `GrpcServer.port`.
    tls: None for plaintext; see TlsConfig (mTLS when it has a CA).
    telemetry_enabled: OpenTelemetry server spans; default: on when `setup_telemetry` ran.
    interceptors: extra interceptors, run inside the built-in ones.
    """
    if telemetry_enabled is None:
        telemetry_enabled = telemetry.enabled()
    chain: list[grpc.aio.ServerInterceptor] = []
    if telemetry_enabled:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        # Keep probes and discovery out of the traces.
        traced = filters.negate(
            filters.any_of(
                filters.service_name(HEALTH_SERVICE),
                filters.service_name(REFLECTION_V1ALPHA),
                filters.service_name(REFLECTION_V1),
            )
        )
        chain.append(
            aio_server_interceptor(tracer_provider=telemetry.tracer_provider(), filter_=traced)
        )
    chain.append(ParlayServerInterceptor(resolver))
    chain.extend(interceptors)

    server = grpc.aio.server(
        interceptors=chain,
        # Never share a port silently with another process (Linux SO_REUSEPORT is grpc's default).
        options=[("grpc.so_reuseport", 0), *options],
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    for add, servicer in servicers:
        add(servicer, server)

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = list(dict.fromkeys(service_names))
    # (v1 is served too, but only v1alpha's descriptors ship with grpcio-reflection.)
    _add_reflection(server, [*names, HEALTH_SERVICE, REFLECTION_V1ALPHA])

    target = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(target, tls.server_credentials())
            if tls is not None
            else server.add_insecure_port(target)
        )
    except RuntimeError as exc:  # grpc reports a failed bind as RuntimeError
        _discard(server)
        raise OSError(f"cannot bind gRPC server to {target}: {exc}") from exc
    if bound == 0:
        _discard(server)
        raise OSError(f"cannot bind gRPC server to {target}")
    return GrpcServer(server, health, names, host, bound)


_discarded: set[asyncio.Task[None]] = set()


def _discard(server: grpc.aio.Server) -> None:
    """Shut down a server that will never start (else its finalizer runs on a closed loop)."""
    task = asyncio.get_running_loop().create_task(server.stop(None))
    _discarded.add(task)
    task.add_done_callback(_discarded.discard)


def _add_reflection(server: grpc.aio.Server, names: Sequence[str]) -> None:
    """Serve grpc.reflection.v1alpha and grpc.reflection.v1 (what current grpcurl / Postman try
    first) with one implementation: the two protocols are identical on the wire."""
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))


# --------------------------------------------------------------------------------------------
# Client side (service-to-service calls, tests, tools)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientTls:
    """Client TLS: the CA that signed the server certificate; client cert/key for mTLS."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""  # override the name checked against the server certificate

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca_file).read_bytes(),
            private_key=Path(self.key_file).read_bytes() if self.key_file else None,
            certificate_chain=Path(self.cert_file).read_bytes() if self.cert_file else None,
        )


class _BearerInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    def __init__(self, api_key: str) -> None:
        self._value = f"Bearer {api_key}"

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if "authorization" not in metadata:
            metadata.add("authorization", self._value)
        return details._replace(metadata=metadata)  # type: ignore[attr-defined]

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(self, continuation, details, request_iterator):  # type: ignore[no-untyped-def]
        return await continuation(self._details(details), request_iterator)


def create_channel(
    target: str,
    *,
    api_key: str = "",
    tls: ClientTls | None = None,
    telemetry_enabled: bool | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A grpc.aio channel that sends `authorization: Bearer <api_key>` on every call (unless the
    call sets its own) and, with telemetry on, propagates the trace context to the server."""
    chain: list[grpc.aio.ClientInterceptor] = []
    if api_key:
        chain.append(_BearerInterceptor(api_key))
    if telemetry_enabled is None:
        telemetry_enabled = telemetry.enabled()
    if telemetry_enabled:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        chain.extend(aio_client_interceptors(tracer_provider=telemetry.tracer_provider()))
    opts = list(options)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=opts, interceptors=chain)
    if tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(
        target, tls.channel_credentials(), options=opts, interceptors=chain
    )


async def wait_until_serving(
    channel: grpc.aio.Channel, service: str = "", timeout: float = 10.0
) -> None:
    """Poll the health service until `service` is SERVING (for tests and launchers)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"gRPC service {service!r} not SERVING after {timeout}s")
        await asyncio.sleep(0.05)
