"""Canonical encodings of the route table: YAML for people and goldens, JSON for the wire.

Both encodings come from one plain-data form (:func:`encode`): every dataclass field, in
declaration order, enums as their values, tuples as lists. Nothing is omitted, so two
equal tables always encode to the same bytes and ``load_yaml(dump_yaml(t)) == t``.

The version of a table is the first 16 hex digits of the SHA-256 of its canonical JSON
with the version field emptied (:func:`stamp`): the same table always gets the same
version, whichever process or machine produced it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import yaml

from mcgw.errors import McgwError
from mcgw.ir import table

VERSION_LENGTH = 16
"""Hex digits of the SHA-256 kept as a table version."""

T = TypeVar("T")


class DecodeError(McgwError):
    """The encoded table does not have the shape of a :class:`table.RouteTable`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '<root>'}: {message}")
        self.path = path
        self.message = message


def encode(value: Any) -> Any:
    """Turn a dataclass tree into plain data: dicts in field order, lists, scalars.

    Works for any frozen dataclass tree (the translator uses it for statuses too).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def dump_json(route_table: table.RouteTable) -> bytes:
    """Canonical JSON: compact, UTF-8, fields in declaration order."""
    return json.dumps(
        encode(route_table), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def dump_yaml(route_table: table.RouteTable) -> str:
    """Canonical YAML, block style, fields in declaration order."""
    return to_yaml(encode(route_table))


def to_yaml(data: Any) -> str:
    """Dump plain data as block-style YAML with keys in their given order."""
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )


def load_yaml(text: str) -> table.RouteTable:
    """Parse what :func:`dump_yaml` wrote.

    Raises:
        DecodeError: not YAML, or a key is unknown, missing (without a default) or of
            the wrong type; the message names the path.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DecodeError("", f"not YAML: {exc}") from exc
    return decode(table.RouteTable, data)


def load_json(raw: bytes) -> table.RouteTable:
    """Parse what :func:`dump_json` wrote.

    Raises:
        DecodeError: as :func:`load_yaml`.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DecodeError("", f"not JSON: {exc}") from exc
    return decode(table.RouteTable, data)


def stamp(route_table: table.RouteTable) -> table.RouteTable:
    """Return the table with ``version`` set to the hash of its canonical JSON."""
    return dataclasses.replace(route_table, version=version_of(route_table))


def version_of(route_table: table.RouteTable) -> str:
    """The version :func:`stamp` would give: independent of the current version field."""
    unversioned = dataclasses.replace(route_table, version="")
    return hashlib.sha256(dump_json(unversioned)).hexdigest()[:VERSION_LENGTH]


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """Build a dataclass of type ``cls`` from plain data, strictly.

    Raises:
        DecodeError: unknown or missing key, wrong type.
    """
    result: T = _decode(cls, data, path)
    return result


def _decode(tp: Any, data: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            return _decode(option, data, path)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(data, list):
            raise DecodeError(path, f"expected a list, got {type(data).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item, f"{path}[{i}]") for i, item in enumerate(data))
        if len(args) != len(data):
            raise DecodeError(path, f"expected {len(args)} items, got {len(data)}")
        pairs = enumerate(zip(args, data, strict=True))
        return tuple(_decode(a, item, f"{path}[{i}]") for i, (a, item) in pairs)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, data, path)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise DecodeError(path, f"{data!r} is not one of: {allowed}") from None
    if tp is bool:
        if not isinstance(data, bool):
            raise DecodeError(path, f"expected true/false, got {data!r}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise DecodeError(path, f"expected an integer, got {data!r}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise DecodeError(path, f"expected a number, got {data!r}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise DecodeError(path, f"expected a string, got {data!r}")
        return data
    raise DecodeError(path, f"cannot decode type {tp!r}")  # a table.py type we do not know


def _decode_dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise DecodeError(path, f"expected a mapping for {cls.__name__}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise DecodeError(path, f"unknown field(s) for {cls.__name__}: {', '.join(unknown)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _decode(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(sub, f"required field of {cls.__name__} is missing")
    return cls(**kwargs)
