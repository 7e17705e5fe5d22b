"""The orders domain: order state, the decisions of every command and saga step, and `apply`.

Pure: no I/O, no clock, no ids. A `decide_*` function reads the current state (None when the
order does not exist yet) and returns the events (protobuf payloads of parlay.orders.v1) the
order should record, or raises a domain error (`FailedPrecondition` naming the current status,
`InvalidArgument` naming the field). The application layer gives the events ids, versions and
times, appends them and folds them with `apply` — the same `apply` the read-model projection and
`parlay at order <id>` use, so the state is a function of the log.

Transitions (docs/order-to-cash.md):

    placed ──confirm──▶ confirmed + awaiting_payment (attempt 1)
    awaiting_payment ──capture, amount and currency match──▶ paid
    awaiting_payment ──expired, attempt < max──▶ awaiting_payment (attempt + 1)
    awaiting_payment ──expired, last attempt──▶ cancelled (payment_expired)
    paid ──▶ out_for_delivery ──▶ delivered
    cash/card on delivery: awaiting_payment ──▶ out_for_delivery ──capture──▶ paid ──▶ delivered
    anything before paid ──cancel──▶ cancelled
    paid and later ──refunds reach the total──▶ refunded
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from parlay.orders.v1 import orders_events_pb2 as oe
from parlay_kit.errors import FailedPrecondition, InvalidArgument
from parlay_kit.money import format_money

AGGREGATE_TYPE = "order"
PRODUCT_AGGREGATE_TYPE = "product"

PLACED = "placed"
CONFIRMED = "confirmed"
AWAITING_PAYMENT = "awaiting_payment"
PAID = "paid"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERED = "delivered"
CANCELLED = "cancelled"
REFUNDED = "refunded"
STATUSES = (
    PLACED,
    CONFIRMED,
    AWAITING_PAYMENT,
    PAID,
    OUT_FOR_DELIVERY,
    DELIVERED,
    CANCELLED,
    REFUNDED,
)

PAYMENT_LINK = "payment_link"
CASH_ON_DELIVERY = "cash_on_delivery"
CARD_ON_DELIVERY = "card_on_delivery"
TELEGRAM = "telegram"
PAYMENT_METHODS = (PAYMENT_LINK, CASH_ON_DELIVERY, CARD_ON_DELIVERY, TELEGRAM)
#: Methods whose money is collected at the door: the order may leave before it is paid.
ON_DELIVERY = frozenset({CASH_ON_DELIVERY, CARD_ON_DELIVERY})

SOURCE_CART = "whatsapp_cart"
SOURCE_API = "api"

# Line issues (OrderLine.issue) and order-level ones (OrderPlaced.issues).
UNKNOWN_SKU = "unknown_sku"
UNAVAILABLE = "unavailable"
CURRENCY_MISMATCH = "currency_mismatch"
PRICE_MISMATCH = "price_mismatch"
INVALID_QUANTITY = "invalid_quantity"
MIXED_CURRENCY = "mixed_currency"

# OrderPaymentFlagged reasons decided here (payments' own reasons pass through).
AMOUNT_MISMATCH = "amount_mismatch"
NOT_AWAITING_PAYMENT = "not_awaiting_payment"
LINK_FAILED = "payment_link_failed"

PAYMENT_EXPIRED = "payment_expired"

_ORDERS = "parlay.orders.v1."
ORDER_EVENT_TYPES = frozenset(
    _ORDERS + n
    for n in (
        "OrderPlaced",
        "OrderConfirmationRequested",
        "OrderConfirmed",
        "OrderAwaitingPayment",
        "OrderPaid",
        "OrderPaymentFlagged",
        "OrderOutForDelivery",
        "OrderDelivered",
        "OrderCancelled",
        "OrderRefunded",
    )
)
PRODUCT_UPSERTED = _ORDERS + "ProductUpserted"


def product_aggregate_id(sku: str) -> str:
    return f"product:{sku}"


# ------------------------------------------------------------------------------------ catalog


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price_minor: int
    currency: str
    available: bool = True
    description: str = ""
    image_url: str = ""


@dataclass(frozen=True, slots=True)
class CartItem:
    """A line as the customer sent it (a WhatsApp cart) or as an integrator asked for it."""

    sku: str
    quantity: int
    #: What the customer saw; None for CreateOrder (charged at the catalog price).
    unit_price_minor: int | None = None
    currency: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    catalog_price_minor: int
    line_total_minor: int
    issue: str = ""
    #: The line's own currency (the cart's; proto lines carry none, the order's is implied).
    currency: str = ""

    def to_proto(self) -> oe.OrderLine:
        return oe.OrderLine(
            sku=self.sku,
            name=self.name,
            quantity=self.quantity,
            unit_price_minor=self.unit_price_minor,
            catalog_price_minor=self.catalog_price_minor,
            line_total_minor=self.line_total_minor,
            issue=self.issue,
        )


@dataclass(frozen=True, slots=True)
class Priced:
    lines: tuple[Line, ...]
    total_minor: int
    currency: str
    issues: tuple[str, ...]
    summary: str


def price_cart(items: Sequence[CartItem], catalog: Mapping[str, Product]) -> Priced:
    """Check a cart's lines against the catalog. Lines are charged as the customer saw them
    (a price that differs from the catalog is flagged, not silently changed); CreateOrder items
    (no price) are charged at the catalog price. The order's currency is the first line's; lines
    in another currency are listed, flagged (mixed_currency) and left out of the total."""
    lines: list[Line] = []
    currencies: list[str] = []
    for item in items:
        product = catalog.get(item.sku)
        currency = (item.currency or (product.currency if product else "")).upper()
        currencies.append(currency)
        seen = item.unit_price_minor
        unit = seen if seen is not None else (product.price_minor if product else 0)
        issue = ""
        if item.quantity <= 0:
            issue = INVALID_QUANTITY
        elif product is None:
            issue = UNKNOWN_SKU
        elif not product.available:
            issue = UNAVAILABLE
        elif currency != product.currency:
            issue = CURRENCY_MISMATCH
        elif seen is not None and seen != product.price_minor:
            issue = PRICE_MISMATCH
        quantity = max(item.quantity, 0)
        lines.append(
            Line(
                sku=item.sku,
                name=product.name if product else "",
                quantity=quantity,
                unit_price_minor=unit,
                catalog_price_minor=product.price_minor if product else 0,
                line_total_minor=unit * quantity,
                issue=issue,
                currency=currency,
            )
        )
    order_currency = next((c for c in currencies if c), "")
    issues = list(dict.fromkeys(line.issue for line in lines if line.issue))
    if len({c for c in currencies if c}) > 1:
        issues.append(MIXED_CURRENCY)
    total = sum(ln.line_total_minor for ln in lines if ln.currency in ("", order_currency))
    return Priced(
        lines=tuple(lines),
        total_minor=total,
        currency=order_currency,
        issues=tuple(issues),
        summary=summary(lines, order_currency),
    )


def summary(lines: Sequence[Line], currency: str) -> str:
    """One line per item for messages: "2 x Tacos al pastor (TACO-1) MX$249.50"."""
    out = []
    for ln in lines:
        label = f"{ln.name} ({ln.sku})" if ln.name else ln.sku
        cur = ln.currency or currency
        money = format_money(ln.line_total_minor, cur) if cur else str(ln.line_total_minor)
        out.append(f"{ln.quantity} x {label} {money}")
    return "\n".join(out)


# ------------------------------------------------------------------------------ confirmation

CONFIRMATION_WORDS = frozenset(
    {"ok", "okay", "yes", "y", "si", "oui", "ja", "confirm", "confirmar", "\U0001f44d"}
)
# Skin tones and the emoji variation selector: 👍🏽 and 👍️ are still 👍.
_EMOJI_MODIFIERS = {chr(c) for c in range(0x1F3FB, 0x1F400)} | {"\ufe0f"}


def normalize_reply(text: str) -> str:
    """Lower case, accents removed, surrounding whitespace and punctuation stripped."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    bare = "".join(
        ch for ch in decomposed if not unicodedata.combining(ch) and ch not in _EMOJI_MODIFIERS
    )
    start, end = 0, len(bare)
    while start < end and _is_edge(bare[start]):
        start += 1
    while end > start and _is_edge(bare[end - 1]):
        end -= 1
    return bare[start:end]


def _is_edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def is_confirmation(text: str) -> bool:
    """The whole message says yes ("OK", "Sí!", "oui.", "👍"); a word inside a sentence does not
    ("ok but change the address")."""
    return normalize_reply(text) in CONFIRMATION_WORDS


def confirm_button_order(reply_id: str, payload: str) -> str:
    """The order id of a confirm button ("confirm:<order_id>"), else ""."""
    for value in (reply_id, payload):
        kind, sep, order_id = value.strip().partition(":")
        if sep and kind.lower() == "confirm" and order_id.strip():
            return order_id.strip()
    return ""


# ------------------------------------------------------------------------------------ state


@dataclass(frozen=True, slots=True)
class OrderState:
    tenant_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    status: str
    lines: tuple[Line, ...]
    total_minor: int
    currency: str
    payment_method: str
    source: str
    issues: tuple[str, ...] = ()
    channel: str = ""
    channel_account_id: str = ""
    address: str = ""
    summary: str = ""
    source_event_id: str = ""
    idempotency_key: str = ""
    placed_by: str = ""
    #: The customer was asked to confirm (OrderConfirmationRequested).
    confirmation_requested: bool = False
    confirmed_by: str = ""
    payment_attempt: int = 0
    payment_id: str = ""
    paid_minor: int = 0
    refunded_minor: int = 0
    payment_flag: str = ""
    carrier: str = ""
    tracking_code: str = ""
    cancel_reason: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def paid(self) -> bool:
        return self.payment_id != "" and self.paid_minor > 0

    @property
    def terminal(self) -> bool:
        return self.status in (CANCELLED, REFUNDED, DELIVERED)


def apply(
    state: OrderState | None,
    payload: Message,
    *,
    tenant_id: str,
    version: int,
    at: datetime,
) -> OrderState | None:
    """Fold one order event into the state. Events at or below the state's version are ignored
    (redelivery); unknown types leave the state as it is."""
    return fold(state, ((payload, version, at),), tenant_id=tenant_id)


#: An event to fold: (payload, aggregate version, when). `when` may be the envelope's protobuf
#: Timestamp: it is converted only if it ends up in the state (the projection's hot path).
Folded = tuple[Message, int, "datetime | Timestamp"]

_FIELDS = tuple(f.name for f in fields(OrderState))


def fold(
    state: OrderState | None, events: Iterable[Folded], *, tenant_id: str
) -> OrderState | None:
    """Fold an order's events, oldest first, into its state: `apply` for many events at the
    cost of one state object (the read-model projection folds a batch's events per order)."""
    cur: dict[str, Any] | None = (
        None if state is None else {name: getattr(state, name) for name in _FIELDS}
    )
    changed = False
    for payload, version, at in events:
        if cur is None:
            if isinstance(payload, oe.OrderPlaced):
                cur = _placed(payload, tenant_id, version, at)
                changed = True
            # else: an event of an order whose OrderPlaced this reader never saw
            continue
        if version <= cur["version"] or isinstance(payload, oe.OrderPlaced):
            continue
        _change(cur, payload)
        cur["version"] = version
        cur["updated_at"] = at
        changed = True
    if not changed or cur is None:
        return state
    for key in ("created_at", "updated_at"):
        if isinstance(cur[key], Timestamp):
            cur[key] = cur[key].ToDatetime(tzinfo=UTC)
    return OrderState(**cur)


def _placed(p: oe.OrderPlaced, tenant_id: str, version: int, at: Any) -> dict[str, Any]:
    state = OrderState(
        tenant_id=tenant_id,
        order_id=p.order_id,
        customer_id=p.customer_id,
        conversation_id=p.conversation_id,
        status=PLACED,
        lines=tuple(
            Line(
                sku=i.sku,
                name=i.name,
                quantity=i.quantity,
                unit_price_minor=i.unit_price_minor,
                catalog_price_minor=i.catalog_price_minor,
                line_total_minor=i.line_total_minor,
                issue=i.issue,
            )
            for i in p.items
        ),
        total_minor=p.total_minor,
        currency=p.currency,
        payment_method=p.payment_method,
        source=p.source,
        issues=tuple(p.issues),
        channel=p.channel,
        channel_account_id=p.channel_account_id,
        address=p.address,
        summary=p.summary,
        source_event_id=p.source_event_id,
        idempotency_key=p.idempotency_key,
        placed_by=p.placed_by,
        version=version,
    )
    cur = {name: getattr(state, name) for name in _FIELDS}
    cur["created_at"] = cur["updated_at"] = at
    return cur


def _change(s: dict[str, Any], payload: Message) -> None:
    """What one event (after OrderPlaced) changes, in place on the state's fields."""
    if isinstance(payload, oe.OrderConfirmationRequested):
        s["confirmation_requested"] = True
    elif isinstance(payload, oe.OrderConfirmed):
        s["status"] = CONFIRMED
        s["confirmed_by"] = payload.confirmed_by
    elif isinstance(payload, oe.OrderAwaitingPayment):
        # An order already out for delivery (cash/card on delivery) stays out for delivery.
        if s["status"] != OUT_FOR_DELIVERY:
            s["status"] = AWAITING_PAYMENT
        s["payment_attempt"] = payload.attempt
        s["payment_method"] = payload.payment_method or s["payment_method"]
    elif isinstance(payload, oe.OrderPaid):
        s["status"] = PAID
        s["payment_id"] = payload.payment_id
        s["paid_minor"] = payload.amount_minor
        # A link failure is resolved by the payment; money that did not match stays flagged
        # (someone still has to refund or settle it).
        if s["payment_flag"].startswith(LINK_FAILED):
            s["payment_flag"] = ""
    elif isinstance(payload, oe.OrderPaymentFlagged):
        s["payment_flag"] = payload.reason
    elif isinstance(payload, oe.OrderOutForDelivery):
        s["status"] = OUT_FOR_DELIVERY
        s["carrier"] = payload.carrier or s["carrier"]
        s["tracking_code"] = payload.tracking_code or s["tracking_code"]
    elif isinstance(payload, oe.OrderDelivered):
        s["status"] = DELIVERED
    elif isinstance(payload, oe.OrderCancelled):
        s["status"] = CANCELLED
        s["cancel_reason"] = payload.reason
    elif isinstance(payload, oe.OrderRefunded):
        if payload.fully_refunded:
            s["status"] = REFUNDED
        s["refunded_minor"] = payload.refunded_total_minor


# --------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Placement:
    """Everything an OrderPlaced needs besides the priced lines."""

    order_id: str
    customer_id: str
    conversation_id: str
    source: str
    payment_method: str
    placed_by: str
    channel: str = ""
    channel_account_id: str = ""
    address: str = ""
    source_event_id: str = ""
    idempotency_key: str = ""


def decide_place(
    state: OrderState | None, placement: Placement, priced: Priced, *, request_confirmation: bool
) -> list[Message]:
    """OrderPlaced, then OrderConfirmationRequested when the customer should be asked (an order
    with issues waits for a person). An order that already exists is not placed again."""
    if state is not None:
        return []
    p = placement
    placed = oe.OrderPlaced(
        order_id=p.order_id,
        customer_id=p.customer_id,
        conversation_id=p.conversation_id,
        items=[ln.to_proto() for ln in priced.lines],
        total_minor=priced.total_minor,
        currency=priced.currency,
        source=p.source,
        payment_method=p.payment_method,
        issues=list(priced.issues),
        channel=p.channel,
        channel_account_id=p.channel_account_id,
        address=p.address,
        source_event_id=p.source_event_id,
        idempotency_key=p.idempotency_key,
        placed_by=p.placed_by,
        summary=priced.summary,
    )
    events: list[Message] = [placed]
    if request_confirmation and not priced.issues:
        events.append(
            oe.OrderConfirmationRequested(
                order_id=p.order_id,
                customer_id=p.customer_id,
                conversation_id=p.conversation_id,
                summary=priced.summary,
                total_minor=priced.total_minor,
                currency=priced.currency,
            )
        )
    return events


def _status_error(state: OrderState, action: str) -> FailedPrecondition:
    return FailedPrecondition(f"order {state.order_id} is {state.status}: cannot {action}")


def _awaiting(state: OrderState, attempt: int, method: str) -> oe.OrderAwaitingPayment:
    return oe.OrderAwaitingPayment(
        order_id=state.order_id,
        customer_id=state.customer_id,
        conversation_id=state.conversation_id,
        amount_minor=state.total_minor,
        currency=state.currency,
        payment_method=method,
        attempt=attempt,
        channel=state.channel,
        channel_account_id=state.channel_account_id,
        address=state.address,
        summary=state.summary,
    )


def decide_confirm(
    state: OrderState, *, confirmed_by: str, evidence: str = "", payment_method: str = ""
) -> list[Message]:
    """placed → OrderConfirmed + OrderAwaitingPayment(attempt 1). Allowed for an order with
    issues: the person confirming looked at it."""
    if state.status != PLACED:
        raise _status_error(state, "confirm")
    if payment_method and payment_method not in PAYMENT_METHODS:
        raise InvalidArgument("payment_method", f"must be one of {', '.join(PAYMENT_METHODS)}")
    return [
        oe.OrderConfirmed(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            confirmed_by=confirmed_by,
            evidence=evidence,
        ),
        _awaiting(state, 1, payment_method or state.payment_method),
    ]


def customer_may_confirm(state: OrderState) -> bool:
    """The customer's "OK" applies to an order still placed that they were asked about."""
    return state.status == PLACED and state.confirmation_requested


def decide_cancel(state: OrderState, *, reason: str, actor: str) -> list[Message]:
    """Only before the money arrived; after that the answer is a refund."""
    if state.paid or state.status in (PAID, DELIVERED, REFUNDED):
        raise FailedPrecondition(
            f"order {state.order_id} is {state.status} and paid: refund it instead of cancelling"
        )
    if state.status == CANCELLED:
        raise _status_error(state, "cancel")
    return [
        oe.OrderCancelled(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            reason=reason,
            actor=actor,
        )
    ]


def decide_out_for_delivery(
    state: OrderState, *, carrier: str, tracking_code: str, note: str
) -> list[Message]:
    """From paid, or unpaid from awaiting_payment when the money is collected at the door."""
    on_delivery = state.status == AWAITING_PAYMENT and state.payment_method in ON_DELIVERY
    if state.status != PAID and not on_delivery:
        raise _status_error(state, "go out for delivery")
    return [
        oe.OrderOutForDelivery(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            carrier=carrier,
            tracking_code=tracking_code,
            note=note,
        )
    ]


def decide_delivered(state: OrderState, *, note: str) -> list[Message]:
    """Delivered requires paid (cash on delivery is recorded as paid first)."""
    if state.status not in (PAID, OUT_FOR_DELIVERY):
        raise _status_error(state, "be delivered")
    if not state.paid:
        raise FailedPrecondition(
            f"order {state.order_id} is {state.status} and not paid: record the payment first"
        )
    return [
        oe.OrderDelivered(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            note=note,
        )
    ]


# ------------------------------------------------------------------------ saga (payments)


def _flag(
    state: OrderState, payment_id: str, reason: str, amount: int, currency: str
) -> oe.OrderPaymentFlagged:
    return oe.OrderPaymentFlagged(
        order_id=state.order_id,
        customer_id=state.customer_id,
        conversation_id=state.conversation_id,
        payment_id=payment_id,
        reason=reason,
        amount_minor=amount,
        currency=currency,
    )


def decide_captured(
    state: OrderState, *, payment_id: str, amount_minor: int, currency: str, method: str
) -> list[Message]:
    """Paid only for exactly the order's total and currency while payment is due (or out for
    delivery, unpaid, for cash/card on delivery). Otherwise the money is flagged for a person."""
    if state.paid and state.payment_id == payment_id:
        return []  # the same capture again
    due = state.status == AWAITING_PAYMENT or (
        state.status == OUT_FOR_DELIVERY and not state.paid and state.payment_method in ON_DELIVERY
    )
    if not due:
        return [_flag(state, payment_id, NOT_AWAITING_PAYMENT, amount_minor, currency)]
    if currency.upper() != state.currency:
        return [_flag(state, payment_id, CURRENCY_MISMATCH, amount_minor, currency)]
    if amount_minor != state.total_minor:
        return [_flag(state, payment_id, AMOUNT_MISMATCH, amount_minor, currency)]
    return [
        oe.OrderPaid(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            payment_id=payment_id,
            amount_minor=amount_minor,
            currency=currency.upper(),
            payment_method=method or state.payment_method,
        )
    ]


def decide_payment_flagged(
    state: OrderState, *, payment_id: str, reason: str, amount_minor: int, currency: str
) -> list[Message]:
    return [_flag(state, payment_id, reason or AMOUNT_MISMATCH, amount_minor, currency)]


def decide_link_failed(state: OrderState, *, payment_id: str, reason: str) -> list[Message]:
    """The provider refused the session: the order stays awaiting payment, flagged for a
    person. Only while that payment is the one due."""
    if state.status != AWAITING_PAYMENT:
        return []
    detail = f"{LINK_FAILED}: {reason}" if reason else LINK_FAILED
    if state.payment_flag == detail:
        return []
    return [_flag(state, payment_id, detail, 0, state.currency)]


def decide_expired(state: OrderState, *, attempt: int, max_attempts: int) -> list[Message]:
    """The link of the current attempt expired: a new attempt (the reminder) while attempts
    remain, else the order is cancelled. An expiry of an older attempt, or after the order moved
    on, changes nothing."""
    if state.status != AWAITING_PAYMENT or attempt != state.payment_attempt:
        return []
    if attempt < max_attempts:
        return [_awaiting(state, attempt + 1, state.payment_method)]
    return [
        oe.OrderCancelled(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            reason=PAYMENT_EXPIRED,
            actor="system",
        )
    ]


def decide_refunded(
    state: OrderState, *, payment_id: str, amount_minor: int, currency: str
) -> list[Message]:
    """Money went back. The order's refunded total grows; it is refunded when the refunds of a
    paid order reach its total (partial refunds keep the status)."""
    if amount_minor <= 0:
        return []
    refunded_total = state.refunded_minor + amount_minor
    fully = state.paid and refunded_total >= state.total_minor
    return [
        oe.OrderRefunded(
            order_id=state.order_id,
            customer_id=state.customer_id,
            conversation_id=state.conversation_id,
            payment_id=payment_id,
            amount_minor=amount_minor,
            currency=currency.upper(),
            refunded_total_minor=refunded_total,
            fully_refunded=fully,
        )
    ]
