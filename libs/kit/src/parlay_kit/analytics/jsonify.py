"""Protobuf message -> JSON-ready dict, the same result as
``json_format.MessageToDict(m, preserving_proto_field_name=True)`` but several times faster.

`json_format` walks every field through generic Python code; exporting a topic spends most of
its time there. This converter generates, once per message type, a Python function that reads
each field of that type directly (`m.field`, `m.HasField("field")`) and converts only the set
ones, in field-number order — the fields and the order `ListFields()` (what json_format walks)
gives, without building its list of (descriptor, value) tuples and looking up a converter per
field at run time. Values that need no conversion (strings, 32-bit ints) are stored as they are.
Well-known types other than Timestamp and Duration (Struct, Value, Any, wrappers, FieldMask)
are handed to json_format itself, so the output is ProtoJSON in every case.
tests/analytics/test_jsonify.py checks equality with json_format on every Parlay event type.
"""

from __future__ import annotations

import base64
import keyword
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
_FLOATS = {FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT}
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
#: Types whose converter is being generated: a field of such a type (a recursive message)
#: gets a converter that looks the finished one up on first use.
_generating: set[str] = set()
_MIN_4_DIGIT_YEAR = -30610224000  # 1000-01-01T00:00:00Z: below it, strftime does not pad %Y
_minutes: dict[int, str] = {}
_TWO_DIGITS = [f"{i:02d}" for i in range(60)]


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
    # Events come in time order, so consecutive timestamps mostly share their minute: format
    # "YYYY-MM-DDTHH:MM:" once per minute (a small cache) and append the seconds.
    minute, second = divmod(seconds, 60)
    prefix = _minutes.get(minute)
    if prefix is None:
        if len(_minutes) >= 4096:
            _minutes.clear()
        prefix = _minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    text = prefix + _TWO_DIGITS[second]
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

    elif full_name in _WKT or descriptor.extension_ranges:  # (extensions print as "[name]")

        def conv(message: Any) -> Any:
            return _printer._MessageToJsonObject(message)  # noqa: SLF001

    else:
        _generating.add(full_name)
        try:
            conv = _generate(descriptor)
        finally:
            _generating.discard(full_name)

    _message_converters[full_name] = conv
    return conv


def _generate(descriptor: Any) -> Converter:
    """The converter of one (non well-known) message type, as generated Python code.

    A field is output when `ListFields()` would list it: oneof members (also proto3
    `optional`) when the oneof says it is the one set; sub-messages when `HasField`; repeated
    fields and maps when not empty; other scalars when not the default — bitwise, so a double
    -0.0 is listed (as upb does)."""
    lines = ["def conv(m):", "    out = {}"]
    env: dict[str, Any] = {"_neg_zero": _neg_zero}
    # A oneof (also proto3 `optional`, a one-member oneof) is asked once which member is set,
    # instead of HasField on each member.
    oneofs = {o.name: f"w{j}" for j, o in enumerate(descriptor.oneofs)}
    lines += [f"    {var} = m.WhichOneof({name!r})" for name, var in oneofs.items()]
    for i, field in enumerate(sorted(descriptor.fields, key=lambda f: f.number)):
        name = field.name
        get = f"getattr(m, {name!r})" if keyword.iskeyword(name) else f"m.{name}"
        field_conv = _compile(field)
        value = "v" if field_conv is _identity else f"c{i}(v)"
        env[f"c{i}"] = field_conv
        oneof = field.containing_oneof
        if field.is_repeated:
            lines += [f"    v = {get}", "    if len(v):"]
        elif oneof is not None:
            lines += [f"    if {oneofs[oneof.name]} == {name!r}:", f"        v = {get}"]
        elif field.has_presence:
            lines += [f"    if m.HasField({name!r}):", f"        v = {get}"]
        elif field.cpp_type in _FLOATS:
            lines += [f"    v = {get}", "    if v or _neg_zero(v):"]
        else:
            lines += [f"    v = {get}", "    if v:"]
        lines.append(f"        out[{name!r}] = {value}")
    lines.append("    return out")
    exec("\n".join(lines), env)  # noqa: S102 - code generated from the descriptor above
    generated: Converter = env["conv"]
    generated.__qualname__ = f"message_to_dict[{descriptor.full_name}]"
    return generated


def _neg_zero(value: float) -> bool:
    return value == 0 and math.copysign(1.0, value) < 0


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
        if known is None and sub.full_name not in _generating:
            known = _compile_message(sub)  # now, so the generated code calls it directly
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
        return _identity  # already a bool
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
