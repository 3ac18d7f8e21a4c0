"""Registry of task families.

A task family is a distribution over tasks plus two ways to simulate it: a
gymnasium env (one task at a time, ``set_task``/``get_task``) and, where the
family supports it, a batched env that steps many (task, episode) simulations
in one vectorized call. Registering a family also registers its gymnasium env
under the ``metarl/`` namespace so ``gymnasium.make("metarl/<id>")`` works.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gymnasium

from ..plugins import import_prefix
from .base import BatchTaskEnv, TaskFamilyError
from .kwarg_check import check_kwargs, family_kwargs

NAMESPACE = "metarl"


class UnknownTaskFamilyError(KeyError):
    """Raised when a family id is not registered; the message suggests near matches."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class TaskFamilySpec:
    """Everything needed to build a family's envs.

    Entry points are ``"module:attribute"`` strings (imported lazily) or callables.
    """

    id: str
    env_entry_point: str | Callable[..., gymnasium.Env]
    batch_entry_point: str | Callable[..., BatchTaskEnv] | None
    max_episode_steps: int
    description: str = ""
    default_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def gym_id(self) -> str:
        """The id to pass to ``gymnasium.make``."""
        return f"{NAMESPACE}/{self.id}"

    @property
    def has_batch_env(self) -> bool:
        return self.batch_entry_point is not None

    def allowed_kwargs(self, batch: bool = False) -> list[str]:
        """Names of the family kwargs its gymnasium env (or batched env) accepts."""
        return list(family_kwargs(_resolve(self._entry_point(batch))).params)

    def check_kwargs(self, kwargs: Mapping[str, Any], batch: bool = False) -> None:
        """Raise :class:`TaskFamilyError` (one line) if a kwarg is unknown, of the wrong
        type or one metarl sets itself, for the gymnasium env (or the batched env)."""
        check_kwargs(self.id, _resolve(self._entry_point(batch)), kwargs)

    def _entry_point(self, batch: bool) -> str | Callable[..., Any]:
        if not batch:
            return self.env_entry_point
        if self.batch_entry_point is None:
            raise TaskFamilyError(f"task family '{self.id}' has no batched env; "
                                  "use sampler.backend: gym")
        return self.batch_entry_point

    def make_env(self, max_episode_steps: int | None = None, **kwargs: Any) -> gymnasium.Env:
        """A gymnasium env of this family, truncated at ``max_episode_steps``
        (default: the family's horizon). Bad kwargs raise :class:`TaskFamilyError`.

        ``render_mode`` and ``disable_env_checker`` go to ``gymnasium.make``."""
        make_options = {k: kwargs.pop(k) for k in ("render_mode", "disable_env_checker")
                        if k in kwargs}
        self.check_kwargs({**self.default_kwargs, **kwargs})
        try:
            return gymnasium.make(self.gym_id, max_episode_steps=max_episode_steps,
                                  **make_options, **kwargs)
        except (TypeError, ValueError) as err:
            raise TaskFamilyError(f"task family '{self.id}': {err}") from None

    def make_batch_env(self, num_envs: int, horizon: int | None = None, threads: int = 0,
                       **kwargs: Any) -> BatchTaskEnv:
        """A batched env stepping ``num_envs`` simulations at once (``threads``: 0 = all
        cores, where the env is multithreaded). Bad kwargs raise :class:`TaskFamilyError`."""
        kwargs = {**self.default_kwargs, **kwargs}
        self.check_kwargs(kwargs, batch=True)
        factory = _resolve(self._entry_point(batch=True))
        try:
            return factory(num_envs=num_envs, horizon=horizon or self.max_episode_steps,
                           threads=threads, **kwargs)
        except (TypeError, ValueError) as err:
            raise TaskFamilyError(f"task family '{self.id}': {err}") from None


_REGISTRY: dict[str, TaskFamilySpec] = {}
# id prefix -> why families with such ids are not registered here (an optional dependency
# is missing); looking one up gives that reason instead of "unknown task family"
_UNAVAILABLE: dict[str, str] = {}


def _resolve(entry_point: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(entry_point):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _canonical(family_id: str) -> str:
    prefix = NAMESPACE + "/"
    return family_id[len(prefix):] if family_id.startswith(prefix) else family_id


def register_task_family(
    id: str,
    *,
    env_entry_point: str | Callable[..., gymnasium.Env],
    batch_entry_point: str | Callable[..., BatchTaskEnv] | None = None,
    max_episode_steps: int,
    description: str = "",
    default_kwargs: dict[str, Any] | None = None,
    override: bool = False,
) -> TaskFamilySpec:
    """Register a task family and its gymnasium env ``metarl/<id>``.

    Args:
        id: versioned name such as ``"Navigation2D-v0"``.
        env_entry_point: gymnasium env class or ``"module:Class"``; the env must
            provide ``sample_tasks(n, rng)``, ``set_task(task)`` and ``get_task()``.
        batch_entry_point: batched env class (see :class:`BatchTaskEnv`), if any.
        max_episode_steps: default horizon.
        description: one line shown by ``metarl envs``.
        default_kwargs: keyword arguments passed to both envs unless overridden.
        override: replace an existing registration instead of raising.
    """
    canonical = _canonical(id)
    if "-v" not in canonical:
        raise ValueError(f"task family id {id!r} must be versioned, e.g. '{canonical}-v0'")
    if canonical in _REGISTRY and not override:
        raise ValueError(f"task family '{canonical}' is already registered "
                         "(pass override=True to replace it)")
    if max_episode_steps < 1:
        raise ValueError(f"task family '{canonical}': max_episode_steps must be >= 1, "
                         f"got {max_episode_steps}")
    spec = TaskFamilySpec(canonical, env_entry_point, batch_entry_point, max_episode_steps,
                          description, dict(default_kwargs or {}))
    _REGISTRY[canonical] = spec
    gym_id = spec.gym_id
    if gym_id in gymnasium.registry:
        del gymnasium.registry[gym_id]
    gymnasium.register(gym_id, entry_point=env_entry_point, max_episode_steps=max_episode_steps,
                       kwargs=dict(spec.default_kwargs))
    return spec


def note_unavailable_families(prefix: str, reason: str) -> None:
    """Say that families whose ids start with ``prefix`` exist but are not registered in
    this installation (``reason``, e.g. the install command of a missing optional package);
    :func:`get_task_family` then raises with ``reason`` for such an id."""
    _UNAVAILABLE[prefix] = reason


def get_task_family(family_id: str) -> TaskFamilySpec:
    """Look up a family by id (with or without the ``metarl/`` prefix).

    ``"my_module:MyFamily-v0"`` first imports ``my_module`` (which registers the
    family), like ``gymnasium.make``'s ``"module:EnvId"``; the current directory is
    searched too.
    """
    given = family_id
    family_id, problem = import_prefix(given)
    if problem:
        raise UnknownTaskFamilyError(f"task family {given!r}: {problem}")
    canonical = _canonical(family_id)
    try:
        return _REGISTRY[canonical]
    except KeyError:
        for prefix, reason in _UNAVAILABLE.items():
            if canonical.startswith(prefix) and canonical not in _REGISTRY:
                raise UnknownTaskFamilyError(
                    f"task family {family_id!r} is not available: {reason}") from None
        close = difflib.get_close_matches(canonical, list(_REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownTaskFamilyError(
            f"unknown task family {family_id!r}{hint} "
            f"(registered: {', '.join(sorted(_REGISTRY)) or 'none'})") from None


def list_task_families() -> list[TaskFamilySpec]:
    """All registered families, sorted by id."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
