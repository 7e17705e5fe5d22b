"""OrdersService over a real gRPC server (the kit's: API-key auth, status mapping) on a real
schema: catalog, CreateOrder idempotency, reads, the commands and their preconditions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from typer.testing import CliRunner

from parlay.orders.v1 import orders_service_pb2 as pb
from parlay_kit.grpc_server import FIELD_TRAILER
from parlay_kit.testing import unique_name
from parlay_orders import cli

if TYPE_CHECKING:  # test modules cannot import conftest at run time (importlib mode)
    from conftest import Api

pytestmark = pytest.mark.timeout(120)


def _field(err: grpc.aio.AioRpcError) -> str:
    for key, value in err.trailing_metadata() or ():
        if key == FIELD_TRAILER:
            return str(value)
    return ""


async def _expect(call, code: grpc.StatusCode, field: str = "", contains: str = "") -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == code, info.value.details()
    if field:
        assert _field(info.value) == field, info.value.details()
    if contains:
        assert contains in (info.value.details() or "")


def _product(sku: str, price: int = 12475, currency: str = "MXN", **kw: object) -> pb.Product:
    return pb.Product(sku=sku, name=f"Product {sku}", price_minor=price, currency=currency, **kw)  # type: ignore[arg-type]


async def _catalog(api: Api, prefix: str) -> tuple[str, str, str]:
    taco, agua, gone = f"{prefix}-TACO", f"{prefix}-AGUA", f"{prefix}-GONE"
    await api.stub.UpsertProduct(pb.UpsertProductRequest(product=_product(taco, available=True)))
    await api.stub.UpsertProduct(
        pb.UpsertProductRequest(product=_product(agua, 3500, available=True))
    )
    await api.stub.UpsertProduct(pb.UpsertProductRequest(product=_product(gone, available=False)))
    return taco, agua, gone


async def _create(api: Api, *items: tuple[str, int], key: str = "", **kw: str) -> pb.Order:
    reply = await api.stub.CreateOrder(
        pb.CreateOrderRequest(
            customer_id=kw.pop("customer_id", "cust-1"),
            items=[pb.CreateOrderItem(sku=s, quantity=q) for s, q in items],
            idempotency_key=key or unique_name("key"),
            **kw,
        )
    )
    return reply.order


# ------------------------------------------------------------------------------- catalog


async def test_upsert_product_validates_naming_the_field(api: Api) -> None:
    cases = [
        (_product(""), "product.sku"),
        (_product("has space"), "product.sku"),
        (pb.Product(sku="X", price_minor=1, currency="MXN"), "product.name"),
        (_product("X", price=-1), "product.price_minor"),
        (_product("X", currency="XYZ"), "product.currency"),
    ]
    for product, field in cases:
        await _expect(
            api.stub.UpsertProduct(pb.UpsertProductRequest(product=product)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field,
        )
    await _expect(
        api.stub.UpsertProduct(pb.UpsertProductRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_upsert_and_list_products_paged_and_tenant_scoped(api: Api) -> None:
    prefix = unique_name("L")
    reply = await api.stub.UpsertProduct(
        pb.UpsertProductRequest(product=_product(f"{prefix}-1", currency="mxn", available=True))
    )
    assert reply.product.currency == "MXN" and reply.product.updated_at.seconds > 0
    for n in range(2, 6):
        await api.stub.UpsertProduct(
            pb.UpsertProductRequest(product=_product(f"{prefix}-{n}", available=n % 2 == 1))
        )
    # Updating keeps one row with the new values.
    await api.stub.UpsertProduct(
        pb.UpsertProductRequest(product=_product(f"{prefix}-1", price=999, available=True))
    )
    skus: list[str] = []
    token = ""
    while True:
        page = await api.stub.ListProducts(pb.ListProductsRequest(page_size=2, page_token=token))
        skus += [p.sku for p in page.products if p.sku.startswith(prefix)]
        token = page.next_page_token
        if not token:
            break
    assert skus == [f"{prefix}-{n}" for n in range(1, 6)]
    available = await api.stub.ListProducts(
        pb.ListProductsRequest(page_size=500, available_only=True)
    )
    mine = {p.sku: p for p in available.products if p.sku.startswith(prefix)}
    assert sorted(mine) == [f"{prefix}-1", f"{prefix}-3", f"{prefix}-5"]
    assert mine[f"{prefix}-1"].price_minor == 999
    other = await api.other.ListProducts(pb.ListProductsRequest(page_size=500))
    assert not [p for p in other.products if p.sku.startswith(prefix)]
    await _expect(
        api.stub.ListProducts(pb.ListProductsRequest(page_token="garbage!")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )


# ------------------------------------------------------------------------------- orders


async def test_create_order_is_idempotent_and_readable_at_once(api: Api) -> None:
    taco, agua, _ = await _catalog(api, unique_name("C"))
    key = unique_name("key")
    order = await _create(api, (taco, 2), (agua, 1), key=key, payment_method="cash_on_delivery")
    assert order.status == "placed"
    assert order.source == "api"
    assert order.total_minor == 2 * 12475 + 3500
    assert order.currency == "MXN"
    assert order.payment_method == "cash_on_delivery"
    assert [(i.sku, i.unit_price_minor, i.line_total_minor) for i in order.items] == [
        (taco, 12475, 24950),
        (agua, 3500, 3500),
    ]
    got = await api.stub.GetOrder(pb.GetOrderRequest(order_id=order.order_id))
    assert got.order == order
    again = await _create(api, (agua, 5), key=key)
    assert again == order
    count = await api.pool.fetchval(
        f"SELECT count(*) FROM {api.schema}.events WHERE aggregate_id = $1", order.order_id
    )
    assert count == 1  # OrderPlaced only: no conversation, so no confirmation request
    await _expect(
        api.other.GetOrder(pb.GetOrderRequest(order_id=order.order_id)), grpc.StatusCode.NOT_FOUND
    )


async def test_concurrent_creates_with_one_key_make_one_order(api: Api) -> None:
    taco, _, _ = await _catalog(api, unique_name("K"))
    key = unique_name("key")
    orders = await asyncio.gather(*(_create(api, (taco, 1), key=key) for _ in range(4)))
    assert len({o.order_id for o in orders}) == 1
    count = await api.pool.fetchval(
        f"SELECT count(*) FROM {api.schema}.events WHERE aggregate_id = $1", orders[0].order_id
    )
    assert count == 1


async def test_create_order_with_a_conversation_asks_for_confirmation(api: Api) -> None:
    taco, _, _ = await _catalog(api, unique_name("V"))
    conversation = unique_name("conv")
    # Until orders has seen the conversation on the log, it cannot say where the order's
    # chat is: UNAVAILABLE (retry), and nothing is placed.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _create(api, (taco, 1), conversation_id=conversation, key="k-" + conversation)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"conversation {conversation} is not known" in (caught.value.details() or "")
    async with api.pool.acquire() as conn:
        await api.rm.open_conversation(
            conn, api.tenant, conversation, "cust-1", "whatsapp", "wa-acc"
        )
    order = await _create(api, (taco, 1), conversation_id=conversation, key="k-" + conversation)
    state = await api.rm.load_order(api.pool, api.tenant, order.order_id)
    assert state is not None
    assert (state.channel, state.channel_account_id) == ("whatsapp", "wa-acc")
    types = await api.pool.fetch(
        f"""SELECT event_type FROM {api.schema}.events WHERE aggregate_id = $1
            ORDER BY aggregate_version""",
        order.order_id,
    )
    assert [t[0] for t in types] == [
        "parlay.orders.v1.OrderPlaced",
        "parlay.orders.v1.OrderConfirmationRequested",
    ]


async def test_create_order_rejects_bad_requests(api: Api) -> None:
    taco, _, gone = await _catalog(api, unique_name("B"))
    await _catalog(api, unique_name("B2"))
    usd = unique_name("USD")
    await api.stub.UpsertProduct(
        pb.UpsertProductRequest(product=_product(usd, 100, "USD", available=True))
    )

    def req(**kw: object) -> pb.CreateOrderRequest:
        base: dict[str, object] = {
            "customer_id": "c",
            "items": [pb.CreateOrderItem(sku=taco, quantity=1)],
            "idempotency_key": unique_name("k"),
        }
        base.update(kw)
        return pb.CreateOrderRequest(**base)  # type: ignore[arg-type]

    bad = grpc.StatusCode.INVALID_ARGUMENT
    await _expect(api.stub.CreateOrder(req(customer_id="")), bad, "customer_id")
    await _expect(api.stub.CreateOrder(req(items=[])), bad, "items")
    await _expect(api.stub.CreateOrder(req(idempotency_key="")), bad, "idempotency_key")
    await _expect(
        api.stub.CreateOrder(req(items=[pb.CreateOrderItem(sku=taco, quantity=0)])),
        bad,
        "items[0].quantity",
    )
    await _expect(
        api.stub.CreateOrder(req(items=[pb.CreateOrderItem(sku="NOPE", quantity=1)])),
        bad,
        "items[0].sku",
    )
    await _expect(
        api.stub.CreateOrder(
            req(
                items=[
                    pb.CreateOrderItem(sku=taco, quantity=1),
                    pb.CreateOrderItem(sku=usd, quantity=1),
                ]
            )
        ),
        bad,
        "items",
    )
    await _expect(api.stub.CreateOrder(req(payment_method="barter")), bad, "payment_method")
    await _expect(
        api.stub.CreateOrder(req(items=[pb.CreateOrderItem(sku=gone, quantity=1)])),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await _expect(api.anonymous.CreateOrder(req()), grpc.StatusCode.UNAUTHENTICATED)


async def test_lifecycle_confirm_pay_fulfil_and_preconditions(api: Api) -> None:
    taco, _, _ = await _catalog(api, unique_name("F"))
    order = await _create(api, (taco, 1))
    await _expect(
        api.stub.UpdateFulfillment(
            pb.UpdateFulfillmentRequest(
                order_id=order.order_id, status=pb.FULFILLMENT_STATUS_DELIVERED
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains="placed",
    )
    confirmed = await api.stub.ConfirmOrder(
        pb.ConfirmOrderRequest(order_id=order.order_id, payment_method="cash_on_delivery")
    )
    assert confirmed.order.status == "awaiting_payment"
    assert confirmed.order.payment_attempt == 1
    assert confirmed.order.payment_method == "cash_on_delivery"
    await _expect(
        api.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains="awaiting_payment",
    )
    out = await api.stub.UpdateFulfillment(
        pb.UpdateFulfillmentRequest(
            order_id=order.order_id,
            status=pb.FULFILLMENT_STATUS_OUT_FOR_DELIVERY,
            carrier="moto",
            tracking_code="T-1",
        )
    )
    assert (out.order.status, out.order.carrier, out.order.tracking_code) == (
        "out_for_delivery",
        "moto",
        "T-1",
    )
    await _expect(
        api.stub.UpdateFulfillment(
            pb.UpdateFulfillmentRequest(
                order_id=order.order_id, status=pb.FULFILLMENT_STATUS_DELIVERED
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains="not paid",
    )
    await _expect(
        api.stub.UpdateFulfillment(pb.UpdateFulfillmentRequest(order_id=order.order_id)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )
    cancelled = await api.stub.CancelOrder(
        pb.CancelOrderRequest(order_id=order.order_id, reason="customer not home")
    )
    assert (cancelled.order.status, cancelled.order.cancel_reason) == (
        "cancelled",
        "customer not home",
    )
    await _expect(
        api.stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        contains="cancelled",
    )
    await _expect(
        api.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id="nope")), grpc.StatusCode.NOT_FOUND
    )
    assert cancelled.order.version == 5


async def test_concurrent_confirms_confirm_once(api: Api) -> None:
    """Both calls read version 1; the append with the expected version lets one through, the
    other retries, sees awaiting_payment and is refused."""
    taco, _, _ = await _catalog(api, unique_name("R"))
    for _ in range(3):
        order = await _create(api, (taco, 1))
        results = await asyncio.gather(
            *(
                api.stub.ConfirmOrder(pb.ConfirmOrderRequest(order_id=order.order_id))
                for _ in range(3)
            ),
            return_exceptions=True,
        )
        ok = [r for r in results if isinstance(r, pb.ConfirmOrderResponse)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(ok) == 1, results
        assert {r.code() for r in refused} <= {
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.ABORTED,
        }
        count = await api.pool.fetchval(
            f"SELECT count(*) FROM {api.schema}.events WHERE aggregate_id = $1", order.order_id
        )
        assert count == 3


async def test_list_orders_newest_first_paged_and_filtered(api: Api) -> None:
    taco, _, _ = await _catalog(api, unique_name("P"))
    customer = unique_name("cust")
    created = [await _create(api, (taco, n), customer_id=customer) for n in range(1, 6)]
    await api.stub.CancelOrder(pb.CancelOrderRequest(order_id=created[1].order_id))
    ids: list[str] = []
    token = ""
    while True:
        page = await api.stub.ListOrders(
            pb.ListOrdersRequest(customer_id=customer, page_size=2, page_token=token)
        )
        ids += [o.order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert ids == [o.order_id for o in reversed(created)]
    cancelled = await api.stub.ListOrders(
        pb.ListOrdersRequest(customer_id=customer, status="cancelled")
    )
    assert [o.order_id for o in cancelled.orders] == [created[1].order_id]
    await _expect(
        api.stub.ListOrders(pb.ListOrdersRequest()), grpc.StatusCode.INVALID_ARGUMENT, "customer_id"
    )
    await _expect(
        api.stub.ListOrders(pb.ListOrdersRequest(customer_id=customer, status="lost")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    )
    other = await api.other.ListOrders(pb.ListOrdersRequest(customer_id=customer))
    assert list(other.orders) == []


# ----------------------------------------------------------------------------------- CLI


async def test_cli_imports_products_and_reports_bad_rows(api: Api, tmp_path: Path) -> None:
    prefix = unique_name("CSV")
    csv_file = tmp_path / "products.csv"
    csv_file.write_text(
        "sku,name,price,currency,available,description\n"
        f"{prefix}-1,Tacos al pastor,249.50,MXN,true,Three tacos\n"
        f"{prefix}-2,Agua,35,mxn,,\n"
        f"{prefix}-3,Too precise,1.234,MXN,yes,\n"
        f"{prefix}-4,Bad currency,10,ZZZ,yes,\n"
        f"{prefix}-5,Yen,500,JPY,no,\n"
        f"{prefix} 6,Space in sku,1,MXN,yes,\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke,
        cli.app,
        ["import-products", str(csv_file), "--target", api.address],
        env={"PARLAY_API_KEY": api.key},
    )
    assert result.exit_code == 1, result.output
    output = result.output
    assert "line 4:" in output and "decimals" in output
    assert "line 5:" in output and "ZZZ" in output
    assert "line 7:" in output and "product.sku" in output
    assert "imported 3 product(s), 3 failed" in output
    listed = await api.stub.ListProducts(pb.ListProductsRequest(page_size=500))
    mine = {p.sku: p for p in listed.products if p.sku.startswith(prefix)}
    assert {k: (v.price_minor, v.currency, v.available) for k, v in mine.items()} == {
        f"{prefix}-1": (24950, "MXN", True),
        f"{prefix}-2": (3500, "MXN", True),
        f"{prefix}-5": (500, "JPY", False),
    }
    assert mine[f"{prefix}-1"].description == "Three tacos"


async def test_cli_price_minor_column_and_clean_exit(api: Api, tmp_path: Path) -> None:
    prefix = unique_name("CSV")
    csv_file = tmp_path / "p.csv"
    csv_file.write_text(f"sku,name,price_minor,currency\n{prefix}-1,Hat,1999,USD\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli.app,
        ["import-products", str(csv_file), "--target", api.address, "--api-key", api.key],
    )
    assert result.exit_code == 0, result.output
    product = await api.rm.product_row(api.pool, api.tenant, f"{prefix}-1")
    assert product is not None and product["price_minor"] == 1999
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("sku,title\nX,Y\n")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["import-products", str(bad_header), "--target", api.address]
    )
    assert result.exit_code == 2


def test_the_cli_is_registered_as_a_parlay_sub_app() -> None:
    import importlib.metadata

    import typer

    from parlay_kit.cli import load_plugins

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="parlay.cli")}
    assert eps.get("orders") == "parlay_orders.cli:app"
    target = typer.Typer()
    assert "orders" in load_plugins(target)
