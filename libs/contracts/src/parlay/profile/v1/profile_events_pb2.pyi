from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Identity(_message.Message):
    __slots__ = ("channel", "address", "normalized_phone", "email")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    channel: str
    address: str
    normalized_phone: str
    email: str
    def __init__(self, channel: _Optional[str] = ..., address: _Optional[str] = ..., normalized_phone: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("customer_id", "display_name", "display_name_source")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_SOURCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    display_name_source: str
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., display_name_source: _Optional[str] = ...) -> None: ...

class IdentityLinked(_message.Message):
    __slots__ = ("customer_id", "identity", "evidence")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    identity: Identity
    evidence: Evidence
    def __init__(self, customer_id: _Optional[str] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class IdentityUnlinked(_message.Message):
    __slots__ = ("customer_id", "identity", "evidence")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    identity: Identity
    evidence: Evidence
    def __init__(self, customer_id: _Optional[str] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ...) -> None: ...

class DisplayNameChanged(_message.Message):
    __slots__ = ("customer_id", "display_name", "display_name_source")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_SOURCE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    display_name_source: str
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., display_name_source: _Optional[str] = ...) -> None: ...

class CustomerSeen(_message.Message):
    __slots__ = ("customer_id", "channel", "channel_account_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    channel_account_id: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ...) -> None: ...

class ProfilesMerged(_message.Message):
    __slots__ = ("merge_id", "survivor_customer_id", "merged_customer_id", "evidence", "reason")
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    merge_id: str
    survivor_customer_id: str
    merged_customer_id: str
    evidence: Evidence
    reason: str
    def __init__(self, merge_id: _Optional[str] = ..., survivor_customer_id: _Optional[str] = ..., merged_customer_id: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class CustomerMergedInto(_message.Message):
    __slots__ = ("customer_id", "survivor_customer_id", "merge_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    survivor_customer_id: str
    merge_id: str
    def __init__(self, customer_id: _Optional[str] = ..., survivor_customer_id: _Optional[str] = ..., merge_id: _Optional[str] = ...) -> None: ...

class ProfilesUnmerged(_message.Message):
    __slots__ = ("merge_id", "survivor_customer_id", "merged_customer_id", "evidence", "reason", "separated_customer_ids")
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEPARATED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    merge_id: str
    survivor_customer_id: str
    merged_customer_id: str
    evidence: Evidence
    reason: str
    separated_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, merge_id: _Optional[str] = ..., survivor_customer_id: _Optional[str] = ..., merged_customer_id: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., reason: _Optional[str] = ..., separated_customer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CustomerUnmergedFrom(_message.Message):
    __slots__ = ("customer_id", "survivor_customer_id", "merge_id", "separated_customer_ids")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    SEPARATED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    survivor_customer_id: str
    merge_id: str
    separated_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, customer_id: _Optional[str] = ..., survivor_customer_id: _Optional[str] = ..., merge_id: _Optional[str] = ..., separated_customer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsentChanged(_message.Message):
    __slots__ = ("customer_id", "channel", "purpose", "granted", "source", "evidence", "identity")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    purpose: str
    granted: bool
    source: str
    evidence: Evidence
    identity: Identity
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., purpose: _Optional[str] = ..., granted: _Optional[bool] = ..., source: _Optional[str] = ..., evidence: _Optional[_Union[Evidence, _Mapping]] = ..., identity: _Optional[_Union[Identity, _Mapping]] = ...) -> None: ...

class CustomerUpdated(_message.Message):
    __slots__ = ("customer_id", "display_name", "locale", "set_attributes", "removed_attributes", "added_tags", "removed_tags", "actor")
    class SetAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    SET_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ADDED_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_TAGS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    display_name: str
    locale: str
    set_attributes: _containers.ScalarMap[str, str]
    removed_attributes: _containers.RepeatedScalarFieldContainer[str]
    added_tags: _containers.RepeatedScalarFieldContainer[str]
    removed_tags: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    def __init__(self, customer_id: _Optional[str] = ..., display_name: _Optional[str] = ..., locale: _Optional[str] = ..., set_attributes: _Optional[_Mapping[str, str]] = ..., removed_attributes: _Optional[_Iterable[str]] = ..., added_tags: _Optional[_Iterable[str]] = ..., removed_tags: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ...) -> None: ...

class LocationShared(_message.Message):
    __slots__ = ("customer_id", "channel", "latitude", "longitude", "name", "address")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    latitude: float
    longitude: float
    name: str
    address: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class PurchaseRecorded(_message.Message):
    __slots__ = ("customer_id", "order_id", "kind", "currency", "amount_minor", "source_event_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    order_id: str
    kind: str
    currency: str
    amount_minor: int
    source_event_id: str
    def __init__(self, customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., kind: _Optional[str] = ..., currency: _Optional[str] = ..., amount_minor: _Optional[int] = ..., source_event_id: _Optional[str] = ...) -> None: ...
