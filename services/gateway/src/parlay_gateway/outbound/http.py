"""The one HTTP client every sender's requests go through (httpx), and the classification of
transport failures: did the request possibly reach the provider or certainly not?"""

from __future__ import annotations

import httpx

from parlay_gateway.outbound.senders.base import ProviderRequest, ProviderResponse


class TransportFailure(Exception):
    """No HTTP response. `maybe_sent` is False only when the request certainly never left (the
    connection was never established), so a retry cannot duplicate it."""

    def __init__(self, code: str, message: str, *, maybe_sent: bool) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.maybe_sent = maybe_sent

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def make_client(*, connect_timeout: float, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        follow_redirects=False,
        headers={"User-Agent": "parlay-gateway/0.1"},
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


async def execute(client: httpx.AsyncClient, request: ProviderRequest) -> ProviderResponse:
    """Send; raises TransportFailure when there is no response."""
    kwargs: dict = {"headers": dict(request.headers)}
    if request.json is not None:
        kwargs["json"] = request.json
    if request.form is not None:
        # httpx takes repeated form keys as a list value
        form: dict[str, list[str]] = {}
        for key, value in request.form:
            form.setdefault(key, []).append(value)
        kwargs["data"] = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    if request.params is not None:
        kwargs["params"] = dict(request.params)
    if request.auth is not None:
        kwargs["auth"] = request.auth
    try:
        response = await client.request(request.method, request.url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return _raise(TransportFailure("connect_error", _describe(exc), maybe_sent=False))
    except httpx.PoolTimeout as exc:
        return _raise(TransportFailure("pool_timeout", _describe(exc), maybe_sent=False))
    except httpx.TimeoutException as exc:
        return _raise(TransportFailure("timeout", _describe(exc), maybe_sent=True))
    except httpx.HTTPError as exc:
        return _raise(TransportFailure("transport_error", _describe(exc), maybe_sent=True))
    return ProviderResponse(response.status_code, dict(response.headers), response.content)


def _raise(failure: TransportFailure) -> ProviderResponse:
    raise failure


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
