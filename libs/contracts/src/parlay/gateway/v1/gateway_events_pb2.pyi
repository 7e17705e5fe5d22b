import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SENT: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_DELIVERED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_READ: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_SENT: DeliveryStatus
DELIVERY_STATUS_DELIVERED: DeliveryStatus
DELIVERY_STATUS_READ: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus

class WebhookReceived(_message.Message):
    __slots__ = ("channel", "channel_account_id", "http_method", "path", "headers", "body", "received_at")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    HTTP_METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    http_method: str
    path: str
    headers: _containers.ScalarMap[str, str]
    body: bytes
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., http_method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChannelAddress(_message.Message):
    __slots__ = ("channel", "address")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    address: str
    def __init__(self, channel: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class TextContent(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: str
    def __init__(self, body: _Optional[str] = ...) -> None: ...

class MediaContent(_message.Message):
    __slots__ = ("kind", "provider_media_id", "mime_type", "caption", "url", "sha256", "filename")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    provider_media_id: str
    mime_type: str
    caption: str
    url: str
    sha256: str
    filename: str
    def __init__(self, kind: _Optional[str] = ..., provider_media_id: _Optional[str] = ..., mime_type: _Optional[str] = ..., caption: _Optional[str] = ..., url: _Optional[str] = ..., sha256: _Optional[str] = ..., filename: _Optional[str] = ...) -> None: ...

class LocationContent(_message.Message):
    __slots__ = ("latitude", "longitude", "name", "address")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    name: str
    address: str
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class SharedContact(_message.Message):
    __slots__ = ("name", "phones", "emails")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONES_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    phones: _containers.RepeatedScalarFieldContainer[str]
    emails: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., phones: _Optional[_Iterable[str]] = ..., emails: _Optional[_Iterable[str]] = ...) -> None: ...

class ContactsContent(_message.Message):
    __slots__ = ("contacts",)
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    contacts: _containers.RepeatedCompositeFieldContainer[SharedContact]
    def __init__(self, contacts: _Optional[_Iterable[_Union[SharedContact, _Mapping]]] = ...) -> None: ...

class InteractiveReplyContent(_message.Message):
    __slots__ = ("reply_id", "title", "payload")
    REPLY_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    reply_id: str
    title: str
    payload: str
    def __init__(self, reply_id: _Optional[str] = ..., title: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class ReactionContent(_message.Message):
    __slots__ = ("target_provider_message_id", "emoji")
    TARGET_PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    target_provider_message_id: str
    emoji: str
    def __init__(self, target_provider_message_id: _Optional[str] = ..., emoji: _Optional[str] = ...) -> None: ...

class OrderItem(_message.Message):
    __slots__ = ("sku", "quantity", "unit_price_minor", "currency")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    unit_price_minor: int
    currency: str
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class OrderContent(_message.Message):
    __slots__ = ("catalog_id", "text", "items")
    CATALOG_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    catalog_id: str
    text: str
    items: _containers.RepeatedCompositeFieldContainer[OrderItem]
    def __init__(self, catalog_id: _Optional[str] = ..., text: _Optional[str] = ..., items: _Optional[_Iterable[_Union[OrderItem, _Mapping]]] = ...) -> None: ...

class UnsupportedContent(_message.Message):
    __slots__ = ("provider_type",)
    PROVIDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    provider_type: str
    def __init__(self, provider_type: _Optional[str] = ...) -> None: ...

class MessageContent(_message.Message):
    __slots__ = ("text", "media", "location", "contacts", "interactive_reply", "reaction", "order", "unsupported")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_REPLY_FIELD_NUMBER: _ClassVar[int]
    REACTION_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    text: TextContent
    media: MediaContent
    location: LocationContent
    contacts: ContactsContent
    interactive_reply: InteractiveReplyContent
    reaction: ReactionContent
    order: OrderContent
    unsupported: UnsupportedContent
    def __init__(self, text: _Optional[_Union[TextContent, _Mapping]] = ..., media: _Optional[_Union[MediaContent, _Mapping]] = ..., location: _Optional[_Union[LocationContent, _Mapping]] = ..., contacts: _Optional[_Union[ContactsContent, _Mapping]] = ..., interactive_reply: _Optional[_Union[InteractiveReplyContent, _Mapping]] = ..., reaction: _Optional[_Union[ReactionContent, _Mapping]] = ..., order: _Optional[_Union[OrderContent, _Mapping]] = ..., unsupported: _Optional[_Union[UnsupportedContent, _Mapping]] = ...) -> None: ...

class MessageReceived(_message.Message):
    __slots__ = ("channel", "channel_account_id", "provider_message_id", "sender", "business_address", "sender_display_name", "sent_at", "content", "context_provider_message_id", "sender_phone", "webhook_event_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SENDER_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_PHONE_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    provider_message_id: str
    sender: ChannelAddress
    business_address: str
    sender_display_name: str
    sent_at: _timestamp_pb2.Timestamp
    content: MessageContent
    context_provider_message_id: str
    sender_phone: str
    webhook_event_id: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., sender: _Optional[_Union[ChannelAddress, _Mapping]] = ..., business_address: _Optional[str] = ..., sender_display_name: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content: _Optional[_Union[MessageContent, _Mapping]] = ..., context_provider_message_id: _Optional[str] = ..., sender_phone: _Optional[str] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class MessageStatusUpdated(_message.Message):
    __slots__ = ("channel", "channel_account_id", "provider_message_id", "recipient", "status", "status_at", "error_code", "error_title", "webhook_event_id", "provider_status")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_TITLE_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_STATUS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    provider_message_id: str
    recipient: ChannelAddress
    status: DeliveryStatus
    status_at: _timestamp_pb2.Timestamp
    error_code: str
    error_title: str
    webhook_event_id: str
    provider_status: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., recipient: _Optional[_Union[ChannelAddress, _Mapping]] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., status_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error_code: _Optional[str] = ..., error_title: _Optional[str] = ..., webhook_event_id: _Optional[str] = ..., provider_status: _Optional[str] = ...) -> None: ...

class ChannelAccountCreated(_message.Message):
    __slots__ = ("channel_account_id", "channel", "credential_names", "settings")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAMES_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    channel: str
    credential_names: _containers.RepeatedScalarFieldContainer[str]
    settings: _containers.ScalarMap[str, str]
    def __init__(self, channel_account_id: _Optional[str] = ..., channel: _Optional[str] = ..., credential_names: _Optional[_Iterable[str]] = ..., settings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ChannelAccountUpdated(_message.Message):
    __slots__ = ("channel_account_id", "credential_names", "settings")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAMES_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    credential_names: _containers.RepeatedScalarFieldContainer[str]
    settings: _containers.ScalarMap[str, str]
    def __init__(self, channel_account_id: _Optional[str] = ..., credential_names: _Optional[_Iterable[str]] = ..., settings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class MessageEdited(_message.Message):
    __slots__ = ("channel", "channel_account_id", "provider_message_id", "sender", "content", "edited_at", "webhook_event_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    EDITED_AT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    provider_message_id: str
    sender: ChannelAddress
    content: MessageContent
    edited_at: _timestamp_pb2.Timestamp
    webhook_event_id: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., sender: _Optional[_Union[ChannelAddress, _Mapping]] = ..., content: _Optional[_Union[MessageContent, _Mapping]] = ..., edited_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class IdentityEvidenceObserved(_message.Message):
    __slots__ = ("channel", "channel_account_id", "subject", "evidence_kind", "phone", "email", "new_address", "provider_event_id", "observed_at", "webhook_event_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_KIND_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NEW_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    subject: ChannelAddress
    evidence_kind: str
    phone: str
    email: str
    new_address: str
    provider_event_id: str
    observed_at: _timestamp_pb2.Timestamp
    webhook_event_id: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., subject: _Optional[_Union[ChannelAddress, _Mapping]] = ..., evidence_kind: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., new_address: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class ContactSubscriptionChanged(_message.Message):
    __slots__ = ("channel", "channel_account_id", "subject", "subscribed", "reason", "changed_at", "webhook_event_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    subject: ChannelAddress
    subscribed: bool
    reason: str
    changed_at: _timestamp_pb2.Timestamp
    webhook_event_id: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., subject: _Optional[_Union[ChannelAddress, _Mapping]] = ..., subscribed: _Optional[bool] = ..., reason: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class ChannelPaymentEventReceived(_message.Message):
    __slots__ = ("channel", "channel_account_id", "kind", "provider_event_id", "payer", "currency", "total_minor", "invoice_payload", "provider_charge_id", "occurred_at", "webhook_event_id")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYER_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_FIELD_NUMBER: _ClassVar[int]
    INVOICE_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    kind: str
    provider_event_id: str
    payer: ChannelAddress
    currency: str
    total_minor: int
    invoice_payload: str
    provider_charge_id: str
    occurred_at: _timestamp_pb2.Timestamp
    webhook_event_id: str
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., kind: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., payer: _Optional[_Union[ChannelAddress, _Mapping]] = ..., currency: _Optional[str] = ..., total_minor: _Optional[int] = ..., invoice_payload: _Optional[str] = ..., provider_charge_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class TemplateParameter(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class TemplateContent(_message.Message):
    __slots__ = ("name", "language", "body_parameters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    BODY_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    language: str
    body_parameters: _containers.RepeatedCompositeFieldContainer[TemplateParameter]
    def __init__(self, name: _Optional[str] = ..., language: _Optional[str] = ..., body_parameters: _Optional[_Iterable[_Union[TemplateParameter, _Mapping]]] = ...) -> None: ...

class InteractiveButton(_message.Message):
    __slots__ = ("id", "title")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class InteractiveListRow(_message.Message):
    __slots__ = ("id", "title", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    description: str
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class InteractiveListSection(_message.Message):
    __slots__ = ("title", "rows")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    title: str
    rows: _containers.RepeatedCompositeFieldContainer[InteractiveListRow]
    def __init__(self, title: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[InteractiveListRow, _Mapping]]] = ...) -> None: ...

class InteractiveContent(_message.Message):
    __slots__ = ("header", "body", "footer", "buttons", "list_button_text", "sections")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    FOOTER_FIELD_NUMBER: _ClassVar[int]
    BUTTONS_FIELD_NUMBER: _ClassVar[int]
    LIST_BUTTON_TEXT_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    header: str
    body: str
    footer: str
    buttons: _containers.RepeatedCompositeFieldContainer[InteractiveButton]
    list_button_text: str
    sections: _containers.RepeatedCompositeFieldContainer[InteractiveListSection]
    def __init__(self, header: _Optional[str] = ..., body: _Optional[str] = ..., footer: _Optional[str] = ..., buttons: _Optional[_Iterable[_Union[InteractiveButton, _Mapping]]] = ..., list_button_text: _Optional[str] = ..., sections: _Optional[_Iterable[_Union[InteractiveListSection, _Mapping]]] = ...) -> None: ...

class OutboundContent(_message.Message):
    __slots__ = ("text", "template", "interactive", "media")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    INTERACTIVE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    text: TextContent
    template: TemplateContent
    interactive: InteractiveContent
    media: MediaContent
    def __init__(self, text: _Optional[_Union[TextContent, _Mapping]] = ..., template: _Optional[_Union[TemplateContent, _Mapping]] = ..., interactive: _Optional[_Union[InteractiveContent, _Mapping]] = ..., media: _Optional[_Union[MediaContent, _Mapping]] = ...) -> None: ...

class OutboundMessageSent(_message.Message):
    __slots__ = ("request_event_id", "message_id", "conversation_id", "channel", "channel_account_id", "recipient", "provider_message_id", "sent_at", "attempts")
    REQUEST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    request_event_id: str
    message_id: str
    conversation_id: str
    channel: str
    channel_account_id: str
    recipient: ChannelAddress
    provider_message_id: str
    sent_at: _timestamp_pb2.Timestamp
    attempts: int
    def __init__(self, request_event_id: _Optional[str] = ..., message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., recipient: _Optional[_Union[ChannelAddress, _Mapping]] = ..., provider_message_id: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ...) -> None: ...

class OutboundMessageFailed(_message.Message):
    __slots__ = ("request_event_id", "message_id", "conversation_id", "channel", "channel_account_id", "recipient", "error_code", "error_message", "attempts", "failed_at")
    REQUEST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    request_event_id: str
    message_id: str
    conversation_id: str
    channel: str
    channel_account_id: str
    recipient: ChannelAddress
    error_code: str
    error_message: str
    attempts: int
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, request_event_id: _Optional[str] = ..., message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., recipient: _Optional[_Union[ChannelAddress, _Mapping]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., attempts: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PaymentProviderEventReceived(_message.Message):
    __slots__ = ("provider", "channel_account_id", "provider_event_id", "event_type", "object_type", "object_id", "checkout_session_id", "payment_intent_id", "charge_id", "client_reference_id", "metadata", "amount_minor", "amount_refunded_minor", "currency", "status", "created_at", "livemode", "webhook_event_id")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_REFUNDED_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LIVEMODE_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    provider: str
    channel_account_id: str
    provider_event_id: str
    event_type: str
    object_type: str
    object_id: str
    checkout_session_id: str
    payment_intent_id: str
    charge_id: str
    client_reference_id: str
    metadata: _containers.ScalarMap[str, str]
    amount_minor: int
    amount_refunded_minor: int
    currency: str
    status: str
    created_at: _timestamp_pb2.Timestamp
    livemode: bool
    webhook_event_id: str
    def __init__(self, provider: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., object_type: _Optional[str] = ..., object_id: _Optional[str] = ..., checkout_session_id: _Optional[str] = ..., payment_intent_id: _Optional[str] = ..., charge_id: _Optional[str] = ..., client_reference_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., amount_minor: _Optional[int] = ..., amount_refunded_minor: _Optional[int] = ..., currency: _Optional[str] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., livemode: _Optional[bool] = ..., webhook_event_id: _Optional[str] = ...) -> None: ...

class ChannelPaymentActionCompleted(_message.Message):
    __slots__ = ("channel", "channel_account_id", "action", "request_event_id", "payment_id", "ok", "error_code", "error_message", "provider_message_id", "completed_at", "provider_object_id", "checkout_url", "expires_at", "amount_minor", "currency", "refund_id", "idempotency_key", "attempts", "permanent")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    action: str
    request_event_id: str
    payment_id: str
    ok: bool
    error_code: str
    error_message: str
    provider_message_id: str
    completed_at: _timestamp_pb2.Timestamp
    provider_object_id: str
    checkout_url: str
    expires_at: _timestamp_pb2.Timestamp
    amount_minor: int
    currency: str
    refund_id: str
    idempotency_key: str
    attempts: int
    permanent: bool
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., action: _Optional[str] = ..., request_event_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_object_id: _Optional[str] = ..., checkout_url: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., refund_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., attempts: _Optional[int] = ..., permanent: _Optional[bool] = ...) -> None: ...
