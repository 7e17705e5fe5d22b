import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parlay.gateway.v1 import gateway_events_pb2 as _gateway_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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
    __slots__ = ("conversation_id", "message_id", "direction", "channel", "channel_account_id", "provider_message_id", "content", "text", "sent_at", "source_event_id", "address")
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
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
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
    address: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., direction: _Optional[_Union[MessageDirection, str]] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.MessageContent, _Mapping]] = ..., text: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_event_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class OutboundMessageRequested(_message.Message):
    __slots__ = ("conversation_id", "message_id", "customer_id", "channel", "channel_account_id", "recipient_address", "content", "text", "purpose", "client_message_id", "sender", "reply_to_provider_message_id", "schedule_id")
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
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
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
    schedule_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., recipient_address: _Optional[str] = ..., content: _Optional[_Union[_gateway_events_pb2.OutboundContent, _Mapping]] = ..., text: _Optional[str] = ..., purpose: _Optional[str] = ..., client_message_id: _Optional[str] = ..., sender: _Optional[str] = ..., reply_to_provider_message_id: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class OutboundMessageStatusChanged(_message.Message):
    __slots__ = ("conversation_id", "message_id", "status", "provider_message_id", "error_code", "error_message", "status_at", "source_event_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    status: str
    provider_message_id: str
    error_code: str
    error_message: str
    status_at: _timestamp_pb2.Timestamp
    source_event_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., status: _Optional[str] = ..., provider_message_id: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., status_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_event_id: _Optional[str] = ...) -> None: ...

class OutboundMessageSuppressed(_message.Message):
    __slots__ = ("conversation_id", "message_id", "customer_id", "reason", "detail", "purpose", "text", "trigger", "schedule_id", "channel")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    customer_id: str
    reason: str
    detail: str
    purpose: str
    text: str
    trigger: str
    schedule_id: str
    channel: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., reason: _Optional[str] = ..., detail: _Optional[str] = ..., purpose: _Optional[str] = ..., text: _Optional[str] = ..., trigger: _Optional[str] = ..., schedule_id: _Optional[str] = ..., channel: _Optional[str] = ...) -> None: ...

class ConversationStatusChanged(_message.Message):
    __slots__ = ("conversation_id", "status", "previous_status", "snoozed_until", "reason", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    SNOOZED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    status: str
    previous_status: str
    snoozed_until: _timestamp_pb2.Timestamp
    reason: str
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., status: _Optional[str] = ..., previous_status: _Optional[str] = ..., snoozed_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ConversationAssigned(_message.Message):
    __slots__ = ("conversation_id", "agent_id", "team_id", "previous_agent_id", "previous_team_id", "reason", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    agent_id: str
    team_id: str
    previous_agent_id: str
    previous_team_id: str
    reason: str
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., team_id: _Optional[str] = ..., previous_agent_id: _Optional[str] = ..., previous_team_id: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ConversationHandedOff(_message.Message):
    __slots__ = ("conversation_id", "handler", "previous_handler", "reason", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HANDLER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    handler: str
    previous_handler: str
    reason: str
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., handler: _Optional[str] = ..., previous_handler: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class NoteAdded(_message.Message):
    __slots__ = ("conversation_id", "note_id", "author", "text")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    note_id: str
    author: str
    text: str
    def __init__(self, conversation_id: _Optional[str] = ..., note_id: _Optional[str] = ..., author: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class LabelsChanged(_message.Message):
    __slots__ = ("conversation_id", "labels", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ...) -> None: ...

class ConversationRead(_message.Message):
    __slots__ = ("conversation_id", "read_through_seq", "actor")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    READ_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    read_through_seq: int
    actor: str
    def __init__(self, conversation_id: _Optional[str] = ..., read_through_seq: _Optional[int] = ..., actor: _Optional[str] = ...) -> None: ...

class SlaBreached(_message.Message):
    __slots__ = ("conversation_id", "kind", "cycle", "started_at", "due_at", "target_seconds")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    TARGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    kind: str
    cycle: int
    started_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    target_seconds: int
    def __init__(self, conversation_id: _Optional[str] = ..., kind: _Optional[str] = ..., cycle: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., target_seconds: _Optional[int] = ...) -> None: ...

class ConversationOwnerChanged(_message.Message):
    __slots__ = ("conversation_id", "customer_id", "previous_customer_id", "reason", "merge_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    customer_id: str
    previous_customer_id: str
    reason: str
    merge_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., previous_customer_id: _Optional[str] = ..., reason: _Optional[str] = ..., merge_id: _Optional[str] = ...) -> None: ...

class ProactiveMessageScheduled(_message.Message):
    __slots__ = ("conversation_id", "schedule_id", "kind", "due_at", "text", "purpose", "template", "trigger_event_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    schedule_id: str
    kind: str
    due_at: _timestamp_pb2.Timestamp
    text: str
    purpose: str
    template: _gateway_events_pb2.TemplateContent
    trigger_event_id: str
    def __init__(self, conversation_id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., kind: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., text: _Optional[str] = ..., purpose: _Optional[str] = ..., template: _Optional[_Union[_gateway_events_pb2.TemplateContent, _Mapping]] = ..., trigger_event_id: _Optional[str] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("agent_id", "display_name", "team_ids", "capacity", "available", "email")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TEAM_IDS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    display_name: str
    team_ids: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    available: bool
    email: str
    def __init__(self, agent_id: _Optional[str] = ..., display_name: _Optional[str] = ..., team_ids: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., available: _Optional[bool] = ..., email: _Optional[str] = ...) -> None: ...

class AgentSaved(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: Agent
    def __init__(self, agent: _Optional[_Union[Agent, _Mapping]] = ...) -> None: ...

class AgentAvailabilityChanged(_message.Message):
    __slots__ = ("agent_id", "available")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    available: bool
    def __init__(self, agent_id: _Optional[str] = ..., available: _Optional[bool] = ...) -> None: ...

class AgentRemoved(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class Team(_message.Message):
    __slots__ = ("team_id", "name")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    name: str
    def __init__(self, team_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class TeamSaved(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class TeamRemoved(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class RuleCondition(_message.Message):
    __slots__ = ("keywords", "regex", "channels", "from_time", "to_time", "weekdays", "handler")
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    WEEKDAYS_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    keywords: _containers.RepeatedScalarFieldContainer[str]
    regex: str
    channels: _containers.RepeatedScalarFieldContainer[str]
    from_time: str
    to_time: str
    weekdays: _containers.RepeatedScalarFieldContainer[int]
    handler: str
    def __init__(self, keywords: _Optional[_Iterable[str]] = ..., regex: _Optional[str] = ..., channels: _Optional[_Iterable[str]] = ..., from_time: _Optional[str] = ..., to_time: _Optional[str] = ..., weekdays: _Optional[_Iterable[int]] = ..., handler: _Optional[str] = ...) -> None: ...

class RuleAction(_message.Message):
    __slots__ = ("reply_text", "add_labels", "assign_agent_id", "assign_team_id", "hand_off_to")
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    ADD_LABELS_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    HAND_OFF_TO_FIELD_NUMBER: _ClassVar[int]
    reply_text: str
    add_labels: _containers.RepeatedScalarFieldContainer[str]
    assign_agent_id: str
    assign_team_id: str
    hand_off_to: str
    def __init__(self, reply_text: _Optional[str] = ..., add_labels: _Optional[_Iterable[str]] = ..., assign_agent_id: _Optional[str] = ..., assign_team_id: _Optional[str] = ..., hand_off_to: _Optional[str] = ...) -> None: ...

class AutomationRule(_message.Message):
    __slots__ = ("rule_id", "name", "enabled", "priority", "condition", "action", "stop_processing")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STOP_PROCESSING_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    name: str
    enabled: bool
    priority: int
    condition: RuleCondition
    action: RuleAction
    stop_processing: bool
    def __init__(self, rule_id: _Optional[str] = ..., name: _Optional[str] = ..., enabled: _Optional[bool] = ..., priority: _Optional[int] = ..., condition: _Optional[_Union[RuleCondition, _Mapping]] = ..., action: _Optional[_Union[RuleAction, _Mapping]] = ..., stop_processing: _Optional[bool] = ...) -> None: ...

class AutomationRuleSaved(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: AutomationRule
    def __init__(self, rule: _Optional[_Union[AutomationRule, _Mapping]] = ...) -> None: ...

class AutomationRuleRemoved(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class OpeningHours(_message.Message):
    __slots__ = ("weekdays", "open_time", "close_time")
    WEEKDAYS_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    weekdays: _containers.RepeatedScalarFieldContainer[int]
    open_time: str
    close_time: str
    def __init__(self, weekdays: _Optional[_Iterable[int]] = ..., open_time: _Optional[str] = ..., close_time: _Optional[str] = ...) -> None: ...

class ProactiveMessage(_message.Message):
    __slots__ = ("disabled", "text", "purpose", "template_name", "template_language", "template_parameters")
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_NAME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    disabled: bool
    text: str
    purpose: str
    template_name: str
    template_language: str
    template_parameters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, disabled: _Optional[bool] = ..., text: _Optional[str] = ..., purpose: _Optional[str] = ..., template_name: _Optional[str] = ..., template_language: _Optional[str] = ..., template_parameters: _Optional[_Iterable[str]] = ...) -> None: ...

class InboxSettings(_message.Message):
    __slots__ = ("time_zone", "opening_hours", "opening_hours_text", "bot_enabled", "handoff_keywords", "bot_unanswered_handoff_after", "first_response_target_seconds", "resolution_target_seconds", "assignment_mode", "default_team_id", "proactive", "thank_you_time", "thank_you_text", "thank_you_disabled", "thank_you_template", "handoff_reply_text", "bot_fallback_text")
    class ProactiveEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ProactiveMessage
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ProactiveMessage, _Mapping]] = ...) -> None: ...
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    OPENING_HOURS_FIELD_NUMBER: _ClassVar[int]
    OPENING_HOURS_TEXT_FIELD_NUMBER: _ClassVar[int]
    BOT_ENABLED_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    BOT_UNANSWERED_HANDOFF_AFTER_FIELD_NUMBER: _ClassVar[int]
    FIRST_RESPONSE_TARGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_TARGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_MODE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PROACTIVE_FIELD_NUMBER: _ClassVar[int]
    THANK_YOU_TIME_FIELD_NUMBER: _ClassVar[int]
    THANK_YOU_TEXT_FIELD_NUMBER: _ClassVar[int]
    THANK_YOU_DISABLED_FIELD_NUMBER: _ClassVar[int]
    THANK_YOU_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    BOT_FALLBACK_TEXT_FIELD_NUMBER: _ClassVar[int]
    time_zone: str
    opening_hours: _containers.RepeatedCompositeFieldContainer[OpeningHours]
    opening_hours_text: str
    bot_enabled: bool
    handoff_keywords: _containers.RepeatedScalarFieldContainer[str]
    bot_unanswered_handoff_after: int
    first_response_target_seconds: int
    resolution_target_seconds: int
    assignment_mode: str
    default_team_id: str
    proactive: _containers.MessageMap[str, ProactiveMessage]
    thank_you_time: str
    thank_you_text: str
    thank_you_disabled: bool
    thank_you_template: _gateway_events_pb2.TemplateContent
    handoff_reply_text: str
    bot_fallback_text: str
    def __init__(self, time_zone: _Optional[str] = ..., opening_hours: _Optional[_Iterable[_Union[OpeningHours, _Mapping]]] = ..., opening_hours_text: _Optional[str] = ..., bot_enabled: _Optional[bool] = ..., handoff_keywords: _Optional[_Iterable[str]] = ..., bot_unanswered_handoff_after: _Optional[int] = ..., first_response_target_seconds: _Optional[int] = ..., resolution_target_seconds: _Optional[int] = ..., assignment_mode: _Optional[str] = ..., default_team_id: _Optional[str] = ..., proactive: _Optional[_Mapping[str, ProactiveMessage]] = ..., thank_you_time: _Optional[str] = ..., thank_you_text: _Optional[str] = ..., thank_you_disabled: _Optional[bool] = ..., thank_you_template: _Optional[_Union[_gateway_events_pb2.TemplateContent, _Mapping]] = ..., handoff_reply_text: _Optional[str] = ..., bot_fallback_text: _Optional[str] = ...) -> None: ...

class InboxSettingsChanged(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: InboxSettings
    def __init__(self, settings: _Optional[_Union[InboxSettings, _Mapping]] = ...) -> None: ...
