"""Protobuf message -> JSON-ready dict, the same result as
``json_format.MessageToDict(m, preserving_proto_field_name=True)`` but several times faster.

`json_format` walks every field through generic Python code; exporting a topic spends most of
its time there. This converter compiles, once per field descriptor, the function that converts
that field's value, and only visits the fields that are set (`ListFields`, like json_format).
Well-known types other than Timestamp and Duration (Struct, Value, Any, wrappers, FieldMask)
are handed to json_format itself, so the output is ProtoJSON in every case.
tests/analytics/test_jsonify.py checks equality with json_format on every Parlay event type.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

Converter = Callable[[Any], Any]

_INT64 = {
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT64,
}
_WKT = {
    "google.protobuf.Any",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.FieldMask",
    "google.protobuf.Empty",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
}

_printer: Any = json_format._Printer(preserving_proto_field_name=True)  # type: ignore[attr-defined]  # noqa: SLF001
_field_converters: dict[Any, Converter] = {}
_message_converters: dict[str, Converter] = {}
_MIN_4_DIGIT_YEAR = -30610224000  # 1000-01-01T00:00:00Z: below it, strftime does not pad %Y


def message_to_dict(message: Message) -> Any:
    """ProtoJSON of `message` (a dict, or a string/list for well-known types)."""
    descriptor = message.DESCRIPTOR
    conv = _message_converters.get(descriptor.full_name)
    if conv is None:
        conv = _compile_message(descriptor)
    return conv(message)


def _timestamp(ts: Any) -> str:
    """Timestamp.ToJsonString(), faster (gmtime + strftime instead of datetime arithmetic)."""
    seconds = ts.seconds
    nanos = ts.nanos
    if seconds < _MIN_4_DIGIT_YEAR or nanos < 0:
        return str(ts.ToJsonString())
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _compile_message(descriptor: Any) -> Converter:
    full_name = descriptor.full_name
    conv: Converter
    if full_name == "google.protobuf.Timestamp":
        conv = _timestamp
    elif full_name == "google.protobuf.Duration":

        def conv(message: Any) -> Any:
            return message.ToJsonString()

    elif full_name in _WKT:

        def conv(message: Any) -> Any:
            return _printer._MessageToJsonObject(message)  # noqa: SLF001

    else:
        fields = _field_converters

        def conv(message: Any) -> Any:
            out: dict[str, Any] = {}
            for field, value in message.ListFields():
                c = fields.get(field)
                if c is None:
                    c = _compile(field)
                out[field.name] = c(value)
            return out

    _message_converters[full_name] = conv
    return conv


def _float(value: float) -> Any:
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if math.isnan(value):
        return "NaN"
    return value


def _float32(value: float) -> Any:
    if math.isinf(value) or math.isnan(value):
        return _float(value)
    return type_checkers.ToShortestFloat(value)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _identity(value: Any) -> Any:
    return value


def _enum(field: Any) -> Converter:
    names = {v.number: v.name for v in field.enum_type.values}
    if field.enum_type.full_name == "google.protobuf.NullValue":
        return lambda _value: None

    def convert(value: int) -> Any:
        name = names.get(value)
        if name is not None:
            return name
        return _printer._FieldToJsonObject(field, value)  # noqa: SLF001 - open enum: the number

    return convert


def _scalar(field: Any) -> Converter:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        sub = field.message_type
        known = _message_converters.get(sub.full_name)
        if known is not None:
            return known

        def lazy(value: Any) -> Any:  # compiled on first use (recursive types)
            c = _message_converters.get(sub.full_name) or _compile_message(sub)
            if _field_converters.get(field) is lazy:
                _field_converters[field] = c  # later calls skip this wrapper
            return c(value)

        return lazy
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return _enum(field)
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return _b64 if field.type == FieldDescriptor.TYPE_BYTES else _identity
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return bool
    if cpp in _INT64:
        return str
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return _float
    if cpp == FieldDescriptor.CPPTYPE_FLOAT:
        return _float32
    return _identity


def _is_map(field: Any) -> bool:
    mt: Any = field.message_type
    return bool(mt is not None and mt.GetOptions().map_entry)


def _compile(field: Any) -> Converter:
    conv: Converter
    if _is_map(field):
        value_conv = _scalar(field.message_type.fields_by_name["value"])

        def key(k: Any) -> str:
            if isinstance(k, bool):
                return "true" if k else "false"
            return str(k)

        def conv(value: Any) -> Any:
            return {key(k): value_conv(value[k]) for k in value}

    elif field.is_repeated:
        item = _scalar(field)

        def conv(value: Any) -> Any:
            return [item(v) for v in value]

    else:
        conv = _scalar(field)
    _field_converters[field] = conv
    return conv
