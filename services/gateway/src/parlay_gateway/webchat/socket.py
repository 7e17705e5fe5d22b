"""The web-chat socket (HTTP tier): `/webchat/<channel_account_id>/socket` and `/webchat/widget.js`.

One socket = one browser tab of one visitor:

1. accept; the account's `allowed_origins` setting (comma-separated, empty = any) is checked
   against the `Origin` header -> close 4403; unknown account / not a webchat account -> 4404.
2. the first frame must be `hello` within `HELLO_TIMEOUT` (4408): `verify_hello` -> 4400
   malformed, 4401 bad/missing signature; nothing is stored before it passes. A signed visitor
   with an email gets its hello stored (-> IdentityEvidenceObserved(verified_email)).
3. `{"type": "ready", "visitor": <address>, "history": [...]}`: the last 100 messages, both ways.
4. frames: `message` -> WebhookReceived through the group committer, then the history row, then
   `{"type": "ack", "id"}` — only once durable; if it cannot be stored, `{"type": "error",
   "code": "unavailable", "id"}` and the widget re-sends (same id: stored once). `delivered` ->
   stored the same way (no answer). `typing` -> not stored, not relayed (see docs). `ping` ->
   `pong`. A malformed frame -> `{"type": "error", "code": "bad_frame"}`; nothing stored.
5. pushes: the hub LISTENs on `<schema>_webchat`; a notification for (account, visitor) wakes
   that visitor's sockets, which read the new history rows and send them as `message` frames
   (also every `POLL_SECONDS`, in case a notification was missed). `typing` notifications are
   forwarded as `{"type": "typing", "state"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import asyncpg
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import Response

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.channels import webchat as wc
from parlay_gateway.ingest import Appender, build_webhook_event
from parlay_gateway.webchat.store import WebchatHistory, row_frame
from parlay_kit.envelope import utcnow

log = logging.getLogger(__name__)

SOCKET_ROUTE = "/webchat/{channel_account_id}/socket"
WIDGET_ROUTE = "/webchat/widget.js"
HELLO_TIMEOUT = 10.0
POLL_SECONDS = 5.0

AccountLookup = Callable[[str], Awaitable[ChannelAccount | None]]


def widget_source() -> bytes:
    return resources.files("parlay_gateway.webchat").joinpath("widget.js").read_bytes()


def origin_allowed(account: ChannelAccount, origin: str) -> bool:
    allowed = [
        o.strip().rstrip("/") for o in account.settings.get("allowed_origins", "").split(",")
    ]
    allowed = [o for o in allowed if o]
    return not allowed or "*" in allowed or origin.rstrip("/") in allowed


class _Session:
    def __init__(self, ws: WebSocket, account: ChannelAccount, visitor: wc.Visitor) -> None:
        self.ws = ws
        self.account = account
        self.visitor = visitor
        self.key = (account.channel_account_id, visitor.address)
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.last_seq = 0
        self.sent: set[tuple[str, str]] = set()
        self.pending_typing: list[bool] = []

    async def send(self, frame: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(frame, ensure_ascii=False))


class WebchatHub:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        history: WebchatHistory,
        appender: Appender,
        lookup_account: AccountLookup,
        ingest_timeout_seconds: float = 10.0,
    ) -> None:
        self.pool = pool
        self.history = history
        self.appender = appender
        self.lookup_account = lookup_account
        self.ingest_timeout_seconds = ingest_timeout_seconds
        self.adapter = wc.WebchatAdapter()
        self.sessions: dict[tuple[str, str], set[_Session]] = {}
        self.listening = asyncio.Event()

    # ------------------------------------------------------------------ LISTEN

    async def run(self, stop: asyncio.Event) -> None:
        """Runtime task (role http): LISTEN on the notification channel, reconnecting."""
        while not stop.is_set():
            try:
                conn: asyncpg.Connection = await self.pool.acquire()
            except Exception:
                log.exception("webchat: cannot get a connection to LISTEN; retrying")
                await _sleep_or_stop(stop, 2.0)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(functools.partial(_set_on_termination, lost))
                await conn.add_listener(self.history.channel, self._on_notify)
                self.listening.set()
                self._wake_all()  # anything committed while we were not listening
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
            except Exception:
                log.exception("webchat: LISTEN failed; retrying")
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await conn.remove_listener(self.history.channel, self._on_notify)
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)
            if not stop.is_set():
                await _sleep_or_stop(stop, 1.0)
        for sessions in list(self.sessions.values()):
            for session in list(sessions):
                with contextlib.suppress(Exception):
                    await session.ws.close(1012, "server restarting")

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            key = (str(data["a"]), str(data["v"]))
        except (ValueError, KeyError, TypeError):
            return
        for session in self.sessions.get(key, ()):
            if data.get("k") == "typing":
                session.pending_typing.append(bool(data.get("s", True)))
            session.wake.set()

    def _wake_all(self) -> None:
        for sessions in self.sessions.values():
            for session in sessions:
                session.wake.set()

    # ------------------------------------------------------------------ one socket

    async def handle(self, ws: WebSocket, channel_account_id: str) -> None:
        await ws.accept()
        headers = {k.lower(): v for k, v in ws.headers.items()}
        try:
            account = await self.lookup_account(channel_account_id)
        except Exception:
            log.exception("webchat: account lookup failed")
            await ws.close(1013, "temporarily unavailable")
            return
        if account is None or account.channel != wc.CHANNEL:
            await ws.close(wc.CLOSE_UNKNOWN_ACCOUNT, "unknown channel account")
            return
        if not origin_allowed(account, headers.get("origin", "")):
            log.warning(
                "webchat rejected channel_account_id=%s reason=origin origin=%s",
                channel_account_id,
                headers.get("origin", "")[:200],
            )
            await ws.close(wc.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
            return
        try:
            async with asyncio.timeout(HELLO_TIMEOUT):
                raw = await ws.receive_text()
            visitor = wc.verify_hello(raw, account)
        except TimeoutError:
            await ws.close(wc.CLOSE_TIMEOUT, "no hello")
            return
        except wc.FrameRejected as exc:
            log.warning(
                "webchat rejected channel_account_id=%s reason=%s", channel_account_id, exc.reason
            )
            await _send_quietly(ws, {"type": "error", "code": "rejected", "message": exc.reason})
            await ws.close(exc.code, exc.reason[:120])
            return
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
        stored_headers = {k: headers[k] for k in self.adapter.retained_headers if k in headers}
        if (
            visitor.verified
            and visitor.email
            and not await self._store(account, visitor, {"type": "hello"}, stored_headers)
        ):
            await ws.close(1013, "temporarily unavailable")
            return
        session = _Session(ws, account, visitor)
        rows = await self.history.recent(self.pool, channel_account_id, visitor.address)
        for row in rows:
            session.last_seq = max(session.last_seq, row["seq"])
            session.sent.add((row["direction"], row["message_id"]))
        await session.send(
            {
                "type": "ready",
                "visitor": visitor.address,
                "verified": visitor.verified,
                "history": [row_frame(r) for r in rows],
            }
        )
        self.sessions.setdefault(session.key, set()).add(session)
        pump = asyncio.create_task(self._pump(session), name=f"webchat-pump:{session.key}")
        try:
            await self._receive_loop(session, stored_headers)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            sessions = self.sessions.get(session.key)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self.sessions[session.key]

    async def _receive_loop(self, session: _Session, headers: dict[str, str]) -> None:
        while True:
            try:
                raw = await session.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            try:
                frame = wc.parse_frame(raw)
            except wc.FrameRejected as exc:
                await session.send({"type": "error", "code": "bad_frame", "message": exc.reason})
                continue
            kind = frame["type"]
            if kind == "ping":
                await session.send({"type": "pong"})
            elif kind == "typing":
                pass  # ephemeral; not relayed to the business side yet (docs/channels.md)
            elif kind in ("message", "delivered"):
                ok = await self._store(session.account, session.visitor, frame, headers)
                if kind == "message":
                    if ok:
                        await self._eager_history(session, frame)
                        await session.send({"type": "ack", "id": frame["id"]})
                    else:
                        await session.send(
                            {"type": "error", "code": "unavailable", "id": frame["id"]}
                        )

    async def _store(
        self,
        account: ChannelAccount,
        visitor: wc.Visitor,
        frame: dict[str, Any],
        headers: dict[str, str],
    ) -> bool:
        """Append the frame as WebhookReceived; True once durable (duplicates too)."""
        request = wc.frame_request(
            visitor, frame, channel_account_id=account.channel_account_id, headers=headers
        )
        event = build_webhook_event(self.adapter, request, account, received_at=utcnow())
        try:
            async with asyncio.timeout(self.ingest_timeout_seconds):
                await self.appender.append([event])
        except Exception:
            log.exception(
                "webchat frame not stored channel_account_id=%s", account.channel_account_id
            )
            return False
        return True

    async def _eager_history(self, session: _Session, frame: dict[str, Any]) -> None:
        # Best effort: the normalizer writes the same row from the stored frame anyway.
        try:
            await self.history.record(
                self.pool,
                channel_account_id=session.account.channel_account_id,
                visitor=session.visitor.address,
                direction="in",
                message_id=frame["id"],
                body={"text": frame["text"]},
            )
        except Exception:
            log.warning("webchat: history row not written eagerly", exc_info=True)

    async def _pump(self, session: _Session) -> None:
        account_id, visitor = session.key
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await session.wake.wait()
            session.wake.clear()
            while session.pending_typing:
                await session.send({"type": "typing", "state": session.pending_typing.pop(0)})
            try:
                rows = await self.history.since(self.pool, account_id, visitor, session.last_seq)
            except Exception:
                log.warning("webchat: history read failed", exc_info=True)
                continue
            for row in rows:
                session.last_seq = max(session.last_seq, row["seq"])
                key = (row["direction"], row["message_id"])
                if key in session.sent:
                    continue
                session.sent.add(key)
                await session.send(row_frame(row))


def _set_on_termination(event: asyncio.Event, _conn: Any) -> None:
    event.set()


async def _send_quietly(ws: WebSocket, frame: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps(frame))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


def install(app: FastAPI, hub: WebchatHub) -> None:
    """Add the socket and the widget to the gateway's HTTP app."""
    source = widget_source()

    async def socket(websocket: WebSocket, channel_account_id: str) -> None:
        await hub.handle(websocket, channel_account_id)

    async def widget() -> Response:
        return Response(
            source,
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    app.add_api_websocket_route(SOCKET_ROUTE, socket)
    app.add_api_route(WIDGET_ROUTE, widget, methods=["GET"])
