"""Typed, documented config sections: the field helper and the validator behind them.

A section is a dataclass whose fields are declared with :func:`setting`: a default, a
one-line doc and an optional range or set of choices. :func:`build_section` checks a
mapping against it: unknown keys get a "did you mean" suggestion, and wrong types or
out-of-range values raise :class:`ConfigError` naming the key path, the value and what is
allowed. Torch-free, so that config errors are reported before anything heavy is imported.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any, Iterable, Mapping

from .errors import BadInputError


class ConfigError(BadInputError, ValueError):
    """A configuration problem, with a message that names the key path."""


def setting(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None,
            choices: Iterable[Any] | None = None) -> Any:
    """A documented dataclass field with its allowed range (numbers) or choices (strings)."""
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": tuple(choices) if choices is not None else None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def suggest(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def describe_type(tp: Any) -> str:
    """A type as the error messages and the key reference name it."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {describe_type(typing.get_args(tp)[0])}s"
    if origin is dict:
        return "a mapping"
    return {int: "integer", float: "number", str: "string", bool: "boolean (true/false)",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def describe_range(meta: Mapping[str, Any]) -> str:
    """``">= 1, <= 100"`` or ``"one of 'a', 'b'"``: what a field allows besides its type."""
    parts = [f"{symbol} {meta[key]:g}" if isinstance(meta[key], float) else f"{symbol} {meta[key]}"
             for key, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
             if meta.get(key) is not None]
    if meta.get("choices"):
        parts.insert(0, "one of " + ", ".join(repr(c) for c in meta["choices"]))
    return ", ".join(parts)


def coerce(path: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against type ``tp`` and the range in ``meta``; return it typed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(path, value, arg, meta)
            except ConfigError as err:
                errors.append((arg, err))
        # a string is most likely a misspelt choice (train.threads: autoo); else the first
        if isinstance(value, str):
            for arg, err in errors:
                if arg is str:
                    numbers = " (or an integer)" if int in args else ""
                    raise ConfigError(f"{err}{numbers}") from None
        raise errors[0][1]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {describe_type(tp)}, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        if not value:
            raise ConfigError(f"{path}: expected a non-empty list, got []")
        return [coerce(f"{path}[{i}]", v, item_tp, meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(f"{path}: keys must be strings, got {key!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected a boolean (true/false), got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
    check_range(path, value, meta)
    return value


def check_range(path: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is within ``meta``'s bounds or choices."""
    # Choices name strings and bounds limit numbers, so a key that is either (train.threads:
    # `auto` or a number) gets each check on the matching kind of value.
    if isinstance(value, str):
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{path}: {value!r} is not allowed; choose one of {allowed}"
                              + suggest(value, choices))
        return
    bounds = [("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
              ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)]
    for key, symbol, ok in bounds:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"{path}: {value!r} is out of range; must be {symbol} {bound}")


def show_key(key: Any) -> str:
    """A key as written in a key path; quoted when it is not a plain printable word,
    so an error message stays on one line."""
    text = str(key)
    return text if isinstance(key, str) and text and text.isprintable() and " " not in text \
        else repr(key)


def build_section(name: str, cls: type, data: Any,
                  unknown: typing.Callable[[str], str] | None = None,
                  fixed: Mapping[str, Any] | None = None) -> Any:
    """Validate the mapping ``data`` into dataclass ``cls``; ``name`` prefixes key paths.

    ``unknown(key)`` may explain a key ``cls`` lacks (e.g. that it belongs to another
    algorithm); ``fixed`` are values set without checks (e.g. the algorithm's name).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in (fixed or {})}
    values = dict(fixed or {})
    for key, value in data.items():
        if key not in fields:
            why = unknown(str(key)) if unknown is not None else ""
            raise ConfigError(f"{name}.{show_key(key)}: unknown key{why}"
                              f"{suggest(str(key), fields)} (allowed: {', '.join(fields)})")
        values[key] = coerce(f"{name}.{key}", value, hints[key], dict(fields[key].metadata))
    return cls(**values)


def field_rows(cls: type) -> list[tuple[str, str, Any, str, str]]:
    """(key, type, default, range, doc) of every field of section dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((f.name, describe_type(hints[f.name]), default,
                     describe_range(f.metadata), f.metadata.get("doc", "")))
    return rows


def check_settings(obj: Any, prefix: str) -> None:
    """Check every field of a section instance built in code (not from YAML) against its
    type and range, then its ``validate(prefix)`` if it has one; raise :class:`ConfigError`."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        coerce(f"{prefix}{f.name}", getattr(obj, f.name), hints[f.name], f.metadata)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(prefix)
