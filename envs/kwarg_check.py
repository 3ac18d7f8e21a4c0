"""Check a task family's kwargs against its entry point's signature before construction.

The family's kwargs are the keyword parameters of the env's constructor (for MuJoCo
families, of the :class:`~metarl.envs.mujoco_env.MujocoTaskFamily` subclass the env
names in ``family_cls``). An unknown name or a value that does not fit the annotation
raises :class:`TaskFamilyKwargError` with a one-line message; range checks stay with
the family's constructor (``ValueError``).
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .base import TaskFamilyError

# Keywords metarl passes to the envs itself (value: where a config sets them), never
# family kwargs: in env.kwargs they would collide with metarl's own value.
RESERVED: dict[str, str | None] = {
    "num_envs": None,
    "horizon": "env.horizon",
    "max_episode_steps": "env.horizon",
    "threads": "sampler.threads",
    "render_mode": None,
    "disable_env_checker": None,
}


class TaskFamilyKwargError(TaskFamilyError):
    """A family kwarg is unknown or of the wrong type; ``kwarg`` is its name."""

    def __init__(self, message: str, kwarg: Any = None) -> None:  # None: unpickled
        super().__init__(message)
        self.kwarg = kwarg


@dataclass(frozen=True)
class KwargParam:
    """One family kwarg: its annotation (``inspect.Parameter.empty`` if none) and default."""

    hint: Any
    default: Any


@dataclass(frozen=True)
class FamilyKwargs:
    """The kwargs an entry point accepts; ``open``: it also takes ``**kwargs`` we cannot
    follow, so names outside ``params`` are passed on unchecked."""

    params: dict[str, KwargParam]
    open: bool


def _signature_kwargs(func: Callable[..., Any], hints_of: Callable[..., Any],
                      skip_self: bool) -> FamilyKwargs:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        return FamilyKwargs({}, True)
    try:
        hints = typing.get_type_hints(hints_of)
    except Exception:  # unresolvable string annotations: check the plain ones, accept the rest
        hints = {}
    if skip_self and params:
        params = params[1:]
    found = {p.name: KwargParam(hints.get(p.name, inspect.Parameter.empty
                                          if isinstance(p.annotation, str) else p.annotation),
                                p.default)
             for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in RESERVED}
    return FamilyKwargs(found, any(p.kind == p.VAR_KEYWORD for p in params))


def family_kwargs(entry: Callable[..., Any]) -> FamilyKwargs:
    """The family kwargs ``entry`` (an env class or factory) accepts, reserved names left out.

    An entry with a ``family_cls`` (MuJoCo envs) takes that class's ``__init__`` keywords,
    following ``**kwargs`` to its bases as MuJoCo families forward them; any other
    ``**kwargs`` leaves the entry open.
    """
    family_cls = getattr(entry, "family_cls", None)
    if not isinstance(family_cls, type):
        is_class = isinstance(entry, type)
        return _signature_kwargs(entry, entry.__init__ if is_class else entry, skip_self=False)
    params: dict[str, KwargParam] = {}
    for klass in family_cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        found = _signature_kwargs(init, init, skip_self=True)
        params.update({k: v for k, v in found.params.items() if k not in params})
        if not found.open:
            return FamilyKwargs(params, False)
    return FamilyKwargs(params, True)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits ``hint``; annotations this does not know accept anything."""
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in args)
    is_bool = isinstance(value, (bool, np.bool_))  # YAML true/false is no number here
    if hint is bool:
        return is_bool
    if hint is int:
        return isinstance(value, numbers.Integral) and not is_bool
    if hint is float:
        return isinstance(value, numbers.Real) and not is_bool
    if hint is str:
        return isinstance(value, str)
    if hint is None or hint is type(None):
        return value is None
    container = origin or hint
    if container is tuple:  # YAML gives lists where the constructor wants tuples
        if not isinstance(value, (list, tuple)):
            return False
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return all(_fits(v, args[0]) for v in value) if args else True
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if container in (list, collections.abc.Sequence):
        return isinstance(value, (list, tuple)) and (not args
                                                     or all(_fits(v, args[0]) for v in value))
    if container in (dict, collections.abc.Mapping):
        return isinstance(value, collections.abc.Mapping) and (
            len(args) != 2 or all(_fits(v, args[1]) for v in value.values()))
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    words = {float: "a number", int: "an integer", bool: "true or false", str: "a string",
             type(None): "null", None: "null", tuple: "a list", list: "a list",
             collections.abc.Sequence: "a list", dict: "a mapping",
             collections.abc.Mapping: "a mapping"}
    return words.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _show(value: Any) -> str:
    """``value`` on one line, at most 60 characters (arrays print over several)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_kwargs(family_id: str, entry: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`TaskFamilyKwargError` for the first kwarg ``entry`` does not accept:
    reserved, unknown (with a near match and the allowed names) or of the wrong type."""
    spec = family_kwargs(entry)
    allowed = f"(allowed: {', '.join(spec.params) or 'none'})"
    for name, value in kwargs.items():
        prefix = f"task family '{family_id}': kwarg {name!r}"
        if name in RESERVED:
            source = f" (from {RESERVED[name]})" if RESERVED[name] else ""
            raise TaskFamilyKwargError(f"{prefix} is set by metarl itself{source}, not a family "
                                       f"kwarg {allowed}", name)
        param = spec.params.get(name)
        if param is None:
            if spec.open and isinstance(name, str):
                continue
            near = _suggest(name, list(spec.params)) if isinstance(name, str) else ""
            raise TaskFamilyKwargError(f"task family '{family_id}': unknown kwarg {name!r}"
                                       f"{near} {allowed}", name)
        if _fits(value, param.hint) or (value is None and param.default is None):
            continue
        hint = param.hint
        expected = _describe(hint)
        if typing.get_origin(hint) is typing.Literal:
            choices = [a for a in typing.get_args(hint) if isinstance(a, str)]
            hint_text = _suggest(value, choices) if isinstance(value, str) else ""
        else:
            hint_text = ""
            expected += f" ({_type_name(hint)})"
        raise TaskFamilyKwargError(f"{prefix} expects {expected}, got {_show(value)} "
                                   f"({type(value).__name__}){hint_text}", name)
