import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from parlay.envelope.v1 import envelope_pb2 as _envelope_pb2
from parlay.profile.v1 import profile_events_pb2 as _profile_events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentityLink(_message.Message):
    __slots__ = ("identity", "evidence", "linked_at", "customer_id")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    LINKED_AT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    identity: _profile_events_pb2.Identity
    evidence: _profile_events_pb2.Evidence
    linked_at: _timestamp_pb2.Timestamp
    customer_id: str
    def __init__(self, identity: _Optional[_Union[_profile_events_pb2.Identity, _Mapping]] = ..., evidence: _Optional[_Union[_profile_events_pb2.Evidence, _Mapping]] = ..., linked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer_id: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("channel", "purpose", "granted", "source", "evidence", "changed_at", "customer_id", "identity")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    channel: str
    purpose: str
    granted: bool
    source: str
    evidence: _profile_events_pb2.Evidence
    changed_at: _timestamp_pb2.Timestamp
    customer_id: str
    identity: _profile_events_pb2.Identity
    def __init__(self, channel: _Optional[str] = ..., purpose: _Optional[str] = ..., granted: _Optional[bool] = ..., source: _Optional[str] = ..., evidence: _Optional[_Union[_profile_events_pb2.Evidence, _Mapping]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer_id: _Optional[str] = ..., identity: _Optional[_Union[_profile_events_pb2.Identity, _Mapping]] = ...) -> None: ...

class ChannelActivity(_message.Message):
    __slots__ = ("channel", "channel_account_id", "last_seen_at")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    channel_account_id: str
    last_seen_at: _timestamp_pb2.Timestamp
    def __init__(self, channel: _Optional[str] = ..., channel_account_id: _Optional[str] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SharedLocation(_message.Message):
    __slots__ = ("channel", "latitude", "longitude", "name", "address", "shared_at")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARED_AT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    latitude: float
    longitude: float
    name: str
    address: str
    shared_at: _timestamp_pb2.Timestamp
    def __init__(self, channel: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., shared_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MoneyTotal(_message.Message):
    __slots__ = ("currency", "amount_minor")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    currency: str
    amount_minor: int
    def __init__(self, currency: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class PurchaseSummary(_message.Message):
    __slots__ = ("order_count", "lifetime_value")
    ORDER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIFETIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    order_count: int
    lifetime_value: _containers.RepeatedCompositeFieldContainer[MoneyTotal]
    def __init__(self, order_count: _Optional[int] = ..., lifetime_value: _Optional[_Iterable[_Union[MoneyTotal, _Mapping]]] = ...) -> None: ...

class MergedCustomer(_message.Message):
    __slots__ = ("customer_id", "merge_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    merge_id: str
    def __init__(self, customer_id: _Optional[str] = ..., merge_id: _Optional[str] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("customer_id", "tenant_id", "display_name", "identities", "created_at", "updated_at", "version", "locale", "attributes", "tags", "identity_links", "consents", "channels", "last_location", "purchases", "merged_customers")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_LINKS_FIELD_NUMBER: _ClassVar[int]
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LAST_LOCATION_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    tenant_id: str
    display_name: str
    identities: _containers.RepeatedCompositeFieldContainer[_profile_events_pb2.Identity]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    version: int
    locale: str
    attributes: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    identity_links: _containers.RepeatedCompositeFieldContainer[IdentityLink]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    channels: _containers.RepeatedCompositeFieldContainer[ChannelActivity]
    last_location: SharedLocation
    purchases: PurchaseSummary
    merged_customers: _containers.RepeatedCompositeFieldContainer[MergedCustomer]
    def __init__(self, customer_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., display_name: _Optional[str] = ..., identities: _Optional[_Iterable[_Union[_profile_events_pb2.Identity, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., locale: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., identity_links: _Optional[_Iterable[_Union[IdentityLink, _Mapping]]] = ..., consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[ChannelActivity, _Mapping]]] = ..., last_location: _Optional[_Union[SharedLocation, _Mapping]] = ..., purchases: _Optional[_Union[PurchaseSummary, _Mapping]] = ..., merged_customers: _Optional[_Iterable[_Union[MergedCustomer, _Mapping]]] = ...) -> None: ...

class FindCustomerByIdentityRequest(_message.Message):
    __slots__ = ("channel", "address")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    address: str
    def __init__(self, channel: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class FindCustomerByIdentityResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer", "merged", "requested_customer_id", "merge_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    merged: bool
    requested_customer_id: str
    merge_id: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., merged: _Optional[bool] = ..., requested_customer_id: _Optional[str] = ..., merge_id: _Optional[str] = ...) -> None: ...

class SearchCustomersRequest(_message.Message):
    __slots__ = ("phone", "email", "name_prefix", "tag", "page_size", "page_token")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    phone: str
    email: str
    name_prefix: str
    tag: str
    page_size: int
    page_token: str
    def __init__(self, phone: _Optional[str] = ..., email: _Optional[str] = ..., name_prefix: _Optional[str] = ..., tag: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MergeCustomersRequest(_message.Message):
    __slots__ = ("survivor_customer_id", "merged_customer_id", "reason", "actor")
    SURVIVOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    survivor_customer_id: str
    merged_customer_id: str
    reason: str
    actor: str
    def __init__(self, survivor_customer_id: _Optional[str] = ..., merged_customer_id: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class MergeCustomersResponse(_message.Message):
    __slots__ = ("merge_id", "customer")
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    merge_id: str
    customer: Customer
    def __init__(self, merge_id: _Optional[str] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class UnmergeCustomersRequest(_message.Message):
    __slots__ = ("merge_id", "reason", "actor")
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    merge_id: str
    reason: str
    actor: str
    def __init__(self, merge_id: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class UnmergeCustomersResponse(_message.Message):
    __slots__ = ("survivor", "restored")
    SURVIVOR_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    survivor: Customer
    restored: Customer
    def __init__(self, survivor: _Optional[_Union[Customer, _Mapping]] = ..., restored: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class LinkIdentityRequest(_message.Message):
    __slots__ = ("customer_id", "channel", "address", "note", "actor", "phone")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    address: str
    note: str
    actor: str
    phone: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., address: _Optional[str] = ..., note: _Optional[str] = ..., actor: _Optional[str] = ..., phone: _Optional[str] = ...) -> None: ...

class LinkIdentityResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class UnlinkIdentityRequest(_message.Message):
    __slots__ = ("customer_id", "channel", "address", "note", "actor")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    address: str
    note: str
    actor: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., address: _Optional[str] = ..., note: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class UnlinkIdentityResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class UpdateCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "expected_version", "display_name", "locale", "set_attributes", "remove_attributes", "add_tags", "remove_tags", "actor")
    class SetAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    LOCALE_FIELD_NUMBER: _ClassVar[int]
    SET_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    REMOVE_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ADD_TAGS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_TAGS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    expected_version: int
    display_name: str
    locale: str
    set_attributes: _containers.ScalarMap[str, str]
    remove_attributes: _containers.RepeatedScalarFieldContainer[str]
    add_tags: _containers.RepeatedScalarFieldContainer[str]
    remove_tags: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    def __init__(self, customer_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., display_name: _Optional[str] = ..., locale: _Optional[str] = ..., set_attributes: _Optional[_Mapping[str, str]] = ..., remove_attributes: _Optional[_Iterable[str]] = ..., add_tags: _Optional[_Iterable[str]] = ..., remove_tags: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ...) -> None: ...

class UpdateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class SetConsentRequest(_message.Message):
    __slots__ = ("customer_id", "channel", "purpose", "granted", "proof", "actor")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    purpose: str
    granted: bool
    proof: str
    actor: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., purpose: _Optional[str] = ..., granted: _Optional[bool] = ..., proof: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class SetConsentResponse(_message.Message):
    __slots__ = ("consent",)
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    consent: Consent
    def __init__(self, consent: _Optional[_Union[Consent, _Mapping]] = ...) -> None: ...

class CanContactRequest(_message.Message):
    __slots__ = ("customer_id", "channel", "purpose")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    channel: str
    purpose: str
    def __init__(self, customer_id: _Optional[str] = ..., channel: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class CanContactResponse(_message.Message):
    __slots__ = ("allowed", "reason", "consent", "customer_id")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    consent: Consent
    customer_id: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ..., customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerHistoryRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("event", "summary")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    event: _envelope_pb2.Envelope
    summary: str
    def __init__(self, event: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., summary: _Optional[str] = ...) -> None: ...

class GetCustomerHistoryResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCustomerAsOfRequest(_message.Message):
    __slots__ = ("customer_id", "as_of")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, customer_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCustomerAsOfResponse(_message.Message):
    __slots__ = ("customer", "merged", "requested_customer_id", "merge_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MERGE_ID_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    merged: bool
    requested_customer_id: str
    merge_id: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., merged: _Optional[bool] = ..., requested_customer_id: _Optional[str] = ..., merge_id: _Optional[str] = ...) -> None: ...
