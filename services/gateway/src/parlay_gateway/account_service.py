"""Channel accounts, application layer: create / get / list for a tenant, and the accounts of
the config file. The row and its ChannelAccountCreated event commit in one transaction."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from typing import Literal

import asyncpg

from parlay_gateway.account_store import AccountDirectory, AccountRepository
from parlay_gateway.accounts import (
    ChannelAccount,
    account_created_event,
    validate_channel,
    validate_new_account,
)
from parlay_gateway.config_file import AccountSpec, ConfigError
from parlay_kit.envelope import utcnow
from parlay_kit.errors import AlreadyExists, InvalidArgument, NotFound
from parlay_kit.eventstore import EventStore

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument("page_token", "is not a token this service issued") from exc


class ChannelAccounts:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        repository: AccountRepository,
        directory: AccountDirectory,
    ) -> None:
        self._pool = pool
        self._store = store
        self._repository = repository
        self._directory = directory

    async def create(
        self,
        tenant_id: str,
        channel_account_id: str,
        channel: str,
        credentials: Mapping[str, str],
        settings: Mapping[str, str],
        *,
        traceparent: str = "",
    ) -> ChannelAccount:
        validate_new_account(channel_account_id, channel, credentials, settings)
        account = ChannelAccount(
            channel_account_id=channel_account_id,
            tenant_id=tenant_id,
            channel=channel,
            credentials=dict(credentials),
            settings=dict(settings),
            created_at=utcnow(),
        )
        async with self._pool.acquire() as conn, conn.transaction():
            if not await self._repository.insert(conn, account):
                raise AlreadyExists(f"channel account {channel_account_id!r} already exists")
            await self._store.append(
                conn, [account_created_event(account, traceparent=traceparent)]
            )
        self._directory.put(account)
        log.info(
            "channel account created channel_account_id=%s channel=%s tenant_id=%s",
            channel_account_id,
            channel,
            tenant_id,
        )
        return account

    async def get(self, tenant_id: str, channel_account_id: str) -> ChannelAccount:
        if not channel_account_id:
            raise InvalidArgument("channel_account_id", "is required")
        account = await self._repository.get(self._pool, channel_account_id)
        # Another tenant's account is indistinguishable from a missing one.
        if account is None or account.tenant_id != tenant_id:
            raise NotFound(f"channel account {channel_account_id!r} not found")
        return account

    async def list(
        self, tenant_id: str, *, channel: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[ChannelAccount], str]:
        """One page, ordered by id; the second item is the next page's token ("" at the end)."""
        if channel:
            validate_channel(channel)
        if page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_page_token(page_token)
        rows = await self._repository.list_for_tenant(
            self._pool, tenant_id, channel=channel, after=after, limit=size + 1
        )
        page = rows[:size]
        next_token = encode_page_token(page[-1].channel_account_id) if len(rows) > size else ""
        return page, next_token

    async def apply_config(self, spec: AccountSpec) -> Literal["created", "updated", "unchanged"]:
        """Make the account of a config-file entry exist with the file's credentials and
        settings. Refuses to touch an account of another tenant or channel."""
        try:
            await self.create(
                spec.tenant_id,
                spec.channel_account_id,
                spec.channel,
                spec.credentials,
                spec.settings,
            )
            return "created"
        except AlreadyExists:
            pass
        existing = await self._repository.get(self._pool, spec.channel_account_id)
        assert existing is not None
        if existing.tenant_id != spec.tenant_id or existing.channel != spec.channel:
            raise ConfigError(
                f"channel account {spec.channel_account_id!r} exists for tenant "
                f"{existing.tenant_id!r} channel {existing.channel!r}; the file says tenant "
                f"{spec.tenant_id!r} channel {spec.channel!r}"
            )
        if dict(existing.credentials) == dict(spec.credentials) and dict(existing.settings) == dict(
            spec.settings
        ):
            return "unchanged"
        # Credential rotation from the file. No event: secrets are not facts on the log, and
        # there is no ChannelAccountUpdated message yet (settings changes are not on the log).
        await self._repository.update_config(
            self._pool, spec.channel_account_id, spec.credentials, spec.settings
        )
        self._directory.invalidate(spec.channel_account_id)
        return "updated"
