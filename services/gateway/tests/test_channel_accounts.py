"""Channel accounts: validation, the config file, the Postgres-backed service, and GatewayService
over a real gRPC server (kit interceptor: API key -> tenant, errors -> status codes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest
from gateway_testkit import APP_SECRET, WHATSAPP_CREDENTIALS, unique

from parlay.gateway.v1 import gateway_events_pb2, gateway_service_pb2, gateway_service_pb2_grpc
from parlay_gateway.account_service import ChannelAccounts
from parlay_gateway.account_store import MIGRATIONS, AccountDirectory, AccountRepository
from parlay_gateway.accounts import validate_new_account
from parlay_gateway.config_file import ConfigError, parse_account_specs
from parlay_gateway.grpc_api import SERVICE_NAME, GatewayServicer, add_to_server
from parlay_gateway.main import load_accounts_file
from parlay_kit import envelope
from parlay_kit.auth import tenant_scope
from parlay_kit.db import create_pool, migrate
from parlay_kit.errors import AlreadyExists, InvalidArgument, NotFound
from parlay_kit.eventstore import EVENT_STORE_MIGRATIONS, EventStore

# ---------------------------------------------------------------- pure validation


@pytest.mark.parametrize(
    ("account_id", "channel", "credentials", "field"),
    [
        ("", "whatsapp", WHATSAPP_CREDENTIALS, "channel_account_id"),
        ("has space", "whatsapp", WHATSAPP_CREDENTIALS, "channel_account_id"),
        ("a:b", "whatsapp", WHATSAPP_CREDENTIALS, "channel_account_id"),
        ("x" * 65, "whatsapp", WHATSAPP_CREDENTIALS, "channel_account_id"),
        ("ok", "", WHATSAPP_CREDENTIALS, "channel"),
        ("ok", "carrier-pigeon", WHATSAPP_CREDENTIALS, "channel"),
        ("ok", "WhatsApp", WHATSAPP_CREDENTIALS, "channel"),
        ("ok", "whatsapp", {"verify_token": "v", "access_token": "a"}, "credentials.app_secret"),
        ("ok", "whatsapp", {"app_secret": "s", "access_token": "a"}, "credentials.verify_token"),
        (
            "ok",
            "whatsapp",
            {**WHATSAPP_CREDENTIALS, "access_token": ""},
            "credentials.access_token",
        ),
        ("ok", "telegram", {"bot_token": "b"}, "credentials.secret_token"),
    ],
)
def test_validation_names_the_field(
    account_id: str, channel: str, credentials: dict, field: str
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_new_account(account_id, channel, credentials, {})
    assert exc.value.field == field


def test_valid_accounts() -> None:
    validate_new_account("acme-wa_1", "whatsapp", WHATSAPP_CREDENTIALS, {"phone_number_id": "1"})
    validate_new_account("web", "webchat", {}, {})


# ---------------------------------------------------------------- config file (pure)


def test_config_file_json_list_with_env_expansion() -> None:
    text = json.dumps(
        [
            {
                "tenant_id": "acme",
                "channel_account_id": "acme-wa",
                "channel": "whatsapp",
                "credentials": {
                    "app_secret": "${WA_SECRET}",
                    "verify_token": "vt",
                    "access_token": "at-${WA_SUFFIX}",
                },
                "settings": {"phone_number_id": 12345},
            }
        ]
    )
    [spec] = parse_account_specs(text, env={"WA_SECRET": "s3cret", "WA_SUFFIX": "x"})
    assert spec.credentials == {
        "app_secret": "s3cret",
        "verify_token": "vt",
        "access_token": "at-x",
    }
    assert spec.settings == {"phone_number_id": "12345"}
    assert "s3cret" not in repr(spec)


def test_config_file_yaml_with_key() -> None:
    text = """
channel_accounts:
  - tenant_id: acme
    channel_account_id: acme-wa
    channel: whatsapp
    credentials: {app_secret: a, verify_token: b, access_token: c}
"""
    [spec] = parse_account_specs(text, yaml=True, env={})
    assert (spec.tenant_id, spec.channel_account_id, spec.channel) == (
        "acme",
        "acme-wa",
        "whatsapp",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"channel_accounts": 3}', "expected a list"),
        ('[{"channel_account_id": "a", "channel": "webchat"}]', "tenant_id: is required"),
        (
            '[{"tenant_id": "t", "channel_account_id": "a", "channel": "nope"}]',
            "channel: unknown channel",
        ),
        (
            '[{"tenant_id": "t", "channel_account_id": "a", "channel": "whatsapp", "credentials": {}}]',
            "credentials.app_secret",
        ),
        (
            '[{"tenant_id": "t", "channel_account_id": "a", "channel": "webchat", "credentials": {"x": "${MISSING_VAR}"}}]',
            "MISSING_VAR is not set",
        ),
        (
            '[{"tenant_id": "t", "channel_account_id": "a", "channel": "webchat"},'
            ' {"tenant_id": "t", "channel_account_id": "a", "channel": "webchat"}]',
            "repeated",
        ),
    ],
)
def test_config_file_errors_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_account_specs(text, env={})
    assert message in str(exc.value)


# ---------------------------------------------------------------- Postgres-backed service


@dataclass
class AccountsEnv:
    service: ChannelAccounts
    pool: asyncpg.Pool
    schema: str


@pytest.fixture
async def accounts_env(gw_database_url: str) -> AsyncIterator[AccountsEnv]:
    schema = f"gwa_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(gw_database_url, schema, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn, schema, [*EVENT_STORE_MIGRATIONS, *MIGRATIONS])
    repository = AccountRepository(schema)
    service = ChannelAccounts(
        pool, EventStore(schema, "gateway"), repository, AccountDirectory(pool, repository)
    )
    try:
        yield AccountsEnv(service, pool, schema)
    finally:
        await pool.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pool.close()


async def test_create_stores_row_and_event_without_secrets(accounts_env: AccountsEnv) -> None:
    account_id = unique("acme-wa")
    created = await accounts_env.service.create(
        "acme", account_id, "whatsapp", WHATSAPP_CREDENTIALS, {"phone_number_id": "42"}
    )
    assert created.credentials == WHATSAPP_CREDENTIALS
    rows = await accounts_env.pool.fetch(
        f"SELECT event_type, aggregate_type, aggregate_id, aggregate_version, topic, envelope, tenant_id"
        f" FROM {accounts_env.schema}.events"
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["event_type"] == "parlay.gateway.v1.ChannelAccountCreated"
    assert (row["aggregate_type"], row["aggregate_id"], row["aggregate_version"]) == (
        "channel_account",
        account_id,
        1,
    )
    assert row["tenant_id"] == "acme"
    assert row["topic"] == "parlay.gateway.webhooks.v1"
    assert APP_SECRET.encode() not in bytes(row["envelope"])
    event = envelope.unpack(envelope.decode(bytes(row["envelope"])))
    assert isinstance(event, gateway_events_pb2.ChannelAccountCreated)
    assert list(event.credential_names) == ["access_token", "app_secret", "verify_token"]
    assert dict(event.settings) == {"phone_number_id": "42"}
    stored = await accounts_env.pool.fetchval(
        f"SELECT credentials FROM {accounts_env.schema}.channel_accounts WHERE channel_account_id = $1",
        account_id,
    )
    assert json.loads(stored) == WHATSAPP_CREDENTIALS


async def test_duplicate_id_is_already_exists_even_for_another_tenant(
    accounts_env: AccountsEnv,
) -> None:
    account_id = unique("dup")
    await accounts_env.service.create("acme", account_id, "whatsapp", WHATSAPP_CREDENTIALS, {})
    with pytest.raises(AlreadyExists):
        await accounts_env.service.create("acme", account_id, "whatsapp", WHATSAPP_CREDENTIALS, {})
    with pytest.raises(AlreadyExists):
        await accounts_env.service.create("globex", account_id, "webchat", {}, {})
    count = await accounts_env.pool.fetchval(f"SELECT count(*) FROM {accounts_env.schema}.events")
    assert count == 1


async def test_get_and_list_are_tenant_scoped_and_paged(accounts_env: AccountsEnv) -> None:
    service = accounts_env.service
    ids = sorted(unique(f"acme{i}") for i in range(5))
    for account_id in ids:
        await service.create("acme", account_id, "whatsapp", WHATSAPP_CREDENTIALS, {})
    other = unique("globex")
    await service.create("globex", other, "webchat", {}, {})

    assert (await service.get("acme", ids[0])).channel_account_id == ids[0]
    with pytest.raises(NotFound):
        await service.get("acme", other)
    with pytest.raises(NotFound):
        await service.get("acme", "does-not-exist")

    page1, token = await service.list("acme", page_size=2)
    page2, token2 = await service.list("acme", page_size=2, page_token=token)
    page3, token3 = await service.list("acme", page_size=2, page_token=token2)
    assert [a.channel_account_id for a in page1 + page2 + page3] == ids
    assert token and token2 and token3 == ""
    assert [a.channel_account_id for a in (await service.list("globex"))[0]] == [other]
    assert (await service.list("acme", channel="webchat"))[0] == []
    with pytest.raises(InvalidArgument) as exc:
        await service.list("acme", channel="fax")
    assert exc.value.field == "channel"
    with pytest.raises(InvalidArgument) as exc:
        await service.list("acme", page_token="!!not-base64!!")
    assert exc.value.field == "page_token"


async def test_config_file_creates_then_updates_then_is_unchanged(
    accounts_env: AccountsEnv, tmp_path, monkeypatch
) -> None:
    account_id = unique("filed")
    path = tmp_path / "accounts.yaml"

    def write(secret: str, tenant: str = "acme") -> None:
        path.write_text(
            f"""
- tenant_id: {tenant}
  channel_account_id: {account_id}
  channel: whatsapp
  credentials: {{app_secret: "${{WA_SECRET}}", verify_token: vt, access_token: at}}
"""
        )
        monkeypatch.setenv("WA_SECRET", secret)

    write("one")
    assert await load_accounts_file(accounts_env.service, str(path)) == {account_id: "created"}
    assert await load_accounts_file(accounts_env.service, str(path)) == {account_id: "unchanged"}
    write("two")
    assert await load_accounts_file(accounts_env.service, str(path)) == {account_id: "updated"}
    account = await accounts_env.service.get("acme", account_id)
    assert account.credential("app_secret") == "two"
    write("two", tenant="globex")
    with pytest.raises(ConfigError):
        await load_accounts_file(accounts_env.service, str(path))
    # One creation event, whatever the number of loads.
    assert (
        await accounts_env.pool.fetchval(f"SELECT count(*) FROM {accounts_env.schema}.events") == 1
    )


async def test_servicer_methods_with_tenant_contextvar(accounts_env: AccountsEnv) -> None:
    servicer = GatewayServicer(accounts_env.service)
    account_id = unique("svc")
    with tenant_scope("acme"):
        reply = await servicer.CreateChannelAccount(
            gateway_service_pb2.CreateChannelAccountRequest(
                channel_account_id=account_id,
                channel="whatsapp",
                credentials=WHATSAPP_CREDENTIALS,
                settings={"phone_number_id": "1"},
            ),
            None,
        )
        assert reply.channel_account.tenant_id == "acme"
        assert APP_SECRET not in str(reply)
        got = await servicer.GetChannelAccount(
            gateway_service_pb2.GetChannelAccountRequest(channel_account_id=account_id), None
        )
        assert got.channel_account == reply.channel_account
    with tenant_scope("globex"), pytest.raises(NotFound):
        await servicer.GetChannelAccount(
            gateway_service_pb2.GetChannelAccountRequest(channel_account_id=account_id), None
        )


# ---------------------------------------------------------------- real gRPC server


class StaticResolver:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    async def resolve(self, api_key: str) -> str | None:
        return self.keys.get(api_key)


async def test_gateway_service_over_grpc(accounts_env: AccountsEnv) -> None:
    from parlay_kit.grpc_server import build_server, create_channel

    server = build_server(
        [(add_to_server, GatewayServicer(accounts_env.service))],
        resolver=StaticResolver({"acme-key": "acme", "globex-key": "globex"}),
        service_names=[SERVICE_NAME],
        port=0,
    )
    await server.start()
    acme = create_channel(server.address, api_key="acme-key")
    globex = create_channel(server.address, api_key="globex-key")
    anonymous = create_channel(server.address)
    try:
        stub = gateway_service_pb2_grpc.GatewayServiceStub(acme)
        account_id = unique("grpc")
        request = gateway_service_pb2.CreateChannelAccountRequest(
            channel_account_id=account_id, channel="whatsapp", credentials=WHATSAPP_CREDENTIALS
        )
        created = (await stub.CreateChannelAccount(request)).channel_account
        assert (created.channel_account_id, created.tenant_id, created.channel) == (
            account_id,
            "acme",
            "whatsapp",
        )
        assert created.webhook_path == f"/webhooks/whatsapp/{account_id}"
        assert list(created.credential_names) == ["access_token", "app_secret", "verify_token"]

        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.CreateChannelAccount(request)
        assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS

        bad = gateway_service_pb2.CreateChannelAccountRequest(
            channel_account_id=unique("bad"), channel="whatsapp", credentials={"app_secret": "s"}
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.CreateChannelAccount(bad)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "credentials.verify_token" in (exc.value.details() or "")

        got = await stub.GetChannelAccount(
            gateway_service_pb2.GetChannelAccountRequest(channel_account_id=account_id)
        )
        assert got.channel_account == created
        listed = await stub.ListChannelAccounts(gateway_service_pb2.ListChannelAccountsRequest())
        assert [a.channel_account_id for a in listed.channel_accounts] == [account_id]

        other = gateway_service_pb2_grpc.GatewayServiceStub(globex)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await other.GetChannelAccount(
                gateway_service_pb2.GetChannelAccountRequest(channel_account_id=account_id)
            )
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert (
            await other.ListChannelAccounts(gateway_service_pb2.ListChannelAccountsRequest())
        ).channel_accounts == []

        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await gateway_service_pb2_grpc.GatewayServiceStub(anonymous).ListChannelAccounts(
                gateway_service_pb2.ListChannelAccountsRequest()
            )
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        for channel in (acme, globex, anonymous):
            await channel.close()
        await server.stop(0)
