"""The algorithm registry: ``algo.name`` -> the algorithm's config dataclass and builder.

Built-in algorithms are registered here, by module path, so that looking one up (config
validation, ``metarl algos``) imports no torch. ``algo.name: "my_module:my_algo"``
imports ``my_module`` first, which registers ``my_algo`` with :func:`register_algorithm`,
as ``env.id: "my_module:MyFamily-v0"`` does for task families.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..plugins import import_prefix
from ..schema import ConfigError

if TYPE_CHECKING:
    from .base import BuildContext, MetaLearner


@dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm.

    Attributes:
        name: the value of ``algo.name``.
        config: dataclass of its ``algo`` keys (fields declared with
            :func:`metarl.schema.setting`; a ``name`` field first). May define
            ``validate(prefix)`` for checks across keys.
        build: ``BuildContext -> MetaLearner``, or ``"module:function"`` imported on use.
        description: one line for ``metarl algos`` and the key reference.
        unused: keys of other sections the algorithm never reads (``"policy"`` for a whole
            section, ``"sampler.episodes_per_task"`` for one key), each with the reason;
            setting one is an error.
        refused: values of other sections' keys the algorithm cannot run with, each with
            the reason (``{"sampler.backend": {"ray": "..."}}``); choosing one is an error
            when the config is read, before anything is built.
        torch_threads: torch threads for ``train.threads: auto``; None = every usable CPU.
        meta_learner: False for a baseline that ``metarl eval`` does not evaluate on its own
            (plain TRPO: it is fine-tuned through ``--baselines``).
        best_by: the ``progress.csv`` column of the post-adaptation training return that
            ``metarl eval --checkpoint best`` ranks iterations by; ``{K}`` stands for the
            largest logged number. None: the algorithm has no such return.
    """

    name: str
    config: type
    build: Callable[["BuildContext"], "MetaLearner"] | str
    description: str = ""
    unused: Mapping[str, str] = field(default_factory=dict)
    torch_threads: int | None = None
    meta_learner: bool = True
    best_by: str | None = None
    best_by_hint: str = ""  # when the best_by column is logged, if not always
    refused: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)

    def builder(self) -> Callable[["BuildContext"], "MetaLearner"]:
        """The build function (imported now if it was given as ``"module:function"``)."""
        if callable(self.build):
            return self.build
        module, _, attr = self.build.partition(":")
        return getattr(importlib.import_module(module), attr)

    def keys(self) -> list[str]:
        """The ``algo`` keys of this algorithm."""
        return [f.name for f in dataclasses.fields(self.config)]


_REGISTRY: dict[str, AlgorithmSpec] = {}


def register_algorithm(name: str, *, config: type,
                       build: Callable[["BuildContext"], "MetaLearner"] | str,
                       description: str = "", unused: Mapping[str, str] | None = None,
                       torch_threads: int | None = None, meta_learner: bool = True,
                       best_by: str | None = None, best_by_hint: str = "",
                       refused: Mapping[str, Mapping[Any, str]] | None = None,
                       override: bool = False) -> AlgorithmSpec:
    """Make ``algo.name: <name>`` train and evaluate with ``build`` (see :class:`AlgorithmSpec`)."""
    if not name or ":" in name or not name.isprintable():
        raise ValueError(f"algorithm name {name!r}: use a plain word such as 'my_algo'")
    if name in _REGISTRY and not override:
        raise ValueError(f"algorithm {name!r} is already registered (pass override=True "
                         "to replace it)")
    if not dataclasses.is_dataclass(config) or "name" not in {f.name for f in
                                                              dataclasses.fields(config)}:
        raise ValueError(f"algorithm {name!r}: config must be a dataclass with a 'name' field")
    for key in refused or {}:
        section, _, attr = key.partition(".")
        if not section or not attr or "." in attr:
            raise ValueError(f"algorithm {name!r}: refused key {key!r} must be 'section.key'")
    spec = AlgorithmSpec(name, config, build, description, dict(unused or {}), torch_threads,
                         meta_learner, best_by, best_by_hint,
                         {k: dict(v) for k, v in (refused or {}).items()})
    _REGISTRY[name] = spec
    return spec


def get_algorithm(name: str) -> AlgorithmSpec:
    """The algorithm ``algo.name`` names; ``"module:name"`` imports ``module`` first."""
    given = name
    name, problem = import_prefix(given)
    if problem:
        raise ConfigError(f"algo.name: {given!r}: {problem}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"algo.name: {name!r} is not a registered algorithm{hint} "
                          f"(registered: {', '.join(sorted(_REGISTRY))}; add one with "
                          "metarl.algos.register_algorithm, and name it 'module:name')") from None


def list_algorithms() -> list[AlgorithmSpec]:
    """Every registered algorithm, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def owners_of(key: str) -> list[str]:
    """Names of the registered algorithms that have ``algo.<key>``."""
    return [s.name for s in list_algorithms() if key in s.keys()]


def _register_builtins() -> None:
    from .maml.config import MAMLTRPOConfig, MixtureTRPOConfig
    from .pearl.config import PEARLConfig
    from .promp.config import ProMPConfig
    from .rl2.config import RL2Config

    register_algorithm(
        "maml_trpo", config=MAMLTRPOConfig, build="metarl.algos.maml.learner:build_maml_trpo",
        description="MAML with a TRPO meta-optimizer (Finn et al. 2017), batched over tasks",
        best_by="meta_train/return/adapt_{K}", override=True)
    register_algorithm(
        "trpo", config=MixtureTRPOConfig, build="metarl.algos.maml.learner:build_trpo",
        description="TRPO on the task mixture, no adaptation in training: the MAML paper's "
                    "pretrained and (with env.task_in_observation) oracle baselines",
        meta_learner=False, override=True)
    register_algorithm(
        "promp", config=ProMPConfig, build="metarl.algos.promp.learner:build_promp",
        description="ProMP: MAML with the low-variance curvature inner step and a clipped, "
                    "KL-penalised outer objective (Rothfuss et al. 2019), batched over tasks",
        best_by="meta_train/return/adapt_{K}", override=True)
    register_algorithm(
        "rl2", config=RL2Config, build="metarl.algos.rl2.learner:build_rl2",
        description="RL²: a GRU policy that adapts within trials of several episodes of a task "
                    "(Duan et al. 2016), trained with PPO or TRPO; all trials step together",
        unused={"policy": "RL²'s GRU policy is set under algo (hidden_size, init_std, "
                          "min_std)",
                "sampler.episodes_per_task": "RL² samples algo.trials_per_task trials of "
                                             "algo.episodes_per_trial episodes per task"},
        refused={"sampler.backend": {
            "ray": "RL² rolls out its trials in this process through the family's batched "
                   "env (its hidden states live there); use batch, gym or auto"}},
        # the GRU's update is hundreds of [trials, 64] products per sequence, one per step:
        # on 2 busy cores a second torch thread made a forward/backward 100x slower
        torch_threads=1, best_by="meta_train/return/adapt_{K}", override=True)
    pearl_nets = "PEARL's networks are set under algo (hidden_sizes, encoder_hidden_sizes)"
    register_algorithm(
        "pearl", config=PEARLConfig, build="metarl.algos.pearl.learner:build_pearl",
        description="PEARL: probabilistic context encoder + soft actor-critic (Rakelly et al. "
                    "2019), off-policy",
        unused={"policy": pearl_nets,
                "sampler.episodes_per_task": "PEARL collects by steps (algo.num_steps_prior, "
                                             "num_extra_rl_steps_posterior, ...)"},
        # thousands of small matrix products per iteration: splitting them across threads
        # costs more than it saves, and spinning OpenMP threads lose time slices to any other
        # busy process (docs/performance.md, Threads)
        torch_threads=1, best_by="meta_train/return/posterior",
        best_by_hint="logged when algo.num_steps_posterior + algo.num_extra_rl_steps_posterior "
                     "> 0", override=True)


_register_builtins()
