"""The `parlay` command line.

    parlay dev                          the whole stack on this machine
    parlay migrate                      tenancy + every service's migrations
    parlay topics create                all topics (idempotent)
    parlay tenants create NAME [--id]   a tenant
    parlay tenants list
    parlay tenants keys create TENANT   an API key (printed once)
    parlay tenants keys list [TENANT]
    parlay tenants keys revoke KEY_ID

Sub-apps are composed with `app.add_typer`. Packages add their own commands without editing
this file through the entry-point group `parlay.cli`: the name is the command, the value a
`typer.Typer` (added as a sub-app) or a plain function (added as one command), e.g. in a
pyproject::

    [project.entry-points."parlay.cli"]
    events = "parlay_kit.events_cli:app"
    replay = "parlay_kit.replay:replay_command"
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from parlay_kit import tenancy
from parlay_kit.errors import ParlayError

T = TypeVar("T")

CLI_ENTRY_POINT_GROUP = "parlay.cli"
DATABASE_URL_ENVVARS = ["PARLAY_DATABASE_URL", "DATABASE_URL"]

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="parlay",
    help="Parlay: event-sourced backend for conversational commerce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
tenants_app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(topics_app, name="topics")


# --------------------------------------------------------------------------------------------
# shared options and helpers
# --------------------------------------------------------------------------------------------

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=DATABASE_URL_ENVVARS,
        help="Postgres URL [env: PARLAY_DATABASE_URL, DATABASE_URL; default: the running"
        " `parlay dev` stack's database]",
        show_default=False,
    ),
]
Bootstrap = Annotated[
    str,
    typer.Option("--bootstrap", envvar="PARLAY_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."),
]


def resolve_database_url(database_url: str | None) -> str:
    """--database-url / env, else the database of a running `parlay dev` (.parlay/dev.json)."""
    if database_url:
        return database_url
    from parlay_kit.dev import default_state_dir

    state = default_state_dir() / "dev.json"
    if state.exists():
        import json

        url = json.loads(state.read_text()).get("database_url")
        if url:
            return str(url)
    err_console.print(
        "[red]No database: pass --database-url, set PARLAY_DATABASE_URL / DATABASE_URL,"
        " or start `parlay dev`.[/]"
    )
    raise typer.Exit(2)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; domain errors become a red message and exit code 1."""
    try:
        return asyncio.run(fn())  # type: ignore[arg-type]
    except ParlayError as exc:
        err_console.print(f"[red]{type(exc).__name__}: {exc}[/]")
        raise typer.Exit(1) from None
    except (OSError, asyncpg.PostgresError) as exc:
        err_console.print(f"[red]{type(exc).__name__}: {exc}[/]")
        raise typer.Exit(1) from None


async def _with_conn(database_url: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await tenancy.migrate(conn)
        return await fn(conn)
    finally:
        await conn.close()


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


# --------------------------------------------------------------------------------------------
# parlay dev
# --------------------------------------------------------------------------------------------


@app.command()
def dev(
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Data and logs directory [env: PARLAY_STATE_DIR; default: ./.parlay]"),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar=DATABASE_URL_ENVVARS,
            help="Use this Postgres instead of the embedded one [env: PARLAY_DATABASE_URL, DATABASE_URL]",
            show_default=False,
        ),
    ] = None,
    port_offset: Annotated[
        int, typer.Option(help="Add N to every port (run a second stack beside the first).")
    ] = 0,
    only: Annotated[
        str | None, typer.Option(help="Start only these services (comma-separated).")
    ] = None,
    skip: Annotated[
        str | None, typer.Option(help="Do not start these services (comma-separated).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Also print service output, prefixed by service.")
    ] = False,
    start_timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 120.0,
    stop_timeout: Annotated[
        float, typer.Option(help="Seconds between SIGTERM and SIGKILL when stopping services.")
    ] = 10.0,
    service_module: Annotated[
        str, typer.Option(hidden=True, help="Module run per service; {svc} is replaced.")
    ] = "parlay_{svc}",
) -> None:
    """Run the whole stack locally: broker, Postgres, topics, dev tenant, all five services."""
    from parlay_kit.dev import SERVICE_PORTS, DevOptions, default_state_dir, run_dev

    services = list(SERVICE_PORTS)
    if only:
        services = [s.strip() for s in only.split(",") if s.strip()]
    if skip:
        skipped = {s.strip() for s in skip.split(",")}
        services = [s for s in services if s not in skipped]
    unknown = [s for s in services if s not in SERVICE_PORTS]
    if unknown:
        err_console.print(
            f"[red]unknown service(s): {', '.join(unknown)}[/] (known: {', '.join(SERVICE_PORTS)})"
        )
        raise typer.Exit(2)
    options = DevOptions(
        state_dir=(state_dir.expanduser().resolve() if state_dir else default_state_dir()),
        port_offset=port_offset,
        database_url=database_url,
        services=tuple(services),
        service_module=service_module,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
        follow_logs=follow,
    )
    raise typer.Exit(run_dev(options, console))


# --------------------------------------------------------------------------------------------
# parlay migrate
# --------------------------------------------------------------------------------------------


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Bring the tenancy schema and every service's schema up to date."""
    from parlay_kit.dev import migrate_all

    url = resolve_database_url(database_url)
    results = run_async(lambda: migrate_all(url))
    for name, outcome in results:
        if outcome == "ok":
            console.print(f"[green]✓[/] {name}")
        else:
            console.print(f"[yellow]–[/] {name}  [dim](no parlay_{name}.migrations yet)[/]")


# --------------------------------------------------------------------------------------------
# parlay topics
# --------------------------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    bootstrap: Bootstrap = "127.0.0.1:9092",
    partitions: Annotated[int | None, typer.Option(help="Partitions per new topic.")] = None,
) -> None:
    """Create every Parlay topic that does not exist yet."""
    from parlay_kit.broker import BrokerError, ensure_topics
    from parlay_kit.topics import ALL_TOPICS, DEFAULT_PARTITIONS

    try:
        created = asyncio.run(
            ensure_topics(bootstrap, ALL_TOPICS, partitions or DEFAULT_PARTITIONS)
        )
    except BrokerError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    for topic in ALL_TOPICS:
        console.print(f"{'[green]created[/]' if topic in created else '[dim]exists [/]'} {topic}")


@topics_app.command("list")
def topics_list(bootstrap: Bootstrap = "127.0.0.1:9092") -> None:
    """List the broker's topics."""
    from parlay_kit.broker import BrokerError, list_topics

    try:
        for topic in asyncio.run(list_topics(bootstrap)):
            console.print(topic)
    except BrokerError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


# --------------------------------------------------------------------------------------------
# parlay tenants
# --------------------------------------------------------------------------------------------


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Display name.")],
    tenant_id: Annotated[
        str | None, typer.Option("--id", help="Tenant id [default: a slug of the name]")
    ] = None,
    with_key: Annotated[bool, typer.Option("--with-key", help="Also create an API key.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a tenant."""
    url = resolve_database_url(database_url)

    async def work(conn: asyncpg.Connection) -> tuple[tenancy.Tenant, tenancy.NewApiKey | None]:
        async with conn.transaction():
            tenant = await tenancy.create_tenant(conn, name, tenant_id)
            key = await tenancy.create_api_key(conn, tenant.tenant_id) if with_key else None
        return tenant, key

    tenant, key = run_async(lambda: _with_conn(url, work))
    console.print(f"created tenant [bold]{tenant.tenant_id}[/] ({tenant.name})")
    if key is not None:
        _print_new_key(key)


@tenants_app.command("list")
def tenants_list(database_url: DatabaseUrl = None) -> None:
    """List tenants with their active key count."""
    url = resolve_database_url(database_url)

    async def work(conn: asyncpg.Connection) -> tuple[list[tenancy.Tenant], list[tenancy.ApiKey]]:
        return await tenancy.list_tenants(conn), await tenancy.list_api_keys(
            conn, include_revoked=False
        )

    tenants, keys = run_async(lambda: _with_conn(url, work))
    table = Table("tenant_id", "name", "created_at", "active keys")
    for t in tenants:
        count = sum(1 for k in keys if k.tenant_id == t.tenant_id)
        table.add_row(t.tenant_id, t.name, _ts(t.created_at), str(count))
    console.print(table)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key; the key is printed once and never stored in plain text."""
    url = resolve_database_url(database_url)
    key = run_async(lambda: _with_conn(url, lambda conn: tenancy.create_api_key(conn, tenant)))
    _print_new_key(key)


@keys_app.command("create-service")
def keys_create_service(database_url: DatabaseUrl = None) -> None:
    """Create a service key (PARLAY_SERVICE_API_KEY): Parlay's services use it to call each other
    for the tenant named in x-parlay-tenant. Give it to no one else."""
    url = resolve_database_url(database_url)
    key = run_async(lambda: _with_conn(url, tenancy.create_service_key))
    _print_new_key(key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Argument(help="Tenant id [default: all]")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List API keys (ids and state; the keys themselves are not stored)."""
    url = resolve_database_url(database_url)
    keys = run_async(lambda: _with_conn(url, lambda conn: tenancy.list_api_keys(conn, tenant)))
    table = Table("key_id", "tenant_id", "created_at", "revoked_at", "dev")
    for k in keys:
        table.add_row(
            k.key_id, k.tenant_id, _ts(k.created_at), _ts(k.revoked_at), "yes" if k.dev else ""
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (the <id> in pk_<id>_<secret>).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke an API key (services stop accepting it within a few seconds)."""
    url = resolve_database_url(database_url)
    key = run_async(lambda: _with_conn(url, lambda conn: tenancy.revoke_api_key(conn, key_id)))
    console.print(f"revoked key {key.key_id} of tenant {key.tenant_id} at {_ts(key.revoked_at)}")


def _print_new_key(key: tenancy.NewApiKey) -> None:
    console.print(f"API key [bold]{key.key_id}[/] for tenant {key.tenant_id}:")
    # plain print: no wrapping or markup, so it can be copied or piped
    print(key.key)
    err_console.print("[yellow]Store it now: it is not shown again.[/]")


# --------------------------------------------------------------------------------------------
# plug-ins and entry point
# --------------------------------------------------------------------------------------------

_plugins_loaded = False


def load_plugins(target: typer.Typer = app) -> list[str]:
    """Add the commands registered under the `parlay.cli` entry-point group."""
    global _plugins_loaded
    if _plugins_loaded and target is app:
        return []
    names = []
    for ep in importlib.metadata.entry_points(group=CLI_ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the CLI
            err_console.print(
                f"[yellow]parlay: could not load command {ep.name!r} ({ep.value}): {exc}[/]"
            )
            continue
        if isinstance(obj, typer.Typer):
            target.add_typer(obj, name=ep.name)
        elif callable(obj):
            target.command(name=ep.name)(obj)
        else:
            continue
        names.append(ep.name)
    if target is app:
        _plugins_loaded = True
    return names


def main() -> None:
    load_plugins()
    if os.environ.get("PARLAY_CLI_DEBUG"):
        app.pretty_exceptions_enable = True
    app()


if __name__ == "__main__":
    main()
