"""Experiment configuration: YAML files validated into typed dataclasses.

A config has six sections (``env``, ``policy``, ``sampler``, ``algo``, ``train``,
``logging``). Every field carries a one-line doc, its allowed range or choices,
and is checked on load: unknown keys get a "did you mean" suggestion, and wrong
types or out-of-range values raise :class:`ConfigError` naming the key path, the
value and what is allowed. ``--set section.key=value`` overrides are parsed as
YAML scalars and go through the same checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import BadInputError
from .yaml_io import YAMLLimitError, load_yaml


# `metarl eval --step-grid` default: the step sizes tried when fine-tuning baselines
DEFAULT_STEP_GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8)


class ConfigError(BadInputError, ValueError):
    """A configuration problem, with a message that names the key path."""


def _field(default: Any, doc: str, *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None,
           choices: Iterable[Any] | None = None) -> Any:
    meta = {"doc": doc, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": tuple(choices) if choices is not None else None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EnvConfig:
    id: str = _field("Navigation2D-v0", "Registered task family id (see `metarl envs`).")
    horizon: int | None = _field(None, "Steps per episode; null uses the family's default.", ge=1,
                              le=10**7)
    kwargs: dict[str, Any] = _field({}, "Keyword arguments of the family (reward terms, task ranges).")
    task_in_observation: bool = _field(False, "Append the task's parameters to every observation "
                                       "(the MAML paper's oracle baseline).")


@dataclass
class PolicyConfig:
    hidden_sizes: list[int] = _field([100, 100], "Hidden layer widths of the Gaussian MLP.", ge=1,
                                   le=65536)
    activation: str = _field("relu", "Hidden-layer nonlinearity.", choices=("relu", "tanh"))
    init_std: float = _field(1.0, "Initial standard deviation of the Gaussian policy.", gt=0,
                            le=1e3)
    min_std: float = _field(1e-6, "Lower bound on the standard deviation.", gt=0, le=1e3)


@dataclass
class SamplerConfig:
    backend: str = _field("auto", "Rollout backend: batch (the family's batched env, one "
                          "vectorized call per step), gym (gymnasium SyncVectorEnv of its "
                          "gymnasium env), auto (batch when the family has one, else gym), "
                          "ray (slices of the tasks on Ray actors; needs the ray extra).",
                          choices=("auto", "batch", "gym", "ray"))
    threads: int = _field(0, "Threads stepping MuJoCo batched envs (0 = the CPUs this process "
                          "may use; with backend ray, 0 = worker_cpus per worker).", ge=0,
                          le=4096)
    num_workers: int = _field(2, "Ray actors the tasks of each sampling call are split across "
                              "(backend ray).", ge=1, le=4096)
    worker_cpus: int = _field(1, "CPUs each Ray actor reserves (backend ray).", ge=1, le=4096)
    ray_address: str | None = _field(None, "Existing Ray cluster to join (host:port, "
                                     "ray://host:port or auto); null starts a local Ray bound "
                                     "to loopback (backend ray).")
    episodes_per_task: int = _field(20, "Episodes per task per adaptation step in training.", ge=1,
                                   le=10**6)
    eval_episodes_per_task: int = _field(40, "Episodes per task per step in meta-evaluation.", ge=1,
                                        le=10**6)


@dataclass
class AlgoConfig:
    name: str = _field("maml_trpo", "Algorithm: maml_trpo, pearl (probabilistic context, "
                       "off-policy; its keys are the ones documented 'PEARL:'), or trpo (one "
                       "policy trained on the mixture of tasks without adaptation: the paper's "
                       "pretrained and oracle baselines).", choices=("maml_trpo", "pearl", "trpo"))
    meta_batch_size: int = _field(20, "Tasks sampled per meta-iteration (PEARL: tasks per "
                                  "gradient step, the reference's meta_batch).", ge=1, le=10**6)
    inner_steps: int = _field(1, "Inner-loop policy-gradient steps during meta-training.", ge=1,
                             le=100)
    inner_step_size: float = _field(0.1, "Inner-loop step size alpha.", gt=0, le=1e3)
    first_order: bool = _field(False, "Drop second-order terms of the meta-gradient (FOMAML).")
    gamma: float = _field(0.99, "Discount factor.", gt=0, le=1)
    gae_lambda: float = _field(1.0, "GAE lambda (1.0 = Monte-Carlo advantages).", ge=0, le=1)
    normalize_advantages: bool = _field(True, "Standardize advantages per task.")
    baseline_reg: float = _field(1e-5, "Ridge coefficient of the linear feature baseline.", gt=0,
                                 le=1e6)
    max_kl: float = _field(0.01, "TRPO trust region: max mean KL per meta-update.", gt=0,
                           le=10)
    fisher: str = _field("gauss_newton", "Fisher-vector products of the meta-step's KL: exact "
                         "(double backprop), gauss_newton (same values, jvp/vjp), first_order "
                         "(ignores the inner step's Jacobian; approximate).",
                         choices=("exact", "gauss_newton", "first_order"))
    fisher_subsample: float = _field(1.0, "Share of each task's episodes used for Fisher-vector "
                                     "products (the gradient and line search use all).",
                                     gt=0, le=1)
    cg_iters: int = _field(10, "Conjugate-gradient iterations.", ge=1, le=10**4)
    cg_damping: float = _field(1e-5, "Damping added to the Fisher-vector product.", ge=0,
                               le=1e6)
    ls_max_steps: int = _field(15, "Maximum backtracking line-search steps.", ge=1, le=1000)
    ls_backtrack_ratio: float = _field(0.8, "Step shrink factor per line-search step.", gt=0, lt=1)
    eval_step_sizes: list[float] = _field(
        [0.1, 0.05], "Evaluation step sizes: step k uses entry min(k, len-1).", gt=0, le=1e3)
    # PEARL (algo.name: pearl). Defaults are the reference code's (github.com/katerakelly/oyster,
    # configs/default.py) and equal metarl.algos.pearl.PEARLConfig's (tests/test_pearl_cli.py).
    # PEARL also reads gamma, meta_batch_size and policy.hidden_sizes (actor, Q and V widths).
    latent_size: int = _field(5, "PEARL: size of the task latent z.", ge=1, le=4096)
    encoder_hidden_sizes: list[int] = _field([200, 200, 200], "PEARL: context encoder hidden "
                                             "layer widths.", ge=1, le=65536)
    use_next_obs_in_context: bool = _field(False, "PEARL: context transitions include s' (for "
                                           "tasks that differ in dynamics).")
    lr: float = _field(3e-4, "PEARL: Adam learning rate of every network.", gt=0, le=10)
    tau: float = _field(0.005, "PEARL: Polyak rate of the target V network.", gt=0, le=1)
    reward_scale: float = _field(5.0, "PEARL: rewards are multiplied by this in the Bellman "
                                 "target (the inverse entropy temperature).", gt=0, le=1e6)
    kl_lambda: float = _field(0.1, "PEARL: weight of KL(q(z|c) || N(0, I)) in the encoder's "
                              "loss.", ge=0, le=1e6)
    policy_mean_reg: float = _field(1e-3, "PEARL: penalty on the actor's squared pre-tanh mean.",
                                    ge=0, le=1e6)
    policy_std_reg: float = _field(1e-3, "PEARL: penalty on the actor's squared log-std.", ge=0,
                                   le=1e6)
    batch_size: int = _field(256, "PEARL: transitions per task in each actor-critic batch.", ge=1,
                             le=10**7)
    embedding_batch_size: int = _field(64, "PEARL: context transitions per task given to the "
                                       "encoder.", ge=1, le=10**7)
    num_train_tasks: int = _field(100, "PEARL: size of the fixed set of training tasks.", ge=1,
                                  le=10**6)
    num_test_tasks: int = _field(30, "PEARL: size of the fixed set of held-out tasks meta-tested "
                                 "during training.", ge=1, le=10**6)
    num_tasks_sample: int = _field(5, "PEARL: training tasks that collect data each iteration.",
                                   ge=1, le=10**6)
    num_initial_steps: int = _field(2000, "PEARL: steps per training task collected with "
                                    "z ~ prior before the first gradient step.", ge=0, le=10**9)
    num_steps_prior: int = _field(400, "PEARL: steps per sampled task with z ~ prior (replay "
                                  "and encoder buffers).", ge=0, le=10**9)
    num_steps_posterior: int = _field(0, "PEARL: steps per sampled task with z ~ posterior "
                                      "(replay and encoder buffers).", ge=0, le=10**9)
    num_extra_rl_steps_posterior: int = _field(400, "PEARL: steps per sampled task with "
                                               "z ~ posterior for the replay buffer only.", ge=0,
                                               le=10**9)
    num_train_steps_per_itr: int = _field(2000, "PEARL: gradient steps per iteration.", ge=0,
                                          le=10**9)
    replay_buffer_size: int = _field(1_000_000, "PEARL: capacity of each task's replay "
                                     "buffers.", ge=1, le=10**9)
    meta_test_trajectories: int = _field(3, "PEARL: trajectories per held-out task in the "
                                         "meta-test during training (k = 0 .. N-1 context "
                                         "trajectories).", ge=1, le=1000)
    eval_every: int = _field(10, "PEARL: meta-test the held-out tasks every N iterations "
                             "(meta_test/return/adapt_k; 0 = never).", ge=0, le=10**9)


@dataclass
class TrainConfig:
    iterations: int = _field(100, "Number of meta-iterations.", ge=1, le=10**9)
    seed: int = _field(0, "Seed for tasks, actions and initialisation.", ge=0,
                       le=2**63 - 1)
    device: str = _field("auto", "Compute device; auto picks cuda when available.",
                         choices=("auto", "cpu", "cuda"))
    checkpoint_every: int = _field(10, "Write a checkpoint every N iterations (and at the end).", ge=1,
                                  le=10**9)
    runs_root: str = _field("runs", "Directory under which run directories are created.")
    max_skipped_updates: int = _field(5, "Stop the run (with a checkpoint) after this many "
                                      "meta-updates in a row were skipped for NaN/Inf.", ge=1,
                                      le=10**6)
    threads: int | str = _field("auto", "CPU threads of the update (torch/OpenMP): auto (1 for "
                                "PEARL, whose small matrix products do not split well; else "
                                "the CPUs this process may use) or a number; MuJoCo's come "
                                "from sampler.threads.", ge=1, le=4096, choices=("auto",))


@dataclass
class LoggingConfig:
    tensorboard: bool = _field(True, "Write TensorBoard event files into the run directory.")
    console: bool = _field(True, "Print one progress line per iteration.")


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, suitable for ``yaml.safe_dump``."""
        return dataclasses.asdict(self)


_SECTION_TYPES = typing.get_type_hints(Config)


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}s"
    if origin is dict:
        return "a mapping"
    return {int: "integer", float: "number", str: "string", bool: "boolean (true/false)",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(path: str, value: Any, tp: Any, meta: dict[str, Any]) -> Any:
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
                return _coerce(path, value, arg, meta)
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
            raise ConfigError(f"{path}: expected {_describe(tp)}, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        if not value:
            raise ConfigError(f"{path}: expected a non-empty list, got []")
        return [_coerce(f"{path}[{i}]", v, item_tp, meta) for i, v in enumerate(value)]
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
    _check_range(path, value, meta)
    return value


def _check_range(path: str, value: Any, meta: dict[str, Any]) -> None:
    # Choices name strings and bounds limit numbers, so a key that is either (train.threads:
    # `auto` or a number) gets each check on the matching kind of value.
    if isinstance(value, str):
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{path}: {value!r} is not allowed; choose one of {allowed}"
                              + _suggest(value, choices))
        return
    bounds = [("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
              ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)]
    for key, symbol, ok in bounds:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            raise ConfigError(f"{path}: {value!r} is out of range; must be {symbol} {bound}")


def _show(key: Any) -> str:
    """A key as written in a key path; quoted when it is not a plain printable word,
    so an error message stays on one line."""
    text = str(key)
    return text if isinstance(key, str) and text and text.isprintable() and " " not in text \
        else repr(key)


def _build_section(name: str, cls: type, data: Any) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{name}.{_show(key)}: unknown key{_suggest(str(key), fields)} "
                              f"(allowed: {', '.join(fields)})")
        values[key] = _coerce(f"{name}.{key}", value, hints[key], dict(fields[key].metadata))
    return cls(**values)


def config_from_dict(data: Any, source: str = "config") -> Config:
    """Validate a nested mapping into a :class:`Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level: expected a mapping with sections "
                          f"{', '.join(_SECTION_TYPES)}, got {type(data).__name__}")
    sections = {}
    for name, value in data.items():
        if name not in _SECTION_TYPES:
            raise ConfigError(f"{_show(name)}: unknown section"
                              f"{_suggest(str(name), _SECTION_TYPES)} "
                              f"(allowed: {', '.join(_SECTION_TYPES)})")
        sections[name] = _build_section(name, _SECTION_TYPES[name], value)
    cfg = Config(**sections)
    _check_consistency(cfg)
    return cfg


def _check_consistency(cfg: Config) -> None:
    if cfg.policy.min_std > cfg.policy.init_std:
        raise ConfigError(f"policy.min_std: {cfg.policy.min_std} must not exceed "
                          f"policy.init_std ({cfg.policy.init_std})")
    if cfg.algo.name == "pearl":
        _check_pearl(cfg)


def _check_pearl(cfg: Config) -> None:
    """Settings PEARL needs together (the reference's schedule must feed the encoder)."""
    algo = cfg.algo
    if cfg.policy.activation != "relu":
        raise ConfigError(f"policy.activation: PEARL's networks use relu (as the reference "
                          f"code), got {cfg.policy.activation!r}")
    problem = pearl_schedule_problem(algo, "algo.")
    if problem:
        raise ConfigError(problem)


def pearl_schedule_problem(settings: Any, prefix: str) -> str | None:
    """Why PEARL's settings (``algo`` section or ``PEARLConfig``) cannot work together, with
    keys named ``prefix + key``; None when they can (the schedule must feed the encoder)."""
    s, p = settings, prefix
    if s.num_tasks_sample > s.num_train_tasks:
        return (f"{p}num_tasks_sample: {s.num_tasks_sample} must not exceed "
                f"{p}num_train_tasks ({s.num_train_tasks})")
    if s.num_initial_steps == 0 and s.num_steps_prior + s.num_steps_posterior == 0:
        return (f"{p}num_initial_steps: with 0 initial steps, {p}num_steps_prior or "
                f"{p}num_steps_posterior must be > 0 (the encoder needs context)")
    if s.num_extra_rl_steps_posterior > 0 and s.num_steps_prior + s.num_steps_posterior == 0:
        return (f"{p}num_extra_rl_steps_posterior: needs {p}num_steps_prior or "
                f"{p}num_steps_posterior > 0 (the encoder buffer is refilled only by those, "
                "and posterior z is inferred from it)")
    return None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: key must look like section.key "
                          f"(sections: {', '.join(_SECTION_TYPES)})")
    try:
        value = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
    except YAMLLimitError as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: "
                          f"{_yaml_problem(err)}") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw config mapping (before validation).

    Keys deeper than ``section.key`` address entries of mapping-valued keys,
    e.g. ``env.kwargs.distance=squared``.
    """
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{'.'.join(parts[:depth + 1])}' is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A one-line description of a YAML syntax error, with its position."""
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None), apply overrides, validate."""
    data: Any = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        except YAMLLimitError as err:
            raise ConfigError(str(err)) from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte "
                              f"{err.start})") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the config: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from None
    if data is None:  # an empty file
        data = {}
    if isinstance(data, dict):  # anything else is reported by config_from_dict below
        data = apply_overrides(data, overrides)
    try:
        return config_from_dict(data, source)
    except ConfigError as err:
        raise ConfigError(f"{err} [{source}]") from None


def describe_fields() -> list[tuple[str, Any, str]]:
    """(key path, default, doc) for every config key; used by docs and tests."""
    rows = []
    for name, cls in _SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{name}.{f.name}", default, f.metadata.get("doc", "")))
    return rows
