"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for load generation.

Generic clients (httpx, aiohttp) spend more CPU per request than a small server does, so on a
2-core machine they would measure themselves. This one writes pre-built request bytes and
parses just enough of the response (status line, Content-Length or chunked body,
Connection: close) to keep the connection usable.
"""

from __future__ import annotations

import asyncio
import contextlib


class HttpError(Exception):
    """The connection failed or the response could not be read."""


class _ClosedBeforeAnswer(Exception):
    """The connection ended before any byte of the answer (see `Connection.request`)."""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._reader = self._writer = None

    async def request(self, data: bytes) -> int:
        """Send one complete request; return the response status. Reconnects if needed; on a
        broken connection raises HttpError (the request may or may not have been processed).

        A reused keep-alive connection the server closed while it sat idle (uvicorn closes
        after 5 s) fails before a byte of the answer arrives: that request is sent once more
        on a new connection, as HTTP clients do (RFC 9112 §9.3.1; webhooks are idempotent)."""
        attempts = 2 if self._writer is not None and self.requests > 0 else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._request_once(data)
            except _ClosedBeforeAnswer as exc:
                if attempt == attempts:
                    raise HttpError(repr(exc.__cause__)) from exc
        raise AssertionError("unreachable")

    async def _request_once(self, data: bytes) -> int:
        if self._writer is None:
            await self.connect()
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        try:
            writer.write(data)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                self.close()
                raise _ClosedBeforeAnswer from exc
            status = int(head[9:12])
            lower = head.lower()
            i = lower.find(b"\r\ncontent-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i + 2)
                length = int(head[i + 17 : j])
                if length:
                    await reader.readexactly(length)
            elif b"\r\ntransfer-encoding: chunked" in lower:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            if b"\r\nconnection: close" in lower:
                self.close()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            self.close()
            raise HttpError(repr(exc)) from exc
        self.requests += 1
        return status


async def get_status(host: str, port: int, path: str, timeout: float = 2.0) -> int:
    """GET path on a fresh connection; 0 if unreachable."""
    conn = Connection(host, port)
    try:
        return await asyncio.wait_for(
            conn.request(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            ),
            timeout,
        )
    except (OSError, HttpError, TimeoutError):
        return 0
    finally:
        conn.close()
