"""`parlay orders ...`: the orders service's commands, added to the `parlay` CLI through the
`parlay.cli` entry point (services/orders/pyproject.toml).

    parlay orders import-products FILE.csv [--target 127.0.0.1:50054] [--api-key KEY]

The CSV has a header; columns sku,name,price,currency[,available,description,image_url], where
price is in major units ("249.50", parsed exactly — no floats) or, instead, price_minor in minor
units (24950). Each row becomes one UpsertProduct call over gRPC, so the service validates it
like any other caller. Bad rows are reported with their line number and skipped; the exit code
is 1 when any row failed.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay.orders.v1 import orders_service_pb2_grpc as pb_grpc
from parlay_kit.grpc_server import create_channel
from parlay_kit.money import is_currency, to_minor

app = typer.Typer(help="Orders: the catalog and orders.", no_args_is_help=True)


@app.callback()
def _orders() -> None:
    """Orders: the catalog and orders (a group, so commands keep their names)."""


console = Console()
err_console = Console(stderr=True)

DEFAULT_TARGET = "127.0.0.1:50054"
DEV_API_KEY = "dev-key"
_TRUE = {"", "1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
#: Errors that no other row can escape either: stop instead of failing every row.
_FATAL = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNIMPLEMENTED,
}


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    product: pb.Product | None
    error: str = ""


def parse_products(text: str) -> Iterator[Row]:
    """Rows of the CSV as products, or the reason a row is bad (line numbers are the file's)."""
    reader = csv.DictReader(io.StringIO(text))
    header = {h.strip().lower() for h in reader.fieldnames or ()}
    missing = [c for c in ("sku", "name", "currency") if c not in header]
    if "price" not in header and "price_minor" not in header:
        missing.append("price (or price_minor)")
    if missing:
        raise ValueError(f"the header lacks {', '.join(missing)}")
    for raw in reader:
        line = reader.line_num
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        try:
            yield Row(line, _product(row))
        except ValueError as exc:
            yield Row(line, None, str(exc))


def _product(row: dict[str, str]) -> pb.Product:
    currency = row.get("currency", "").upper()
    if not is_currency(currency):
        raise ValueError(f"currency {row.get('currency', '')!r} is not an ISO 4217 code")
    if row.get("price_minor"):
        try:
            price_minor = int(row["price_minor"])
        except ValueError:
            raise ValueError(f"price_minor {row['price_minor']!r} is not an integer") from None
    elif row.get("price"):
        try:
            price_minor = to_minor(row["price"], currency)
        except ValueError as exc:
            raise ValueError(f"price: {exc}") from None
    else:
        raise ValueError("no price")
    available = row.get("available", "").lower()
    if available not in _TRUE | _FALSE:
        raise ValueError(f"available {row['available']!r} is not true/false")
    return pb.Product(
        sku=row.get("sku", ""),
        name=row.get("name", ""),
        price_minor=price_minor,
        currency=currency,
        available=available in _TRUE,
        description=row.get("description", ""),
        image_url=row.get("image_url", ""),
    )


async def import_products(
    rows: list[Row], target: str, api_key: str, progress: Progress | None = None
) -> tuple[int, list[tuple[int, str]]]:
    """UpsertProduct per good row; (imported, [(line, error)])."""
    failures = [(r.line, r.error) for r in rows if r.product is None]
    imported = 0
    task = progress.add_task("importing", total=len(rows)) if progress else None
    if progress is not None and task is not None:
        progress.advance(task, len(failures))
    async with create_channel(target, api_key=api_key, telemetry_enabled=False) as channel:
        stub = pb_grpc.OrdersServiceStub(channel)
        for r in rows:
            if r.product is None:
                continue
            try:
                await stub.UpsertProduct(pb.UpsertProductRequest(product=r.product), timeout=10)
                imported += 1
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _FATAL:
                    raise
                failures.append((r.line, f"{exc.code().name}: {exc.details()}"))
            if progress is not None and task is not None:
                progress.advance(task)
    return imported, sorted(failures)


@app.command("import-products")
def import_products_command(
    file: Annotated[Path, typer.Argument(help="CSV with a header row.", exists=True)],
    target: Annotated[str, typer.Option(help="The orders service's gRPC address.")] = (
        DEFAULT_TARGET
    ),
    api_key: Annotated[
        str, typer.Option(envvar="PARLAY_API_KEY", help="API key of the tenant.")
    ] = DEV_API_KEY,
) -> None:
    """Import (create or update) catalog products from a CSV file."""
    try:
        rows = list(parse_products(file.read_text(encoding="utf-8-sig")))
    except (ValueError, csv.Error, UnicodeDecodeError) as exc:
        err_console.print(f"[red]{file}: {exc}[/]")
        raise typer.Exit(2) from None
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        try:
            imported, failures = asyncio.run(import_products(rows, target, api_key, progress))
        except grpc.aio.AioRpcError as exc:
            err_console.print(f"[red]{target}: {exc.code().name}: {exc.details()}[/]")
            raise typer.Exit(1) from None
    for line, error in failures:
        err_console.print(f"[red]line {line}:[/] {error}")
    console.print(f"imported {imported} product(s), {len(failures)} failed")
    if failures:
        raise typer.Exit(1)
