from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Identity(_message.Message):
    __slots__ = ("channel", "address", "normalized_phone")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_PHONE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    address: str
    normalized_phone: str
    def __init__(self, channel: _Optional[str] = ..., address: _Optional[str] = ..., normalized_phone: _Optional[str] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("rule", "source_event_id", "actor", "note")
    RULE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    source_event_id: str
    actor: str
    note: str
    def __init__(self, rule: _Optional[str] = ..., source_event_id: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class CustomerCreated(_message.Message):
    __slots__ = ("customer_id", "display_name")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class IdentityLinked(_message.Message):
    __slots__ = ("customer_id", "identity", "evidence")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    identity: Identity
    evidence: Evidence
    def __init__(self, customer_id: _Optional[str] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class DisplayNameChanged(_message.Message):
    __slots__ = ("customer_id", "display_name")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ...) -> None: ...

class CustomerSeen(_message.Message):
    __slots__ = ("customer_id", "channel", "channel_account_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    channel_account_id: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ...) -> None: ...
