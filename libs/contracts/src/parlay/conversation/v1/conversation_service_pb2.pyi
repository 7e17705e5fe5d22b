import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parlay.conversation.v1 import conversation_events_pb2 as _conversation_events_pb2
from parlay.gateway.v1 import gateway_events_pb2 as _gateway_events_pb2
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

class ConversationHandler(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_HANDLER_UNSPECIFIED: _ClassVar[ConversationHandler]
    CONVERSATION_HANDLER_BOT: _ClassVar[ConversationHandler]
    CONVERSATION_HANDLER_HUMAN: _ClassVar[ConversationHandler]

class MessagePurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_PURPOSE_UNSPECIFIED: _ClassVar[MessagePurpose]
    MESSAGE_PURPOSE_TRANSACTIONAL: _ClassVar[MessagePurpose]
    MESSAGE_PURPOSE_MARKETING: _ClassVar[MessagePurpose]
CONVERSATION_STATUS_UNSPECIFIED: ConversationStatus
CONVERSATION_STATUS_OPEN: ConversationStatus
CONVERSATION_STATUS_PENDING: ConversationStatus
CONVERSATION_STATUS_SNOOZED: ConversationStatus
CONVERSATION_STATUS_RESOLVED: ConversationStatus
CONVERSATION_HANDLER_UNSPECIFIED: ConversationHandler
CONVERSATION_HANDLER_BOT: ConversationHandler
CONVERSATION_HANDLER_HUMAN: ConversationHandler
MESSAGE_PURPOSE_UNSPECIFIED: MessagePurpose
MESSAGE_PURPOSE_TRANSACTIONAL: MessagePurpose
MESSAGE_PURPOSE_MARKETING: MessagePurpose

class Message(_message.Message):
    __slots__ = ("message_id", "direction", "channel", "channel_account_id", "text", "occurred_at", "provider_message_id", "status", "sender", "error_code", "error_message", "content", "outbound_content", "purpose", "client_message_id", "status_at")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OUTBOUND_CONTENT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_AT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    direction: _conversation_events_pb2.MessageDirection
    channel: str
    channel_account_id: str
    text: str
    occurred_at: _timestamp_pb2.Timestamp
    provider_message_id: str
    status: str
    sender: str
    error_code: str
    error_message: str
    content: _gateway_events_pb2.MessageContent
    outbound_content: _gateway_events_pb2.OutboundContent
    purpose: str
    client_message_id: str
    status_at: _timestamp_pb2.Timestamp
    def __init__(self, message_id: _Optional[str] = ..., direction: _Optional[_Union[_conversation_events_pb2.MessageDirection, str]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., text: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., provider_message_id: _Optional[str] = ..., status: _Optional[str] = ..., sender: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.MessageContent, _Mapping]] = ..., outbound_content: _Optional[_Union[_gateway_events_pb2.OutboundContent, _Mapping]] = ..., purpose: _Optional[str] = ..., client_message_id: _Optional[str] = ..., status_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Note(_message.Message):
    __slots__ = ("note_id", "author", "text", "created_at")
    NOTE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    note_id: str
    author: str
    text: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, note_id: _Optional[str] = ..., author: _Optional[str] = ..., text: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ServiceWindow(_message.Message):
    __slots__ = ("channel", "channel_account_id", "last_inbound_at", "closes_at", "open")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_INBOUND_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    last_inbound_at: _timestamp_pb2.Timestamp
    closes_at: _timestamp_pb2.Timestamp
    open: bool
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., last_inbound_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closes_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open: _Optional[bool] = ...) -> None: ...

class SlaBreach(_message.Message):
    __slots__ = ("kind", "cycle", "due_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    cycle: int
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., cycle: _Optional[int] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "tenant_id", "customer_id", "status", "opened_at", "last_activity_at", "last_channel", "message_count", "unread_count", "messages", "version", "origin_customer_id", "assignee_agent_id", "team_id", "handler", "labels", "snoozed_until", "notes", "service_windows", "sla_breaches", "channels", "first_response_at")
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
    ORIGIN_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SNOOZED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    SERVICE_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    SLA_BREACHES_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FIRST_RESPONSE_AT_FIELD_NUMBER: _ClassVar[int]
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
    origin_customer_id: str
    assignee_agent_id: str
    team_id: str
    handler: ConversationHandler
    labels: _containers.RepeatedScalarFieldContainer[str]
    snoozed_until: _timestamp_pb2.Timestamp
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    service_windows: _containers.RepeatedCompositeFieldContainer[ServiceWindow]
    sla_breaches: _containers.RepeatedCompositeFieldContainer[SlaBreach]
    channels: _containers.RepeatedScalarFieldContainer[str]
    first_response_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_activity_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_channel: _Optional[str] = ..., message_count: _Optional[int] = ..., unread_count: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., version: _Optional[int] = ..., origin_customer_id: _Optional[str] = ..., assignee_agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., handler: _Optional[_Union[ConversationHandler, str]] = ..., labels: _Optional[_Iterable[str]] = ..., snoozed_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ..., service_windows: _Optional[_Iterable[_Union[ServiceWindow, _Mapping]]] = ..., sla_breaches: _Optional[_Iterable[_Union[SlaBreach, _Mapping]]] = ..., channels: _Optional[_Iterable[str]] = ..., first_response_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token", "status", "assignee_agent_id", "team_id", "channel", "label")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    status: ConversationStatus
    assignee_agent_id: str
    team_id: str
    channel: str
    label: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[ConversationStatus, str]] = ..., assignee_agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., channel: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

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

class SearchConversationsRequest(_message.Message):
    __slots__ = ("query", "page_size", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: str
    page_size: int
    page_token: str
    def __init__(self, query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("conversation", "message", "snippet")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    message: Message
    snippet: str
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., snippet: _Optional[str] = ...) -> None: ...

class SearchConversationsResponse(_message.Message):
    __slots__ = ("hits", "next_page_token")
    HITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    next_page_token: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "content", "channel", "channel_account_id", "client_message_id", "purpose", "agent_id", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    content: _gateway_events_pb2.OutboundContent
    channel: str
    channel_account_id: str
    client_message_id: str
    purpose: MessagePurpose
    agent_id: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.OutboundContent, _Mapping]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., client_message_id: _Optional[str] = ..., purpose: _Optional[_Union[MessagePurpose, str]] = ..., agent_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("message", "conversation_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    message: Message
    conversation_id: str
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class AssignConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "agent_id", "team_id", "auto", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AUTO_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    agent_id: str
    team_id: str
    auto: bool
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., auto: _Optional[bool] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class AssignConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class HandOffConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "to", "team_id", "agent_id", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    to: ConversationHandler
    team_id: str
    agent_id: str
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., to: _Optional[_Union[ConversationHandler, str]] = ..., team_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class HandOffConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class SnoozeConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "until", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    until: _timestamp_pb2.Timestamp
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SnoozeConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class ResolveConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ResolveConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class ReopenConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ReopenConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class MarkConversationPendingRequest(_message.Message):
    __slots__ = ("conversation_id", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class MarkConversationPendingResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class AddNoteRequest(_message.Message):
    __slots__ = ("conversation_id", "text", "author", "client_note_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NOTE_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    text: str
    author: str
    client_note_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., text: _Optional[str] = ..., author: _Optional[str] = ..., client_note_id: _Optional[str] = ...) -> None: ...

class AddNoteResponse(_message.Message):
    __slots__ = ("note",)
    NOTE_FIELD_NUMBER: _ClassVar[int]
    note: Note
    def __init__(self, note: _Optional[_Union[Note, _Mapping]] = ...) -> None: ...

class SetLabelsRequest(_message.Message):
    __slots__ = ("conversation_id", "labels", "actor", "expected_version")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    expected_version: int
    def __init__(self, conversation_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SetLabelsResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class MarkReadRequest(_message.Message):
    __slots__ = ("conversation_id", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: Conversation
    def __init__(self, conversation: _Optional[_Union[Conversation, _Mapping]] = ...) -> None: ...

class UpsertAgentRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _conversation_events_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_conversation_events_pb2.Agent, _Mapping]] = ...) -> None: ...

class UpsertAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _conversation_events_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_conversation_events_pb2.Agent, _Mapping]] = ...) -> None: ...

class SetAgentAvailabilityRequest(_message.Message):
    __slots__ = ("agent_id", "available")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    available: bool
    def __init__(self, agent_id: _Optional[str] = ..., available: _Optional[bool] = ...) -> None: ...

class SetAgentAvailabilityResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: _conversation_events_pb2.Agent
    def __init__(self, agent: _Optional[_Union[_conversation_events_pb2.Agent, _Mapping]] = ...) -> None: ...

class RemoveAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class RemoveAgentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class AgentLoad(_message.Message):
    __slots__ = ("agent", "open_conversations")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    OPEN_CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    agent: _conversation_events_pb2.Agent
    open_conversations: int
    def __init__(self, agent: _Optional[_Union[_conversation_events_pb2.Agent, _Mapping]] = ..., open_conversations: _Optional[int] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentLoad]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentLoad, _Mapping]]] = ...) -> None: ...

class UpsertTeamRequest(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: _conversation_events_pb2.Team
    def __init__(self, team: _Optional[_Union[_conversation_events_pb2.Team, _Mapping]] = ...) -> None: ...

class UpsertTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: _conversation_events_pb2.Team
    def __init__(self, team: _Optional[_Union[_conversation_events_pb2.Team, _Mapping]] = ...) -> None: ...

class RemoveTeamRequest(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class RemoveTeamResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTeamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTeamsResponse(_message.Message):
    __slots__ = ("teams",)
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    teams: _containers.RepeatedCompositeFieldContainer[_conversation_events_pb2.Team]
    def __init__(self, teams: _Optional[_Iterable[_Union[_conversation_events_pb2.Team, _Mapping]]] = ...) -> None: ...

class UpsertRuleRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: _conversation_events_pb2.AutomationRule
    def __init__(self, rule: _Optional[_Union[_conversation_events_pb2.AutomationRule, _Mapping]] = ...) -> None: ...

class UpsertRuleResponse(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: _conversation_events_pb2.AutomationRule
    def __init__(self, rule: _Optional[_Union[_conversation_events_pb2.AutomationRule, _Mapping]] = ...) -> None: ...

class RemoveRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class RemoveRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[_conversation_events_pb2.AutomationRule]
    def __init__(self, rules: _Optional[_Iterable[_Union[_conversation_events_pb2.AutomationRule, _Mapping]]] = ...) -> None: ...

class GetInboxSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInboxSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: _conversation_events_pb2.InboxSettings
    def __init__(self, settings: _Optional[_Union[_conversation_events_pb2.InboxSettings, _Mapping]] = ...) -> None: ...

class UpdateInboxSettingsRequest(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: _conversation_events_pb2.InboxSettings
    def __init__(self, settings: _Optional[_Union[_conversation_events_pb2.InboxSettings, _Mapping]] = ...) -> None: ...

class UpdateInboxSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: _conversation_events_pb2.InboxSettings
    def __init__(self, settings: _Optional[_Union[_conversation_events_pb2.InboxSettings, _Mapping]] = ...) -> None: ...
