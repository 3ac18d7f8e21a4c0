"""MuJoCo task families: one definition gives a gymnasium env and a batched env.

A family is a subclass of :class:`MujocoTaskFamily`: an MJCF file, a task sampler,
and *vectorized* observation / reward / termination functions of a
:class:`SimState` holding ``N`` simulations. The gymnasium env (:class:`MujocoTaskEnv`)
calls them with ``N = 1`` on one ``MjData``; the batched env (:class:`MujocoBatchEnv`)
calls them once per step for all simulations of a ``mujoco.batch.Batch``, which
steps them on a thread pool with the GIL released. Both paths run the same
physics (``Batch`` is bit-identical to a loop over ``MjData``) and the same
functions, so they agree to the last bit for the same task, seed and actions.

Families that vary the dynamics return per-simulation model fields from
:meth:`MujocoTaskFamily.model_fields` (e.g. ``{"body_mass": masses}``).

Divergence: MuJoCo resets a simulation whose state or acceleration becomes NaN,
Inf or huge (and warns). Both envs detect it (the simulation clock jumps, or a
value is non-finite), truncate that simulation's episode at that step, report it
in ``info["diverged"]`` and give it reward 0 and a finite observation.
"""

from __future__ import annotations

import copy
import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import gymnasium
import mujoco
import mujoco.batch
import numpy as np
from gymnasium import spaces

from .base import BatchTaskEnv, ReferenceTaskSet, TaskEnvMixin, TaskFamilyError

if TYPE_CHECKING:
    from .registry import TaskFamilySpec

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass
class SimState:
    """``N`` simulations right after a control step (arrays are ``[N, ...]``, read-only use).

    Attributes:
        qpos, qvel: state after the step.
        qpos_before: ``qpos`` before the step (for velocities over the control step).
        action: controls applied during the step (clipped to the actuators' ranges).
        dt: duration of the control step, ``timestep * frame_skip``.
        data: the extra ``MjData`` fields the family lists in ``data_fields``.
        data_before: the ``MjData`` fields the family lists in ``data_fields_before``, as
            they were before the step (after a reset: their values at the reset).
    """

    qpos: np.ndarray
    qvel: np.ndarray
    qpos_before: np.ndarray
    action: np.ndarray
    dt: float
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    data_before: Mapping[str, np.ndarray] = field(default_factory=dict)


class MujocoTaskFamily:
    """Definition of a MuJoCo task family; subclass it to add one.

    Class attributes: ``xml_path`` (MJCF file), ``frame_skip`` (physics steps per
    control step), ``data_fields`` (``MjData`` fields the functions read besides
    ``qpos``/``qvel``, e.g. ``("cfrc_ext",)``), ``data_fields_before`` (fields whose
    values from *before* the step the functions read, e.g. ``("xpos",)`` for a body
    frame's displacement; copied once per step), ``forward_after_step`` (run ``mj_forward``
    after every control step, so that derived fields such as ``cfrc_ext``, ``xmat`` or
    sensors describe the new state, not the one before the last substep, as rllab's
    ``forward_dynamics`` does; the state itself is unchanged). Keyword arguments of
    ``__init__`` are the family's kwargs (``env.kwargs`` in a config); validate them there and
    raise ``ValueError`` with the allowed range.

    Subclasses implement :meth:`sample_tasks`, :meth:`task_arrays`,
    :meth:`observation` and :meth:`reward`; :meth:`terminated`,
    :meth:`model_fields`, :meth:`initial_state` and :meth:`reference_task_set` have
    defaults.
    """

    xml_path: ClassVar[str | Path]
    frame_skip: ClassVar[int] = 5
    data_fields: ClassVar[tuple[str, ...]] = ()
    data_fields_before: ClassVar[tuple[str, ...]] = ()
    forward_after_step: ClassVar[bool] = False

    def __init__(self, reset_noise_scale: float = 0.1) -> None:
        if not reset_noise_scale >= 0:
            raise ValueError(f"reset_noise_scale must be >= 0, got {reset_noise_scale}")
        self.reset_noise_scale = reset_noise_scale

    # -- to implement ----------------------------------------------------------------------

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` tasks."""
        raise NotImplementedError

    def task_arrays(self, tasks: Sequence[Any]) -> dict[str, np.ndarray]:
        """Task parameters as ``[N, ...]`` arrays, passed to reward and termination."""
        raise NotImplementedError

    def observation(self, state: SimState) -> np.ndarray:
        """``[N, obs_dim]`` observations."""
        raise NotImplementedError

    def reward(self, state: SimState, task: Mapping[str, np.ndarray]
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``[N]`` rewards and the ``[N]`` terms they are made of (reported in ``info``)."""
        raise NotImplementedError

    # -- optional ----------------------------------------------------------------------------

    def terminated(self, state: SimState, task: Mapping[str, np.ndarray]) -> np.ndarray:
        """``[N]`` bool: episodes that end at this step (default: never)."""
        return np.zeros(state.qpos.shape[0], dtype=bool)

    def model_fields(self, tasks: Sequence[Any], model: mujoco.MjModel
                     ) -> dict[str, np.ndarray]:
        """Per-simulation ``MjModel`` fields for these tasks, ``{name: [N, ...]}``.

        Override in families that vary the dynamics (body mass, friction, damping);
        ``model`` holds the MJCF's nominal values. Default: none.
        """
        return {}

    def initial_state(self, model: mujoco.MjModel, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
        """One simulation's ``(qpos, qvel)`` at reset.

        Default, as Gymnasium's locomotion envs: ``qpos0 + U(-s, s)``, ``s * N(0, 1)``
        velocities, with ``s = reset_noise_scale``.
        """
        s = self.reset_noise_scale
        qpos = model.qpos0 + rng.uniform(-s, s, size=model.nq)
        qvel = s * rng.standard_normal(model.nv)
        return qpos, qvel

    def reference_task_set(self) -> ReferenceTaskSet | None:
        """The fixed train/test tasks of the family's reference code, or ``None`` (default)
        when it defines none; raise :class:`TaskFamilyError` when the family's kwargs
        change the task distribution away from the reference's."""
        return None


def family_kwargs(cls: type[MujocoTaskFamily]) -> list[str]:
    """Names of the keyword arguments ``cls`` accepts (following ``**kwargs`` to the bases)."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.name not in names
                  and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def make_family(cls: type[MujocoTaskFamily], kwargs: Mapping[str, Any]) -> MujocoTaskFamily:
    """Instantiate ``cls`` with ``kwargs``; errors name the family and the allowed kwargs."""
    allowed = family_kwargs(cls)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TaskFamilyError(f"{cls.__name__}: unknown keyword argument(s) {unknown}; "
                              f"allowed: {allowed}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise TaskFamilyError(f"{cls.__name__}: {err}") from None


@functools.lru_cache(maxsize=None)
def _compiled(path: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(path)


def load_model(family: type[MujocoTaskFamily] | MujocoTaskFamily) -> mujoco.MjModel:
    """A private copy of the family's compiled model (compiled once per file)."""
    cls = family if isinstance(family, type) else type(family)
    path = getattr(cls, "xml_path", None)
    if path is None:
        raise TaskFamilyError(f"{cls.__name__}: no xml_path (the family's MJCF file)")
    path = Path(path)
    if not path.is_file():
        raise TaskFamilyError(f"{cls.__name__}: MJCF file {path} does not exist")
    try:
        model = _compiled(str(path.resolve()))
    except ValueError as err:  # MuJoCo's XML parse and compile errors
        raise TaskFamilyError(f"{cls.__name__}: cannot load MJCF file {path}: {err}") from None
    if cls.frame_skip < 1 or model.nu < 1:
        raise TaskFamilyError(f"{cls.__name__}: needs frame_skip >= 1 and at least one actuator "
                              f"in {path} (got frame_skip={cls.frame_skip}, nu={model.nu})")
    return copy.copy(model)


def _action_space(model: mujoco.MjModel) -> spaces.Box:
    low = np.where(model.actuator_ctrllimited, model.actuator_ctrlrange[:, 0], -np.inf)
    high = np.where(model.actuator_ctrllimited, model.actuator_ctrlrange[:, 1], np.inf)
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def _observation_space(family: MujocoTaskFamily, model: mujoco.MjModel) -> spaces.Box:
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    probe = SimState(data.qpos[None], data.qvel[None], data.qpos[None], data.ctrl[None],
                     model.opt.timestep * family.frame_skip,
                     {name: getattr(data, name)[None] for name in family.data_fields})
    dim = np.asarray(family.observation(probe)).shape[-1]
    return spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float64)


def _unstable(*arrays: np.ndarray) -> np.ndarray:
    """Simulations with a NaN, Inf or huge value, by MuJoCo's own test (``mjMAXVAL``)."""
    bad = np.zeros(arrays[0].shape[0], dtype=bool)
    for arr in arrays:
        bad |= ~(np.abs(arr.reshape(arr.shape[0], -1)) <= mujoco.mjMAXVAL).all(axis=1)
    return bad


def _diverged(time_before: np.ndarray, time_after: np.ndarray, step_time: float,
              unstable_before: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    # MuJoCo resets an unstable simulation in mid-step, so its clock no longer reads
    # time_before + step_time, except for a reset in the first substep of an episode's
    # first step: that needs an unstable state before the step (unstable_before).
    # Non-finite values after the step catch the rest.
    bad = np.abs(time_after - (time_before + step_time)) > 0.5 * step_time
    bad |= unstable_before
    for arr in arrays:
        bad |= ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
    return bad


def _finish_step(family: MujocoTaskFamily, state: SimState, task: Mapping[str, np.ndarray],
                 diverged: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Observation, reward, termination and reward terms, with diverged simulations neutralised."""
    obs = np.asarray(family.observation(state), dtype=np.float64)
    reward, terms = family.reward(state, task)
    reward = np.asarray(reward, dtype=np.float64)
    terminated = np.asarray(family.terminated(state, task), dtype=bool)
    diverged = diverged | ~np.isfinite(obs).all(axis=1) | ~np.isfinite(reward)
    if diverged.any():
        obs = np.where(diverged[:, None], np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0), obs)
        reward = np.where(diverged, 0.0, reward)
        terminated = terminated & ~diverged
    return obs, reward, terminated, terms, diverged


_SETCONST_INPUTS = frozenset(getattr(mujoco.MjModel, "_setconst_inputs", ()))


class MujocoTaskEnv(TaskEnvMixin, gymnasium.Env):
    """Gymnasium env of a MuJoCo task family (one simulation); see :func:`make_env_classes`."""

    family_cls: ClassVar[type[MujocoTaskFamily]]
    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self.family = make_family(self.family_cls, kwargs)
        self._nominal_model = load_model(self.family)  # model_fields reads nominal values here
        self.model = copy.copy(self._nominal_model)
        self.data = mujoco.MjData(self.model)
        self.action_space = _action_space(self.model)
        self.observation_space = _observation_space(self.family, self.model)
        self.dt = self.model.opt.timestep * self.family.frame_skip
        self._task: Any = None
        self._task_arrays: dict[str, np.ndarray] = {}
        self._data_before: dict[str, np.ndarray] = {}

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> list[Any]:
        return self.family.sample_tasks(n, rng if rng is not None else self.np_random)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        return self.family.reference_task_set()

    def _copy_data_before(self) -> None:
        self._data_before = {name: getattr(self.data, name)[None].copy()
                             for name in self.family.data_fields_before}

    def set_task(self, task: Any) -> None:
        arrays = self.family.task_arrays([task])  # validates the task's type and fields
        fields = self.family.model_fields([task], self._nominal_model)
        for name, values in fields.items():
            target = getattr(self.model, name)
            values = np.asarray(values, dtype=target.dtype)
            if values.shape != (1, *target.shape):
                raise TaskFamilyError(f"{type(self.family).__name__}.model_fields: {name} has "
                                      f"shape {values.shape[1:]}, the model's is {target.shape}")
            target[...] = values[0]
        if _SETCONST_INPUTS.intersection(fields):
            mujoco.mj_setConst(self.model, self.data)
        self._task, self._task_arrays = task, arrays

    def get_task(self) -> Any:
        if self._task is None:
            raise RuntimeError(f"{type(self).__name__}: no task set; call set_task() or reset()")
        return self._task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        elif self._task is None:
            self.set_task(self.sample_tasks(1)[0])
        mujoco.mj_resetData(self.model, self.data)
        qpos, qvel = self.family.initial_state(self.model, self.np_random)
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)
        self._copy_data_before()
        obs = self.family.observation(self._state(self.data.qpos.copy(), np.zeros(self.model.nu)))
        return np.asarray(obs[0], dtype=np.float64), {"task": self._task}

    def _state(self, qpos_before: np.ndarray, action: np.ndarray) -> SimState:
        d = self.data
        return SimState(d.qpos[None], d.qvel[None], qpos_before[None], action[None], self.dt,
                        {name: getattr(d, name)[None] for name in self.family.data_fields},
                        self._data_before)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        task = self.get_task()
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.model.nu),
                         self.action_space.low, self.action_space.high)
        d = self.data
        qpos_before, time_before = d.qpos.copy(), d.time
        unstable = _unstable(d.qpos[None], d.qvel[None])
        self._copy_data_before()
        d.ctrl[:] = action
        mujoco.mj_step(self.model, d, nstep=self.family.frame_skip)
        if self.family.forward_after_step:
            mujoco.mj_forward(self.model, d)
        diverged = _diverged(np.array([time_before]), np.array([d.time]),
                             self.dt, unstable, d.qpos[None], d.qvel[None])
        obs, reward, terminated, terms, diverged = _finish_step(
            self.family, self._state(qpos_before, action), self._task_arrays, diverged)
        info = {"task": task, "diverged": bool(diverged[0]),
                **{k: float(np.asarray(v).reshape(-1)[0]) for k, v in terms.items()}}
        return obs[0], float(reward[0]), bool(terminated[0]), bool(diverged[0]), info


class MujocoBatchEnv(BatchTaskEnv):
    """``num_envs`` simulations of a MuJoCo task family in one ``mujoco.batch.Batch``.

    ``threads`` is the Batch's thread count (0: all CPU cores). Same dynamics,
    observations and rewards as the family's gymnasium env.
    """

    family_cls: ClassVar[type[MujocoTaskFamily]]

    def __init__(self, num_envs: int, horizon: int = 200, threads: int = 0, **kwargs: Any) -> None:
        if num_envs < 1 or horizon < 1 or threads < 0:
            raise ValueError(f"{type(self).__name__}: need num_envs >= 1, horizon >= 1 and "
                             f"threads >= 0, got {num_envs}, {horizon}, {threads}")
        self.family = make_family(self.family_cls, kwargs)
        self.model = load_model(self.family)
        self.num_envs, self.horizon = num_envs, horizon
        self.action_space = _action_space(self.model)
        self.observation_space = _observation_space(self.family, self.model)
        self.dt = self.model.opt.timestep * self.family.frame_skip
        self.batch = mujoco.batch.Batch(self.model, num_envs, nthread=threads)
        b = self.batch
        self._qpos, self._qvel, self._ctrl, self._time = (b.bind("qpos"), b.bind("qvel"),
                                                          b.bind("ctrl"), b.bind("time"))
        self._data = {name: b.bind(name) for name in self.family.data_fields}
        self._bound_before = {name: b.bind(name) for name in self.family.data_fields_before}
        self._data_before: dict[str, np.ndarray] = {}
        self._low = self.action_space.low.astype(np.float64)
        self._high = self.action_space.high.astype(np.float64)
        self._task_arrays: dict[str, np.ndarray] = {}
        self._seed_rng = np.random.default_rng()
        # Batch.step computes the stages up to this one after stepping: mjSTAGE_ACC is
        # mj_forward (bit-identical to a separate Batch.forward on the stepped simulations)
        self._stage_after_step = (mujoco.mjtStage.mjSTAGE_ACC if self.family.forward_after_step
                                  else mujoco.mjtStage.mjSTAGE_NONE)
        self._t = 0
        self._done = np.zeros(num_envs, dtype=bool)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        return self.family.sample_tasks(n, rng)

    def reference_task_set(self) -> ReferenceTaskSet | None:
        return self.family.reference_task_set()

    def _copy_data_before(self) -> None:
        self._data_before = {name: bound.copy() for name, bound in self._bound_before.items()}

    def reset(self, tasks: Sequence[Any], seeds: Sequence[int] | None = None) -> np.ndarray:
        self._check_tasks(tasks, seeds)
        if seeds is None:
            seeds = self._seed_rng.integers(0, 2**63 - 1, size=self.num_envs)
        self._task_arrays = self.family.task_arrays(tasks)
        fields = self.family.model_fields(tasks, self.model)
        for name, values in fields.items():
            target = self.batch.expand(name)
            values = np.asarray(values, dtype=target.dtype)
            if values.shape != target.shape:
                raise TaskFamilyError(f"{type(self.family).__name__}.model_fields: {name} has "
                                      f"shape {values.shape}, expected {target.shape}")
            target[...] = values
        if _SETCONST_INPUTS.intersection(fields):
            self.batch.set_const()
        self.batch.reset(stage=mujoco.mjtStage.mjSTAGE_NONE)
        for i, seed in enumerate(seeds):
            self._qpos[i], self._qvel[i] = self.family.initial_state(
                self.model, np.random.default_rng(int(seed)))
        self.batch.forward()
        self._copy_data_before()
        self._t = 0
        self._done = np.zeros(self.num_envs, dtype=bool)
        obs = self.family.observation(self._sim_state(self._qpos.copy(),
                                                      np.zeros_like(self._ctrl)))
        return np.asarray(obs, dtype=np.float64)

    def _sim_state(self, qpos_before: np.ndarray, action: np.ndarray) -> SimState:
        return SimState(self._qpos, self._qvel, qpos_before, action, self.dt, self._data,
                        self._data_before)

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        action = np.clip(np.asarray(actions, dtype=np.float64).reshape(self._ctrl.shape),
                         self._low, self._high)
        self._ctrl[...] = action
        qpos_before, time_before = self._qpos.copy(), self._time.copy()
        unstable = _unstable(self._qpos, self._qvel)
        self._copy_data_before()
        # Simulations whose episode ended are not stepped again (an ant that fell would
        # otherwise cost as much physics as one still running); their outputs go stale.
        ids = np.flatnonzero(~self._done) if self._done.any() else None
        failed = np.zeros(self.num_envs, dtype=bool)
        try:
            self.batch.step(ids=ids, nstep=self.family.frame_skip,
                            stage=self._stage_after_step)
        except mujoco.batch.SimulationError as err:  # MuJoCo errors in some simulations
            failed[err.ids] = True
        diverged = failed | _diverged(time_before, self._time, self.dt, unstable, self._qpos,
                                      self._qvel)
        diverged &= ~self._done
        obs, reward, terminated, _, diverged = _finish_step(
            self.family, self._sim_state(qpos_before, action), self._task_arrays, diverged)
        self._t += 1
        truncated = diverged | (self._t >= self.horizon)
        self._done |= terminated | truncated
        return obs, reward, terminated, truncated, {"diverged": diverged}


def make_env_classes(family: type[MujocoTaskFamily],
                     env_base: type[MujocoTaskEnv] = MujocoTaskEnv,
                     batch_base: type[MujocoBatchEnv] = MujocoBatchEnv,
                     ) -> tuple[type[MujocoTaskEnv], type[MujocoBatchEnv]]:
    """The gymnasium env class and batched env class of ``family`` (subclasses of
    ``env_base`` and ``batch_base``).

    The gymnasium class carries the family's docstring (its reward formula).
    """
    load_model(family)  # fail now, naming the file, rather than at first use
    module = family.__module__
    env_cls = type(f"{family.__name__}Env", (env_base,),
                   {"family_cls": family, "__doc__": family.__doc__, "__module__": module})
    batch_cls = type(f"{family.__name__}BatchEnv", (batch_base,),
                     {"family_cls": family, "__module__": module,
                      "__doc__": f"Batched env of {family.__name__} (see its docstring)."})
    return env_cls, batch_cls


def register_mujoco_family(id: str, family: type[MujocoTaskFamily], *, max_episode_steps: int = 200,
                           description: str = "", default_kwargs: dict[str, Any] | None = None,
                           override: bool = False) -> "TaskFamilySpec":
    """Register a MuJoCo task family: its gymnasium env ``metarl/<id>`` and its batched env.

    The id then works as ``env.id`` in a config, with ``sampler.backend: batch``
    (or ``gym``). ``default_kwargs`` are passed to ``family`` unless a config overrides them.
    """
    from .registry import register_task_family

    if not (isinstance(family, type) and issubclass(family, MujocoTaskFamily)):
        raise TypeError(f"register_mujoco_family({id!r}): family must be a MujocoTaskFamily "
                        f"subclass, got {family!r}")
    make_family(family, default_kwargs or {})  # bad defaults fail at registration
    env_cls, batch_cls = make_env_classes(family)
    return register_task_family(id, env_entry_point=env_cls, batch_entry_point=batch_cls,
                                max_episode_steps=max_episode_steps,
                                description=description or (family.__doc__ or "").strip()
                                .split("\n")[0], default_kwargs=default_kwargs,
                                override=override)
