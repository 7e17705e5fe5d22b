import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelAccount(_message.Message):
    __slots__ = ("channel_account_id", "tenant_id", "channel", "settings", "credential_names", "created_at", "webhook_path")
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_NAMES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_PATH_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    tenant_id: str
    channel: str
    settings: _containers.ScalarMap[str, str]
    credential_names: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    webhook_path: str
    def __init__(self, channel_account_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., channel: _Optional[str] = ..., settings: _Optional[_Mapping[str, str]] = ..., credential_names: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., webhook_path: _Optional[str] = ...) -> None: ...

class CreateChannelAccountRequest(_message.Message):
    __slots__ = ("channel_account_id", "channel", "credentials", "settings")
    class CredentialsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    channel: str
    credentials: _containers.ScalarMap[str, str]
    settings: _containers.ScalarMap[str, str]
    def __init__(self, channel_account_id: _Optional[str] = ..., channel: _Optional[str] = ..., credentials: _Optional[_Mapping[str, str]] = ..., settings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateChannelAccountResponse(_message.Message):
    __slots__ = ("channel_account",)
    CHANNEL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    channel_account: ChannelAccount
    def __init__(self, channel_account: _Optional[_Union[ChannelAccount, _Mapping]] = ...) -> None: ...

class GetChannelAccountRequest(_message.Message):
    __slots__ = ("channel_account_id",)
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    def __init__(self, channel_account_id: _Optional[str] = ...) -> None: ...

class GetChannelAccountResponse(_message.Message):
    __slots__ = ("channel_account",)
    CHANNEL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    channel_account: ChannelAccount
    def __init__(self, channel_account: _Optional[_Union[ChannelAccount, _Mapping]] = ...) -> None: ...

class ListChannelAccountsRequest(_message.Message):
    __slots__ = ("channel", "page_size", "page_token")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channel: str
    page_size: int
    page_token: str
    def __init__(self, channel: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChannelAccountsResponse(_message.Message):
    __slots__ = ("channel_accounts", "next_page_token")
    CHANNEL_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channel_accounts: _containers.RepeatedCompositeFieldContainer[ChannelAccount]
    next_page_token: str
    def __init__(self, channel_accounts: _Optional[_Iterable[_Union[ChannelAccount, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMediaRequest(_message.Message):
    __slots__ = ("channel_account_id", "provider_media_id")
    CHANNEL_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MEDIA_ID_FIELD_NUMBER: _ClassVar[int]
    channel_account_id: str
    provider_media_id: str
    def __init__(self, channel_account_id: _Optional[str] = ..., provider_media_id: _Optional[str] = ...) -> None: ...

class GetMediaResponse(_message.Message):
    __slots__ = ("data", "mime_type", "filename", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    filename: str
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., filename: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...
