import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parlay.conversation.v1 import conversation_events_pb2 as _conversation_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_STATUS_UNSPECIFIED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_OPEN: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_PENDING: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_SNOOZED: _ClassVar[ConversationStatus]
    CONVERSATION_STATUS_RESOLVED: _ClassVar[ConversationStatus]
CONVERSATION_STATUS_UNSPECIFIED: ConversationStatus
CONVERSATION_STATUS_OPEN: ConversationStatus
CONVERSATION_STATUS_PENDING: ConversationStatus
CONVERSATION_STATUS_SNOOZED: ConversationStatus
CONVERSATION_STATUS_RESOLVED: ConversationStatus

class Message(_message.Message):
    __slots__ = ("message_id", "direction", "channel", "channel_account_id", "text", "occurred_at", "provider_message_id", "status")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    direction: _conversation_events_pb2.MessageDirection
    channel: str
    channel_account_id: str
    text: str
    occurred_at: _timestamp_pb2.Timestamp
    provider_message_id: str
    status: str
    def __init__(self, message_id: _Optional[str] = ..., direction: _Optional[_Union[_conversation_events_pb2.MessageDirection, str]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., text: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_message_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "tenant_id", "customer_id", "status", "opened_at", "last_activity_at", "last_channel", "message_count", "unread_count", "messages", "version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    tenant_id: str
    customer_id: str
    status: ConversationStatus
    opened_at: _timestamp_pb2.Timestamp
    last_activity_at: _timestamp_pb2.Timestamp
    last_channel: str
    message_count: int
    unread_count: int
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    version: int
    def __init__(self, conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activity_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_channel: _Optional[str] = ..., message_count: _Optional[int] = ..., unread_count: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("conversations", "next_page_token")
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    next_page_token: str
    def __init__(self, conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "page_size", "page_token")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    page_size: int
    page_token: str
    def __init__(self, conversation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetConversationResponse(_message.Message):
    __slots__ = ("conversation", "next_page_token")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    next_page_token: str
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
