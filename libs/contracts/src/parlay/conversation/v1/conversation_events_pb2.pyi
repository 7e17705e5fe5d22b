import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parlay.gateway.v1 import gateway_events_pb2 as _gateway_events_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_DIRECTION_UNSPECIFIED: _ClassVar[MessageDirection]
    MESSAGE_DIRECTION_INBOUND: _ClassVar[MessageDirection]
    MESSAGE_DIRECTION_OUTBOUND: _ClassVar[MessageDirection]
MESSAGE_DIRECTION_UNSPECIFIED: MessageDirection
MESSAGE_DIRECTION_INBOUND: MessageDirection
MESSAGE_DIRECTION_OUTBOUND: MessageDirection

class ConversationOpened(_message.Message):
    __slots__ = ("conversation_id", "customer_id", "channel", "channel_account_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    customer_id: str
    channel: str
    channel_account_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ...) -> None: ...

class MessageAppended(_message.Message):
    __slots__ = ("conversation_id", "message_id", "direction", "channel", "channel_account_id", "provider_message_id", "content", "text", "sent_at", "source_event_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    direction: MessageDirection
    channel: str
    channel_account_id: str
    provider_message_id: str
    content: _gateway_events_pb2.MessageContent
    text: str
    sent_at: _timestamp_pb2.Timestamp
    source_event_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., direction: _Optional[_Union[MessageDirection, str]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.MessageContent, _Mapping]] = ..., text: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_event_id: _Optional[str] = ...) -> None: ...

class OutboundMessageRequested(_message.Message):
    __slots__ = ("conversation_id", "message_id", "customer_id", "channel", "channel_account_id", "recipient_address", "content", "text", "purpose", "client_message_id", "sender", "reply_to_provider_message_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    customer_id: str
    channel: str
    channel_account_id: str
    recipient_address: str
    content: _gateway_events_pb2.OutboundContent
    text: str
    purpose: str
    client_message_id: str
    sender: str
    reply_to_provider_message_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., recipient_address: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.OutboundContent, _Mapping]] = ..., text: _Optional[str] = ..., purpose: _Optional[str] = ..., client_message_id: _Optional[str] = ..., sender: _Optional[str] = ..., reply_to_provider_message_id: _Optional[str] = ...) -> None: ...
