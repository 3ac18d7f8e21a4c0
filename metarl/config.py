"""Experiment configuration: YAML files validated into typed dataclasses.

A config has six sections (``env``, ``policy``, ``sampler``, ``algo``, ``train``,
``logging``). ``algo`` is a union discriminated by ``algo.name``: each registered
algorithm owns a dataclass of its keys (:mod:`metarl.algos.registry`), and a key of
another algorithm is an error. Every key carries a one-line doc and its allowed range or
choices (:func:`metarl.schema.setting`) and is checked on load: unknown keys get a "did
you mean" suggestion, and wrong types or out-of-range values raise :class:`ConfigError`
naming the key path, the value and what is allowed. ``--set section.key=value``
overrides are parsed as YAML scalars and go through the same checks.
``metarl config-reference`` writes every key's documentation (``docs/config-reference.md``).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from .algos.registry import AlgorithmSpec, get_algorithm, list_algorithms, owners_of
from .schema import ConfigError, build_section, field_rows, setting, show_key, suggest
from .yaml_io import YAMLLimitError, load_yaml

__all__ = ["Config", "ConfigError", "DEFAULT_DEVICE", "DEFAULT_STEP_GRID", "DEVICES", "apply_overrides",
           "config_from_dict", "config_reference", "load_config", "load_saved_config",
           "migrate_saved_config", "parse_override"]

# `metarl eval --step-grid` default: the step sizes tried when fine-tuning baselines
DEFAULT_STEP_GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
DEFAULT_ALGORITHM = "maml_trpo"
# where the learner's tensors live unless told otherwise (train.device, eval and bench
# --device): auto = cuda when torch sees one, else cpu
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"


@dataclass
class EnvConfig:
    """The task family and its episodes."""

    id: str = setting("Navigation2D-v0", "Registered task family id (see `metarl envs`).")
    horizon: int | None = setting(None, "Steps per episode; null uses the family's default.", ge=1,
                              le=10**7)
    kwargs: dict[str, Any] = setting({}, "Keyword arguments of the family (reward terms, task ranges).")
    task_in_observation: bool = setting(False, "Append the task's parameters to every observation "
                                       "(the MAML paper's oracle baseline).")


@dataclass
class PolicyConfig:
    """The Gaussian MLP policy of maml_trpo and trpo (PEARL's networks are set under algo)."""

    hidden_sizes: list[int] = setting([100, 100], "Hidden layer widths of the Gaussian MLP policy (maml_trpo, trpo).", ge=1,
                                   le=65536)
    activation: str = setting("relu", "Hidden-layer nonlinearity.", choices=("relu", "tanh"))
    init_std: float = setting(1.0, "Initial standard deviation of the Gaussian policy.", gt=0,
                            le=1e3)
    min_std: float = setting(1e-6, "Lower bound on the standard deviation.", gt=0, le=1e3)


@dataclass
class SamplerConfig:
    """Rollout backend and episode counts."""

    backend: str = setting("auto", "Rollout backend: batch (the family's batched env, one "
                          "vectorized call per step), gym (gymnasium SyncVectorEnv of its "
                          "gymnasium env), auto (batch when the family has one, else gym), "
                          "ray (slices of the tasks on Ray actors; needs the ray extra).",
                          choices=("auto", "batch", "gym", "ray"))
    threads: int = setting(0, "Threads stepping MuJoCo batched envs (0 = the CPUs this process "
                          "may use; with backend ray, 0 = worker_cpus per worker).", ge=0,
                          le=4096)
    num_workers: int = setting(2, "Ray actors the tasks of each sampling call are split across "
                              "(backend ray).", ge=1, le=4096)
    worker_cpus: int = setting(1, "CPUs each Ray actor reserves (backend ray).", ge=1, le=4096)
    ray_address: str | None = setting(None, "Existing Ray cluster to join (host:port, "
                                     "ray://host:port or auto); null starts a local Ray bound "
                                     "to loopback (backend ray).")
    inference: str = setting("device", "Where rollouts evaluate the policy: device (train.device; "
                             "on a GPU, two host-device copies per env step) or cpu (a CPU copy "
                             "of the parameters made once per sampling call, the episodes moved "
                             "to the device once). The same on a CPU run; ray always uses its "
                             "CPU workers. `metarl bench sampler --device cuda` times both.",
                             choices=("device", "cpu"))
    episodes_per_task: int = setting(20, "Episodes per task per adaptation step in training (maml_trpo, trpo).", ge=1,
                                   le=10**6)
    eval_episodes_per_task: int = setting(40, "Episodes (PEARL: independent simulations; RL²: trials) per task per step in meta-evaluation.", ge=1,
                                        le=10**6)


@dataclass
class TrainConfig:
    """Iterations, seed, device, checkpoints and threads."""

    iterations: int = setting(100, "Number of meta-iterations.", ge=1, le=10**9)
    seed: int = setting(0, "Seed for tasks, actions and initialisation.", ge=0,
                       le=2**63 - 1)
    device: str = setting(DEFAULT_DEVICE, "Compute device; auto picks cuda when available.",
                          choices=DEVICES)
    checkpoint_every: int = setting(10, "Write a checkpoint every N iterations (and at the end).", ge=1,
                                  le=10**9)
    keep_checkpoints: int = setting(0, "Keep only the newest N checkpoints: older ones are "
                                    "deleted once a new one is written (0: keep all). For runs "
                                    "whose checkpoints are large, e.g. PEARL's replay buffers.",
                                    ge=0, le=10**9)
    runs_root: str = setting("runs", "Directory under which run directories are created.")
    max_skipped_updates: int = setting(5, "Stop the run (with a checkpoint) after this many "
                                      "meta-updates in a row were skipped for NaN/Inf.", ge=1,
                                      le=10**6)
    threads: int | str = setting("auto", "CPU threads of the update (torch/OpenMP): auto (the "
                                "algorithm's choice: 1 for PEARL, whose small matrix products "
                                "do not split well; else the CPUs this process may use) or a "
                                "number; MuJoCo's come from sampler.threads.", ge=1, le=4096, choices=("auto",))


@dataclass
class LoggingConfig:
    """TensorBoard and console output."""

    tensorboard: bool = setting(True, "Write TensorBoard event files into the run directory.")
    console: bool = setting(True, "Print one progress line per iteration.")


def _default_algo() -> Any:
    spec = get_algorithm(DEFAULT_ALGORITHM)
    return spec.config(name=spec.name)


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    algo: Any = field(default_factory=_default_algo)  # the algorithm's own config dataclass
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def algorithm(self) -> AlgorithmSpec:
        """The registered algorithm ``algo.name`` names."""
        return get_algorithm(self.algo.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, suitable for ``yaml.safe_dump``; keys the algorithm does not
        read are left out, so the dump loads back under the same checks."""
        data = dataclasses.asdict(self)
        _drop_unused(self.algorithm, data)
        return data


def _drop_unused(spec: AlgorithmSpec, data: dict[str, Any]) -> list[str]:
    """Remove from the nested mapping ``data`` the keys and sections ``spec`` never reads
    (``spec.unused``); returns what held a value, e.g. ``sampler.episodes_per_task``."""
    dropped = []
    for key in spec.unused:
        section, _, name = key.partition(".")
        if name and isinstance(data.get(section), dict) and name in data[section]:
            del data[section][name]
            dropped.append(key)
        elif not name and section in data:
            if data.pop(section):
                dropped.append(f"the {section} section")
    return dropped


SECTIONS = {"env": EnvConfig, "policy": PolicyConfig, "sampler": SamplerConfig,
            "algo": None, "train": TrainConfig, "logging": LoggingConfig}


def _algo_section(data: Any) -> tuple[AlgorithmSpec, Any]:
    """``algo``: the algorithm ``algo.name`` names, and its dataclass built from the rest."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"algo: expected a mapping of keys to values, got {data!r}")
    name = data.get("name", DEFAULT_ALGORITHM)
    if not isinstance(name, str):
        raise ConfigError(f"algo.name: expected a string, got {name!r}")
    spec = get_algorithm(name)

    def unknown(key: str) -> str:
        owners = [o for o in owners_of(key) if o != spec.name]
        return (f" for algo.name {spec.name!r} (it is a key of {', '.join(owners)})"
                if owners else "")

    rest = {k: v for k, v in data.items() if k != "name"}
    return spec, build_section("algo", spec.config, rest, unknown, fixed={"name": name})


def _check_unused(spec: AlgorithmSpec, data: dict[str, Any]) -> None:
    """Keys of other sections that ``spec`` never reads are errors when set."""
    for key, why in spec.unused.items():
        section, _, name = key.partition(".")
        given = data.get(section)
        if not isinstance(given, dict):
            continue
        if name and name in given:
            raise ConfigError(f"{key}: not used by algo.name {spec.name!r} ({why}); remove it")
        if not name and given:
            first = show_key(next(iter(given)))
            raise ConfigError(f"{section}.{first}: the {section} section is not used by "
                              f"algo.name {spec.name!r} ({why}); remove the section")


def config_from_dict(data: Any, source: str = "config") -> Config:
    """Validate a nested mapping into a :class:`Config`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"top level: expected a mapping with sections "
                          f"{', '.join(SECTIONS)}, got {type(data).__name__}")
    sections: dict[str, Any] = {}
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{show_key(name)}: unknown section{suggest(str(name), SECTIONS)} "
                              f"(allowed: {', '.join(SECTIONS)})")
    # algo first: which algorithm it is decides which keys of the other sections exist
    spec, algo = _algo_section(data.get("algo"))
    _check_unused(spec, data)
    for name, value in data.items():
        if name != "algo":
            sections[name] = build_section(name, SECTIONS[name], value)
    cfg = Config(**sections, algo=algo)
    _check_consistency(cfg)
    return cfg


def _check_consistency(cfg: Config) -> None:
    if "policy" not in cfg.algorithm.unused and cfg.policy.min_std > cfg.policy.init_std:
        raise ConfigError(f"policy.min_std: {cfg.policy.min_std} must not exceed "
                          f"policy.init_std ({cfg.policy.init_std})")
    for key, values in cfg.algorithm.refused.items():
        section, _, name = key.partition(".")
        value = getattr(getattr(cfg, section), name)
        if value in values:
            raise ConfigError(f"{key}: {value!r} is not supported by algo.name "
                              f"{cfg.algorithm.name!r} ({values[value]})")
    validate = getattr(cfg.algo, "validate", None)
    if validate is not None:
        validate("algo.")


# The ``algo`` keys every saved config held before ``algo`` was scoped to its algorithm
# (2182b83). Frozen here: keys added to an algorithm since (``compile``, ``task_set``) were
# never in those dumps, so today's key sets cannot recognise them.
_UNION_BEFORE_SCOPING = frozenset((
    "name meta_batch_size inner_steps inner_step_size first_order gamma gae_lambda "
    "normalize_advantages baseline_reg max_kl fisher fisher_subsample cg_iters cg_damping "
    "ls_max_steps ls_backtrack_ratio eval_step_sizes latent_size encoder_hidden_sizes "
    "use_next_obs_in_context lr tau reward_scale kl_lambda policy_mean_reg policy_std_reg "
    "batch_size embedding_batch_size num_train_tasks num_test_tasks num_tasks_sample "
    "num_initial_steps num_steps_prior num_steps_posterior num_extra_rl_steps_posterior "
    "num_train_steps_per_itr replay_buffer_size meta_test_trajectories eval_every").split())


def migrate_saved_config(data: Any) -> tuple[Any, list[str]]:
    """A run directory's saved config made loadable by this metarl, and what was changed.

    Runs written before ``algo`` was scoped to its algorithm saved one union of every
    algorithm's keys (and PEARL runs the Gaussian policy's): recognised by an ``algo``
    section holding every key that union had, as only those dumps do. Keys
    the run's algorithm does not have are dropped: PEARL and MAML-TRPO never read them;
    TRPO read ``fisher`` and ``first_order``, which without an inner step all give the
    policy's own Fisher (the values it now always uses, up to rounding). PEARL's
    ``policy.hidden_sizes`` (its actor, Q and V widths then) moves to ``algo.hidden_sizes``.
    Any other config is returned unchanged: there such keys are errors.
    """
    if not isinstance(data, dict) or not isinstance(data.get("algo"), dict):
        return data, []
    if not _UNION_BEFORE_SCOPING <= set(data["algo"]):
        return data, []
    data = copy.deepcopy(data)
    algo = data["algo"]
    try:
        spec = get_algorithm(str(algo.get("name", DEFAULT_ALGORITHM)))
    except ConfigError:
        return data, []
    notes = []
    own = set(spec.keys())
    policy = data.get("policy")
    if ("policy" in spec.unused and isinstance(policy, dict) and "hidden_sizes" in policy
            and "hidden_sizes" in own and "hidden_sizes" not in algo):
        algo["hidden_sizes"] = policy["hidden_sizes"]
        notes.append("moved policy.hidden_sizes to algo.hidden_sizes")
    foreign = [k for k in algo if k not in own and owners_of(k)]
    for key in foreign:
        del algo[key]
    dropped = [f"algo.{k}" for k in foreign] + _drop_unused(spec, data)
    if dropped:
        notes.append(f"dropped the keys algo.name {spec.name!r} does not have: "
                     f"{', '.join(dropped)}")
    return data, notes


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: key must look like section.key "
                          f"(sections: {', '.join(SECTIONS)})")
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


def _read_yaml(path: Path) -> Any:
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
    return {} if data is None else data  # None: an empty file


def _validate(data: Any, overrides: Iterable[str], source: str) -> Config:
    if isinstance(data, dict):  # anything else is reported by config_from_dict below
        data = apply_overrides(data, overrides)
    try:
        return config_from_dict(data, source)
    except ConfigError as err:
        raise ConfigError(f"{err} [{source}]") from None


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (or the defaults when ``path`` is None), apply overrides, validate."""
    if path is None:
        return _validate({}, overrides, "defaults")
    return _validate(_read_yaml(Path(path)), overrides, str(path))


def load_saved_config(path: str | Path, overrides: Iterable[str] = (),
                      report: Callable[[str], None] | None = None) -> Config:
    """A run directory's ``config.yaml``, migrated (:func:`migrate_saved_config`; ``report``
    is told what changed), with ``overrides`` applied and checked as in :func:`load_config`."""
    data, notes = migrate_saved_config(_read_yaml(Path(path)))
    if notes and report is not None:
        report(f"metarl: {path} was written by an earlier metarl; {'; '.join(notes)}")
    return _validate(data, overrides, str(path))


def describe_fields(algo: str = DEFAULT_ALGORITHM) -> list[tuple[str, Any, str]]:
    """(key path, default, doc) of every key a config for algorithm ``algo`` may set."""
    spec = get_algorithm(algo)
    rows = []
    for section, cls in SECTIONS.items():
        if section in spec.unused:
            continue
        for key, _, default, _, doc in field_rows(spec.config if cls is None else cls):
            if f"{section}.{key}" not in spec.unused:
                rows.append((f"{section}.{key}", default, doc))
    return rows


def _markdown_table(rows: list[tuple[str, str, Any, str, str]], prefix: str) -> list[str]:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|")

    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for key, kind, default, allowed, doc in rows:
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...")
        lines.append(f"| `{prefix}{key}` | {cell(kind)} | `{cell(shown.strip())}` | "
                     f"{cell(allowed) or 'any'} | {cell(doc)} |")
    return lines


def config_reference() -> str:
    """Markdown reference of every config key, generated from the dataclasses' docs
    (``metarl config-reference``; ``docs/config-reference.md`` must equal it)."""
    out = ["# Configuration keys", "",
           "Generated by `metarl config-reference` from the config dataclasses "
           "(`metarl/config.py` and each algorithm's `config.py`); do not edit by hand. "
           "A test fails when this file is out of date: regenerate it with "
           "`metarl config-reference --out docs/config-reference.md`.", ""]
    for section, cls in SECTIONS.items():
        if cls is None:
            out += ["## `algo`", "",
                    "`algo.name` picks the algorithm; the section holds only that "
                    "algorithm's keys (a key of another algorithm is an error).", ""]
            for spec in list_algorithms():
                out += [f"### `algo.name: {spec.name}`", "", spec.description + ".", ""]
                if spec.unused:
                    out += ["Not read by this algorithm (setting them is an error): "
                            + "; ".join(f"`{k}` ({why})" for k, why in spec.unused.items())
                            + ".", ""]
                out += _markdown_table([r for r in field_rows(spec.config) if r[0] != "name"],
                                       "algo.") + [""]
            continue
        out += [f"## `{section}`", "", (cls.__doc__ or "").strip().splitlines()[0], ""]
        out += _markdown_table(field_rows(cls), f"{section}.") + [""]
    return "\n".join(out)
