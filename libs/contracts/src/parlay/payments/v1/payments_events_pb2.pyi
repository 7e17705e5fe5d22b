import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentRequested(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "amount_minor", "currency", "method", "attempt", "idempotency_key", "channel", "channel_account_id", "address", "description")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    amount_minor: int
    currency: str
    method: str
    attempt: int
    idempotency_key: str
    channel: str
    channel_account_id: str
    address: str
    description: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., method: _Optional[str] = ..., attempt: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., address: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class PaymentLinkCreated(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "provider", "provider_session_id", "checkout_url", "amount_minor", "currency", "expires_at", "attempt", "provider_account_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_URL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    provider: str
    provider_session_id: str
    checkout_url: str
    amount_minor: int
    currency: str
    expires_at: _timestamp_pb2.Timestamp
    attempt: int
    provider_account_id: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., provider: _Optional[str] = ..., provider_session_id: _Optional[str] = ..., checkout_url: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., provider_account_id: _Optional[str] = ...) -> None: ...

class PaymentLinkFailed(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "reason", "attempts")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    reason: str
    attempts: int
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class PaymentCaptured(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "amount_minor", "currency", "method", "provider_event_id", "provider_payment_id", "captured_at", "collected_by")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    COLLECTED_BY_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    amount_minor: int
    currency: str
    method: str
    provider_event_id: str
    provider_payment_id: str
    captured_at: _timestamp_pb2.Timestamp
    collected_by: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., method: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., provider_payment_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., collected_by: _Optional[str] = ...) -> None: ...

class PaymentFlagged(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "reason", "expected_amount_minor", "expected_currency", "amount_minor", "currency", "provider_event_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    reason: str
    expected_amount_minor: int
    expected_currency: str
    amount_minor: int
    currency: str
    provider_event_id: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., reason: _Optional[str] = ..., expected_amount_minor: _Optional[int] = ..., expected_currency: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., provider_event_id: _Optional[str] = ...) -> None: ...

class PaymentExpired(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "attempt", "provider_event_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    attempt: int
    provider_event_id: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., provider_event_id: _Optional[str] = ...) -> None: ...

class PaymentCancelled(_message.Message):
    __slots__ = ("payment_id", "order_id", "reason", "provider_session_id", "provider_account_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    reason: str
    provider_session_id: str
    provider_account_id: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., reason: _Optional[str] = ..., provider_session_id: _Optional[str] = ..., provider_account_id: _Optional[str] = ...) -> None: ...

class RefundRequested(_message.Message):
    __slots__ = ("payment_id", "order_id", "refund_id", "amount_minor", "currency", "idempotency_key", "requested_by", "reason", "provider_account_id", "provider_payment_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    refund_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    requested_by: str
    reason: str
    provider_account_id: str
    provider_payment_id: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., refund_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., requested_by: _Optional[str] = ..., reason: _Optional[str] = ..., provider_account_id: _Optional[str] = ..., provider_payment_id: _Optional[str] = ...) -> None: ...

class PaymentRefunded(_message.Message):
    __slots__ = ("payment_id", "order_id", "customer_id", "conversation_id", "refund_id", "amount_minor", "currency", "refunded_total_minor", "fully_refunded", "provider_refund_id", "source")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    FULLY_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    customer_id: str
    conversation_id: str
    refund_id: str
    amount_minor: int
    currency: str
    refunded_total_minor: int
    fully_refunded: bool
    provider_refund_id: str
    source: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., refund_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., refunded_total_minor: _Optional[int] = ..., fully_refunded: _Optional[bool] = ..., provider_refund_id: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class RefundFailed(_message.Message):
    __slots__ = ("payment_id", "order_id", "refund_id", "reason")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    refund_id: str
    reason: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., refund_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ProviderEventRejected(_message.Message):
    __slots__ = ("provider", "channel_account_id", "provider_event_id", "event_type", "reason", "provider_object_id", "webhook_event_id")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    channel_account_id: str
    provider_event_id: str
    event_type: str
    reason: str
    provider_object_id: str
    webhook_event_id: str
    def __init__(self, provider: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., reason: _Optional[str] = ..., provider_object_id: _Optional[str] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class TelegramInvoiceRequested(_message.Message):
    __slots__ = ("payment_id", "order_id", "channel_account_id", "chat_id", "title", "description", "payload", "currency", "amount_minor")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    channel_account_id: str
    chat_id: str
    title: str
    description: str
    payload: str
    currency: str
    amount_minor: int
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., chat_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., payload: _Optional[str] = ..., currency: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class PreCheckoutQueryAnswered(_message.Message):
    __slots__ = ("payment_id", "order_id", "channel_account_id", "pre_checkout_query_id", "ok", "error_message")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PRE_CHECKOUT_QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    order_id: str
    channel_account_id: str
    pre_checkout_query_id: str
    ok: bool
    error_message: str
    def __init__(self, payment_id: _Optional[str] = ..., order_id: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., pre_checkout_query_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_message: _Optional[str] = ...) -> None: ...
