"""Meta-World ML1 / ML10 / ML45 (Yu et al. 2019; Farama-Foundation/Metaworld 3.1.1) on MuJoCo 4.

Meta-World is optional and pins ``mujoco==3.3.0``; it is installed beside our MuJoCo 4 with
``--no-deps`` (:data:`INSTALL`) and imported only when one of these envs is built. Its Sawyer
envs run through :mod:`metarl.envs.metaworld_compat` (the one MuJoCo 4 fix, on Meta-World's
classes only). How closely they behave as on MuJoCo 3.3.0 is measured in docs/metaworld.md.

A task is a :class:`MetaWorldTask`: the env class's name plus Meta-World's ``rand_vec`` (the
object and goal positions of that task). Task lists follow Meta-World's benchmarks
(``metaworld.ML1`` / ``ML10`` / ``ML45`` with ``seed=benchmark_seed``): 50 goals per class,
drawn by the same procedure and global-RNG seeding as Meta-World's ``_make_tasks``, so the
goals equal Meta-World's own for the same seed (checked by launch/metaworld_fidelity.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import gymnasium
import numpy as np

from .base import ReferenceTaskSet, TaskEnvMixin, TaskFamilyError

INSTALL = 'pip install -e ".[metaworld]" && pip install --no-deps metaworld==3.1.1'
HORIZON = 500  # Meta-World's SawyerXYZEnv.max_path_length
GOALS_PER_CLASS = 50  # Meta-World's _N_GOALS
OBS_DIM = 39  # hand xyz, gripper, 14 object values; the same for the previous step; goal xyz
BENCHMARKS = ("ML1", "ML10", "ML45")

# Meta-World 3.1.1's 50 v3 envs (metaworld.env_dict.ALL_V3_ENVIRONMENTS), listed here so
# the ML1 families register without importing metaworld; tests check the list against it.
ML1_TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3",
    "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
    "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3",
    "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3",
    "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3", "plate-slide-side-v3",
    "plate-slide-back-v3", "plate-slide-back-side-v3", "peg-insert-side-v3", "peg-unplug-side-v3",
    "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3",
    "reach-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3",
    "window-close-v3",
)


class MetaWorldNotInstalledError(ImportError):
    """Meta-World is not installed; the message gives the install command."""


def available() -> bool:
    """Whether Meta-World can be imported (found without importing it: that takes ~1 s)."""
    return importlib.util.find_spec("metaworld") is not None


def import_metaworld() -> ModuleType:
    """The ``metaworld`` module, or :class:`MetaWorldNotInstalledError` naming :data:`INSTALL`."""
    try:
        return importlib.import_module("metaworld")
    except ImportError as err:
        raise MetaWorldNotInstalledError(
            f"the Meta-World task families need Meta-World 3.1.1, which pins mujoco==3.3.0 and "
            f"so is installed beside metarl's MuJoCo 4 without its dependencies: {INSTALL}  "
            f"(import failed: {err})") from None


@dataclass(frozen=True)
class MetaWorldTask:
    """One Meta-World task: env class ``env_name`` with Meta-World's ``rand_vec``.

    ``split`` (``"train"``/``"test"``) and ``goal_index`` (0-49, the position in Meta-World's
    list for that class) say where it comes from. Small and picklable without metaworld.
    """

    env_name: str
    rand_vec: tuple[float, ...]
    split: str
    goal_index: int


@dataclass(frozen=True)
class BenchmarkSplit:
    """The env classes of a benchmark's train and test splits, in Meta-World's order."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    test_seed_offset: int  # Meta-World: ML1 draws its test goals with seed + 1, ML10/45 seed


def benchmark_split(benchmark: str, task_name: str | None = None) -> BenchmarkSplit:
    """Meta-World's train/test classes for ``ML1`` (of ``task_name``), ``ML10`` or ``ML45``."""
    if benchmark not in BENCHMARKS:
        raise TaskFamilyError(f"benchmark must be one of {BENCHMARKS}, got {benchmark!r}")
    if benchmark == "ML1":
        if task_name not in ML1_TASKS:
            raise TaskFamilyError(f"ML1 task_name must be a Meta-World v3 env such as "
                                  f"'reach-v3', got {task_name!r}")
        return BenchmarkSplit(f"ML1-{task_name}", (task_name,), (task_name,), 1)
    env_dict = import_metaworld().env_dict
    classes = getattr(env_dict, f"{benchmark}_V3")
    return BenchmarkSplit(benchmark, tuple(classes["train"]), tuple(classes["test"]), 0)


def env_class(env_name: str) -> type:
    """Meta-World's class for ``env_name`` with the MuJoCo 4 fix applied."""
    from .metaworld_compat import compatible_class

    return compatible_class(import_metaworld().env_dict.ALL_V3_ENVIRONMENTS[env_name])


def _draw_goals(names: Sequence[str], seed: int, split: str) -> list[list[MetaWorldTask]]:
    """50 goals per class, as Meta-World's ``_make_tasks(classes, ..., seed)`` draws them.

    Meta-World seeds numpy's *global* RNG once, then for each class in order resets a fresh
    env 50 times with unfrozen goals (each reset draws ``rand_vec`` from the global RNG, some
    envs redrawing until objects are apart); the global state is restored afterwards.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        per_class = []
        for name in names:
            env = env_class(name)()
            env._freeze_rand_vec = False  # draw a new goal at every reset
            env._set_task_called = True
            goals = []
            for index in range(GOALS_PER_CLASS):
                env.reset()
                goals.append(MetaWorldTask(name, tuple(float(v) for v in env._last_rand_vec),
                                           split, index))
            env.close()
            if len({g.rand_vec for g in goals}) != GOALS_PER_CLASS:
                raise RuntimeError(f"Meta-World {name}: fewer than {GOALS_PER_CLASS} distinct "
                                   "goals were drawn")
            per_class.append(goals)
        return per_class
    finally:
        np.random.set_state(saved)


def _interleave(per_class: list[list[MetaWorldTask]]) -> tuple[MetaWorldTask, ...]:
    """Goal 0 of every class, then goal 1 of every class, ...: any prefix or suffix of the
    list (what :meth:`ReferenceTaskSet.split` takes) covers the classes evenly."""
    return tuple(task for goals in zip(*per_class) for task in goals)


def cache_dir() -> Path:
    """Where drawn goal lists are kept: ``$METARL_CACHE_DIR`` or ``~/.cache/metarl``."""
    return Path(os.environ.get("METARL_CACHE_DIR") or Path.home() / ".cache" / "metarl")


def _cached_goals(split: BenchmarkSplit, seed: int) -> list[list[list[MetaWorldTask]]]:
    """Both splits' goals per class, from the disk cache or drawn (and then cached).

    Drawing resets every class's env 50 times (ML1 ~1 s, ML10 ~8 s, ML45 ~30 s on 2 busy
    cores); the lists depend only on Meta-World's version, the benchmark and the seed, so a
    file per (version, benchmark, seed) makes every later process (Ray workers, evaluation,
    tests) start in milliseconds. A missing or unreadable file is simply redrawn."""
    version = importlib.metadata.version("metaworld")
    path = cache_dir() / "metaworld" / f"{version}-{split.name}-seed{seed}.json"
    try:
        raw = json.loads(path.read_text())
        lists = [[[MetaWorldTask(name, tuple(vec), part, i) for i, vec in enumerate(vecs)]
                  for name, vecs in raw[part]] for part in ("train", "test")]
        if [[g[0].env_name for g in part] for part in lists] == [list(split.train),
                                                                 list(split.test)]:
            return lists
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lists = [_draw_goals(split.train, seed, "train"),
             _draw_goals(split.test, seed + split.test_seed_offset, "test")]
    try:  # write-then-rename: concurrent processes never read a half-written file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({part: [(g[0].env_name, [t.rand_vec for t in g]) for g in goals]
                                   for part, goals in zip(("train", "test"), lists)}))
        tmp.replace(path)
    except OSError:  # a read-only home only costs the redraw next time
        pass
    return lists


@functools.cache
def benchmark_tasks(benchmark: str, task_name: str | None, seed: int
                    ) -> tuple[tuple[MetaWorldTask, ...], tuple[MetaWorldTask, ...]]:
    """Meta-World's train and test task lists (interleaved by class); cached per process and
    on disk (:func:`_cached_goals`)."""
    train, test = _cached_goals(benchmark_split(benchmark, task_name), seed)
    return _interleave(train), _interleave(test)


def _balanced_draw(tasks: Sequence[MetaWorldTask], n: int, rng: np.random.Generator
                   ) -> list[MetaWorldTask]:
    """``n`` tasks with the classes as even as possible (each appears floor or ceil of n / C
    times, C classes in a random order) and goals drawn without replacement within a class
    (with replacement only past 50), as Meta-World's meta-batches hold classes evenly."""
    if n <= 0:
        return []
    by_class: dict[str, list[MetaWorldTask]] = {}
    for task in tasks:
        by_class.setdefault(task.env_name, []).append(task)
    names = list(by_class)
    order = np.concatenate([rng.permutation(len(names)) for _ in range(-(-n // len(names)))])
    picks = [names[i] for i in order[:n]]
    chosen: dict[str, list[int]] = {}
    for name in dict.fromkeys(picks):
        count, pool = picks.count(name), len(by_class[name])
        chosen[name] = list(rng.choice(pool, size=count, replace=count > pool))
    return [by_class[name][int(chosen[name].pop(0))] for name in picks]


class MetaWorldEnv(gymnasium.Env, TaskEnvMixin):
    """A Meta-World benchmark (ML1 of one env, ML10 or ML45) as one gymnasium env with tasks.

    **Description.** A Sawyer arm on a table must do the task of the current env class (reach,
    push, open a door, ...) with the object and goal positions of the current task. ML1: one
    class, 50 training goals and 50 different test goals. ML10: 10 training classes and 5
    held-out test classes; ML45: 45 and 5; 50 goals per class. The env holds one Meta-World env
    per class it has been set to (built on first use, ~0.05 s each).

    **Action space.** ``Box(-1, 1, (4,), float32)``: end-effector displacement (x, y, z, scaled
    by 1/100 m) and gripper effort, as Meta-World.

    **Observation space.** ``Box(39,)``, float64: hand position, gripper opening, up to 14
    object values, the same 18 values one step earlier, and the goal position, which is zero
    unless ``goal_observable`` (Meta-World's ML benchmarks hide the goal).

    **Rewards.** Meta-World's v2 reward of the class (dense, in [0, 10]), unchanged.
    ``info["success"]`` (bool) is Meta-World's success flag of this step; an episode succeeds
    (Meta-World's protocol, ``metaworld/evaluation.py``) if any of its steps does.

    **Starting state.** Determined by the task's ``rand_vec``; Meta-World adds no noise, so
    ``reset(seed=...)`` only seeds :meth:`sample_tasks`'s default generator.

    **Episode end.** Truncated at 500 steps (Meta-World's horizon, the family's default);
    terminated at the first success only with ``terminate_on_success`` (what Meta-World does
    in its evaluation episodes, not in training).

    **Tasks.** :meth:`sample_tasks` draws from the *training* split, :meth:`sample_test_tasks`
    from the *test* split (held-out classes for ML10/ML45, held-out goals for ML1), both with
    the classes balanced. :meth:`reference_task_set` gives both full lists (train 50 x classes,
    test 50 x test classes, interleaved by class), which PEARL's ``task_set: reference`` uses.

    **Fidelity on MuJoCo 4.** Meta-World pins mujoco 3.3.0 and its maintainers report changed
    collisions from mujoco 3.5. Meta-World's scripted expert policies, 50 paired episodes per
    ML10 class (same goals), give the same outcome in every episode on MuJoCo 4.0.0 and 3.3.0
    for 11 of the 15 classes; **success rates differ on door-open (0.92 on 3.3.0 -> 0.98),
    peg-insert-side (0.94 -> 0.86) and shelf-place (0.96 -> 0.84), and sweep-into keeps 0.94
    with 2 episodes swapping outcome**: the contact-rich classes. In ML45 (its own goals)
    rates differ on **peg-insert-side (0.92 -> 0.82), shelf-place (0.98 -> 0.92), disassemble,
    soccer, stick-pull and hand-insert** (one or two episodes each), and box-close keeps 0.88
    with 10 episodes swapping; 42 of 50 classes are unchanged. Results here are Meta-World on
    MuJoCo 4, not to be mixed with mujoco 3.3.0 numbers for those classes. Tables:
    docs/metaworld.md.

    **Arguments.**

    | kwarg | default | meaning |
    |---|---|---|
    | ``benchmark`` | family's | ``"ML1"``, ``"ML10"`` or ``"ML45"`` |
    | ``task_name`` | family's | the env of an ML1 family, e.g. ``"reach-v3"`` |
    | ``benchmark_seed`` | 0 | seed of Meta-World's goal lists (``metaworld.ML10(seed=...)``) |
    | ``goal_observable`` | False | put the goal in the observation (scripted policies need it) |
    | ``terminate_on_success`` | False | end the episode at the first success |

    **Version history.** v3: Meta-World 3.1.1's v3 envs on MuJoCo 4.0.0.
    """

    metadata = {"render_modes": []}

    def __init__(self, benchmark: str = "ML10", task_name: str | None = None,
                 benchmark_seed: int = 0, goal_observable: bool = False,
                 terminate_on_success: bool = False) -> None:
        import_metaworld()  # fail here, with the install command, when it is missing
        self.split = benchmark_split(benchmark, task_name)
        self.benchmark, self.task_name = benchmark, task_name
        self.benchmark_seed = int(benchmark_seed)
        self.goal_observable = bool(goal_observable)
        self.terminate_on_success = bool(terminate_on_success)
        self._classes = set(self.split.train) | set(self.split.test)
        self._envs: dict[str, Any] = {}
        self._task: MetaWorldTask | None = None
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.observation_space = self._observation_space()

    def _observation_space(self) -> gymnasium.spaces.Box:
        """Meta-World's bounds (hand box, gripper in [-1, 1], objects unbounded); the goal is
        0 when hidden and unbounded when observed (a superset of every class's goal box)."""
        from metaworld.sawyer_xyz_env import SawyerXYZEnv

        hand = SawyerXYZEnv._HAND_SPACE
        goal = np.inf if self.goal_observable else 0.0
        low = np.hstack([hand.low, -1.0, np.full(14, -np.inf)] * 2 + [np.full(3, -goal)])
        high = np.hstack([hand.high, 1.0, np.full(14, np.inf)] * 2 + [np.full(3, goal)])
        return gymnasium.spaces.Box(low, high, dtype=np.float64)

    # --- tasks -----------------------------------------------------------------------------
    def _lists(self) -> tuple[tuple[MetaWorldTask, ...], tuple[MetaWorldTask, ...]]:
        return benchmark_tasks(self.benchmark, self.task_name, self.benchmark_seed)

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None
                     ) -> list[MetaWorldTask]:
        """``n`` training tasks, classes balanced (see :func:`_balanced_draw`)."""
        return _balanced_draw(self._lists()[0], n, rng if rng is not None else self.np_random)

    def sample_test_tasks(self, n: int, rng: np.random.Generator | None = None
                          ) -> list[MetaWorldTask]:
        """``n`` test tasks (held-out classes; ML1: held-out goals), classes balanced."""
        return _balanced_draw(self._lists()[1], n, rng if rng is not None else self.np_random)

    def reference_task_set(self) -> ReferenceTaskSet:
        train, test = self._lists()
        return ReferenceTaskSet(train, test, source=(
            f"metaworld 3.1.1 {self.split.name}(seed={self.benchmark_seed}) train_tasks / "
            "test_tasks, 50 goals per class, interleaved by class"))

    def set_task(self, task: MetaWorldTask) -> None:
        if not isinstance(task, MetaWorldTask):
            raise TaskFamilyError(f"Meta-World tasks are MetaWorldTask, got {task!r}")
        if task.env_name not in self._classes:
            raise TaskFamilyError(f"{task.env_name} is not a class of {self.split.name} "
                                  f"(train: {', '.join(self.split.train)}; test: "
                                  f"{', '.join(self.split.test)})")
        self._task = task

    def get_task(self) -> MetaWorldTask | None:
        return self._task

    def _unit(self, task: MetaWorldTask) -> Any:
        """The class's Meta-World env, set to ``task`` (Meta-World's own ``set_task``)."""
        env = self._envs.get(task.env_name)
        if env is None:
            env = self._envs[task.env_name] = env_class(task.env_name)()
        from metaworld.types import Task

        # Meta-World's own class (it pickles; our subclass of it passes set_task's isinstance)
        original = import_metaworld().env_dict.ALL_V3_ENVIRONMENTS[task.env_name]
        data = {"rand_vec": np.asarray(task.rand_vec, dtype=np.float64), "env_cls": original,
                "partially_observable": not self.goal_observable}
        env.set_task(Task(task.env_name, pickle.dumps(data)))
        return env

    # --- gymnasium -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        if self._task is None:  # before any set_task: the first training task
            self._task = self._lists()[0][0]
        obs, _ = self._unit(self._task).reset()
        return np.asarray(obs, dtype=np.float64), {"task": self._task, "success": False}

    def step(self, action: np.ndarray
             ) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise RuntimeError("call reset() before step()")
        env = self._envs[self._task.env_name]
        obs, reward, _, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        success = bool(info["success"])
        info = {**info, "success": success, "task": self._task}
        terminated = success and self.terminate_on_success
        return np.asarray(obs, dtype=np.float64), float(reward), terminated, bool(truncated), info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class MetaWorldML1Env(MetaWorldEnv):
    """Meta-World ML1 of one env (``task_name``): 50 training goals, 50 held-out goals."""

    def __init__(self, task_name: str = "reach-v3", benchmark_seed: int = 0,
                 goal_observable: bool = False, terminate_on_success: bool = False) -> None:
        super().__init__("ML1", task_name, benchmark_seed, goal_observable, terminate_on_success)


class MetaWorldML10Env(MetaWorldEnv):
    """Meta-World ML10: 10 training classes, 5 held-out test classes, 50 goals each."""

    def __init__(self, benchmark_seed: int = 0, goal_observable: bool = False,
                 terminate_on_success: bool = False) -> None:
        super().__init__("ML10", None, benchmark_seed, goal_observable, terminate_on_success)


class MetaWorldML45Env(MetaWorldEnv):
    """Meta-World ML45: 45 training classes, 5 held-out test classes, 50 goals each."""

    def __init__(self, benchmark_seed: int = 0, goal_observable: bool = False,
                 terminate_on_success: bool = False) -> None:
        super().__init__("ML45", None, benchmark_seed, goal_observable, terminate_on_success)


def register_metaworld_families() -> bool:
    """Register ``MetaWorld-ML1-<task>``, ``MetaWorld-ML10-v3`` and ``MetaWorld-ML45-v3`` when
    Meta-World is installed (found, not imported); returns whether it did."""
    from .registry import note_unavailable_families, register_task_family

    if not available():
        note_unavailable_families("MetaWorld-", f"Meta-World is not installed. {INSTALL}")
        return False

    module = "metarl.envs.metaworld"
    for name in ML1_TASKS:
        register_task_family(f"MetaWorld-ML1-{name}", env_entry_point=f"{module}:MetaWorldML1Env",
                             max_episode_steps=HORIZON, default_kwargs={"task_name": name},
                             description=f"Meta-World ML1 {name}: 50 train / 50 test goals",
                             override=True)
    for bench, classes in (("ML10", "10 train / 5 held-out test classes"),
                           ("ML45", "45 train / 5 held-out test classes")):
        register_task_family(f"MetaWorld-{bench}-v3",
                             env_entry_point=f"{module}:MetaWorld{bench}Env",
                             max_episode_steps=HORIZON,
                             description=f"Meta-World {bench}: {classes}, 50 goals each",
                             override=True)
    return True
