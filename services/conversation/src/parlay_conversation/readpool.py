"""A lean connection pool for the request tier's queries.

asyncpg's Pool protects every release with a shielded task, a timeout scope and a reset — right
for connections that ran transactions, LISTEN or SET, and ~70 us of CPU per query on the machines
this runs on, a fifth of a GetConversation. The queries of this service (List/Get/Search and the
configuration listings) run outside transactions and leave no session state, so this pool is a
queue of plain connections: acquire takes one (opening a new one while below the size), release
puts it back. A connection whose query was interrupted (cancellation, I/O error) is terminated,
never reused; the next acquire opens a fresh one.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import asyncpg

from parlay_kit.db import check_identifier


class ReadPool:
    def __init__(
        self, dsn: str, schema: str, *, size: int = 10, password: str | None = None
    ) -> None:
        self.dsn = dsn
        self.password = password
        self.schema = check_identifier(schema)
        self.size = size
        self._idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        self._open = 0
        self._all: set[asyncpg.Connection] = set()
        self._closed = False

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.dsn,
            password=self.password,
            server_settings={
                "search_path": f"{self.schema},public",
                "application_name": f"{self.schema}-read",
            },
        )

    async def open(self) -> ReadPool:
        conn = await self._connect()
        self._open += 1
        self._all.add(conn)
        self._idle.put_nowait(conn)
        return self

    def acquire(self) -> _Lease:
        return _Lease(self)

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the read pool is closed")
        while True:
            if self._idle.empty() and self._open < self.size:
                self._open += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._open -= 1
                    raise
                self._all.add(conn)
                return conn
            conn = await self._idle.get()
            if not conn.is_closed():
                return conn
            self._forget(conn)

    def _give_back(self, conn: asyncpg.Connection, broken: bool) -> None:
        if broken or conn.is_closed() or self._closed:
            conn.terminate()
            self._forget(conn)
        else:
            self._idle.put_nowait(conn)

    def _forget(self, conn: asyncpg.Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._all):
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()
            self._forget(conn)


class _Lease:
    __slots__ = ("pool", "conn")

    def __init__(self, pool: ReadPool) -> None:
        self.pool = pool
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn = await self.pool._take()
        return self.conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        # A query error (e.g. a bad page token's SQL) leaves the connection usable; anything
        # that may have interrupted the protocol mid-query does not.
        broken = exc is not None and not isinstance(exc, asyncpg.PostgresError)
        self.pool._give_back(conn, broken)
