"""Who is calling: the tenant of the current request, and how an API key becomes a tenant.

The gRPC server interceptor (`parlay_kit.grpc_server`) reads `authorization: Bearer <api key>`,
asks a `TenantResolver` which tenant owns the key and sets the tenant for the handler. Handlers and
everything they call read it with `current_tenant()`; they never take a tenant id from a request.
Consumers and tests that act for a tenant outside a request use `tenant_scope(tenant_id)`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Protocol, runtime_checkable

from parlay_kit.errors import Unauthenticated

_tenant: ContextVar[str | None] = ContextVar("parlay_tenant", default=None)


def current_tenant() -> str:
    """The tenant of the request being handled. Raises Unauthenticated when there is none."""
    tenant = _tenant.get()
    if not tenant:
        raise Unauthenticated("no authenticated tenant in this context")
    return tenant


def current_tenant_or_none() -> str | None:
    return _tenant.get() or None


def set_tenant(tenant_id: str) -> Token[str | None]:
    """Set the tenant for the current context; pass the token to `reset_tenant` when done."""
    if not tenant_id:
        raise ValueError("tenant_id must not be empty")
    return _tenant.set(tenant_id)


def reset_tenant(token: Token[str | None]) -> None:
    _tenant.reset(token)


@contextmanager
def tenant_scope(tenant_id: str) -> Iterator[str]:
    """Act for `tenant_id` inside the block (consumers, jobs, tests)."""
    token = set_tenant(tenant_id)
    try:
        yield tenant_id
    finally:
        _tenant.reset(token)


@runtime_checkable
class TenantResolver(Protocol):
    """Maps an API key to the tenant it belongs to; None when the key is unknown or revoked."""

    async def resolve(self, api_key: str) -> str | None: ...


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The API key from `authorization: Bearer <key>` metadata.

    Raises Unauthenticated with a message that tells the caller what to send."""
    value: str | bytes | None = None
    for key, val in metadata or ():
        if key.lower() == "authorization":
            value = val
            break
    if value is None:
        raise Unauthenticated(
            "missing credentials: send metadata 'authorization: Bearer <api key>'"
        )
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("malformed authorization metadata: expected 'Bearer <api key>'")
    return token


class CachingResolver:
    """Wraps a resolver with a small in-process TTL cache so a hot API key costs one lookup per
    `ttl` seconds instead of one per RPC. Unknown keys are cached for `negative_ttl` seconds.
    A revoked key therefore stays valid for at most `ttl` seconds in each process."""

    def __init__(
        self,
        inner: TenantResolver,
        *,
        ttl: float = 30.0,
        negative_ttl: float = 2.0,
        max_entries: int = 10_000,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def resolve(self, api_key: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(api_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        tenant = await self._inner.resolve(api_key)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[api_key] = (now + (self._ttl if tenant else self._negative_ttl), tenant)
        return tenant

    def invalidate(self, api_key: str | None = None) -> None:
        if api_key is None:
            self._cache.clear()
        else:
            self._cache.pop(api_key, None)
