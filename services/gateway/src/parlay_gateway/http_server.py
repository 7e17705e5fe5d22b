"""uvicorn as a runtime task: bound up front (a taken port fails at start, not later), stopped by
the runtime's stop event (SIGTERM), in-flight requests finishing first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signals belong to the ServiceRuntime; it sets the stop event and we shut down from it.
        yield


class HttpServer:
    def __init__(
        self, app: Any, host: str, port: int, *, graceful_shutdown_seconds: float = 10.0
    ) -> None:
        self.app = app
        self.host = host
        self.graceful_shutdown_seconds = graceful_shutdown_seconds
        self._sock: socket.socket | None = None
        self._requested_port = port
        self._server: _Server | None = None

    def bind(self) -> int:
        """Bind the listening socket (port 0 picks a free one); returns the bound port."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self._requested_port))
            except OSError:
                sock.close()
                raise
            sock.set_inheritable(True)
            self._sock = sock
        return self.port

    @property
    def port(self) -> int:
        if self._sock is None:
            return self._requested_port
        return int(self._sock.getsockname()[1])

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    async def run(self, stop: asyncio.Event) -> None:
        self.bind()
        assert self._sock is not None
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=int(self.graceful_shutdown_seconds) or None,
        )
        server = _Server(config)
        self._server = server
        serving = asyncio.create_task(server.serve(sockets=[self._sock]), name="uvicorn")
        stopping = asyncio.create_task(stop.wait())
        log.info("gateway HTTP listening on %s:%d", self.host, self.port)
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            stopping.cancel()
            await serving  # re-raises if the server failed
            self._sock.close()
            self._sock = None
            self._server = None
