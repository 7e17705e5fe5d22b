"""Running the stand-ins: in the current event loop (tests), or as a process (`parlay dev`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from parlay_standins.app import create_app
from parlay_standins.state import ALL_FAMILIES, StandinState


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to whoever embeds us


class StandinServer:
    """All provider families on one port. `await start()` serves in the running loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.state = StandinState()
        self.app = create_app(self.state)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, family: str) -> str:
        if family not in ALL_FAMILIES:
            raise ValueError(f"unknown family {family!r}")
        return f"{self.url}/{family}"

    async def start(self) -> StandinServer:
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        self._sock.close()

    async def __aenter__(self) -> StandinServer:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def env_for(url: str) -> dict[str, str]:
    """The gateway settings that point every channel and payment provider at the stand-ins
    served at `url`."""
    return {
        "PARLAY_WHATSAPP_API_BASE_URL": f"{url}/meta",
        "PARLAY_MESSENGER_API_BASE_URL": f"{url}/meta",
        "PARLAY_INSTAGRAM_API_BASE_URL": f"{url}/meta",
        "PARLAY_TELEGRAM_API_BASE_URL": f"{url}/telegram",
        "PARLAY_TWILIO_API_BASE_URL": f"{url}/twilio",
        "PARLAY_WECHAT_API_BASE_URL": f"{url}/wechat",
        "PARLAY_LINE_API_BASE_URL": f"{url}/line",
        "PARLAY_LINE_API_DATA_BASE_URL": f"{url}/line",
        "PARLAY_VIBER_API_BASE_URL": f"{url}/viber",
        "PARLAY_STRIPE_API_BASE_URL": f"{url}/stripe",
    }
