from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductUpserted(_message.Message):
    __slots__ = ("sku", "name", "price_minor", "currency", "available", "description", "image_url")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    sku: str
    name: str
    price_minor: int
    currency: str
    available: bool
    description: str
    image_url: str
    def __init__(self, sku: _Optional[str] = ..., name: _Optional[str] = ..., price_minor: _Optional[int] = ..., currency: _Optional[str] = ..., available: _Optional[bool] = ..., description: _Optional[str] = ..., image_url: _Optional[str] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("sku", "name", "quantity", "unit_price_minor", "catalog_price_minor", "line_total_minor", "issue")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CATALOG_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    LINE_TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    ISSUE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    name: str
    quantity: int
    unit_price_minor: int
    catalog_price_minor: int
    line_total_minor: int
    issue: str
    def __init__(self, sku: _Optional[str] = ..., name: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_minor: _Optional[int] = ..., catalog_price_minor: _Optional[int] = ..., line_total_minor: _Optional[int] = ..., issue: _Optional[str] = ...) -> None: ...

class OrderPlaced(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "items", "total_minor", "currency", "source", "payment_method", "issues", "channel", "channel_account_id", "address", "source_event_id", "idempotency_key", "placed_by", "summary")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PLACED_BY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    items: _containers.RepeatedCompositeFieldContainer[OrderLine]
    total_minor: int
    currency: str
    source: str
    payment_method: str
    issues: _containers.RepeatedScalarFieldContainer[str]
    channel: str
    channel_account_id: str
    address: str
    source_event_id: str
    idempotency_key: str
    placed_by: str
    summary: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ..., source: _Optional[str] = ..., payment_method: _Optional[str] = ..., issues: _Optional[_Iterable[str]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., address: _Optional[str] = ..., source_event_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., placed_by: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class OrderConfirmationRequested(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "summary", "total_minor", "currency")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    summary: str
    total_minor: int
    currency: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., summary: _Optional[str] = ..., total_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class OrderConfirmed(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "confirmed_by", "evidence")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    confirmed_by: str
    evidence: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., confirmed_by: _Optional[str] = ..., evidence: _Optional[str] = ...) -> None: ...

class OrderAwaitingPayment(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "amount_minor", "currency", "payment_method", "attempt", "channel", "channel_account_id", "address", "summary")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    amount_minor: int
    currency: str
    payment_method: str
    attempt: int
    channel: str
    channel_account_id: str
    address: str
    summary: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., payment_method: _Optional[str] = ..., attempt: _Optional[int] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., address: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class OrderPaid(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "payment_id", "amount_minor", "currency", "payment_method")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    payment_id: str
    amount_minor: int
    currency: str
    payment_method: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., payment_method: _Optional[str] = ...) -> None: ...

class OrderPaymentFlagged(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "payment_id", "reason", "amount_minor", "currency")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    payment_id: str
    reason: str
    amount_minor: int
    currency: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., reason: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class OrderOutForDelivery(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "carrier", "tracking_code", "note")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    carrier: str
    tracking_code: str
    note: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., carrier: _Optional[str] = ..., tracking_code: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class OrderDelivered(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "note")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    note: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class OrderCancelled(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "reason", "actor")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    reason: str
    actor: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class OrderRefunded(_message.Message):
    __slots__ = ("order_id", "customer_id", "conversation_id", "payment_id", "amount_minor", "currency", "refunded_total_minor", "fully_refunded")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    FULLY_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    conversation_id: str
    payment_id: str
    amount_minor: int
    currency: str
    refunded_total_minor: int
    fully_refunded: bool
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., refunded_total_minor: _Optional[int] = ..., fully_refunded: _Optional[bool] = ...) -> None: ...
