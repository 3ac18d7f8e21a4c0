"""Family kwargs: unknown names get a near match and the allowed list, wrong types the expected
type, for every registered family, user families and the `metarl train` command line."""

import importlib
import re
from pathlib import Path
from typing import Any, Literal, Optional

import gymnasium
import metarl.envs
import numpy as np
import pytest
from gymnasium import spaces
from metarl.cli import main
from metarl.envs import (
    BatchTaskEnv,
    GoalTask,
    TaskEnvMixin,
    TaskFamilyError,
    get_task_family,
    list_task_families,
    register_mujoco_family,
    register_task_family,
)
from metarl.envs.kwarg_check import RESERVED, TaskFamilyKwargError, family_kwargs
from metarl.envs.locomotion import HalfCheetahVel

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = list_task_families()
KINDS = ["env", "batch"]


def _make(spec, kind, **kwargs):
    if kind == "batch":
        return spec.make_batch_env(2, horizon=5, threads=1, **kwargs)
    return spec.make_env(**kwargs)


def _entry(spec, kind):
    entry = spec.batch_entry_point if kind == "batch" else spec.env_entry_point
    if callable(entry):
        return entry
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def _raises(spec, kind, **kwargs) -> TaskFamilyKwargError:
    with pytest.raises(TaskFamilyKwargError) as info:
        _make(spec, kind, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "__init__" not in message
    assert message.startswith(f"task family '{spec.id}': ")
    return info.value


@pytest.fixture
def unregister():
    ids = []
    yield ids.append
    for family_id in ids:
        metarl.envs.registry._REGISTRY.pop(family_id, None)
        gymnasium.registry.pop(f"metarl/{family_id}", None)


# -- every registered family --------------------------------------------------------------------


def test_builtin_families_list_their_kwargs():
    assert get_task_family("Navigation2D-v0").allowed_kwargs() == [
        "distance", "goal_low", "goal_high", "max_action", "goal_tolerance", "start_range"]
    # AntGoal's own keyword first, then those its **kwargs forward to the ant's __init__
    assert get_task_family("AntGoal-v0").allowed_kwargs(batch=True) == [
        "goal_radius", "ctrl_cost_weight", "contact_cost_weight", "survive_reward",
        "healthy_z_low", "healthy_z_high", "include_contact_forces", "reset_noise_scale"]
    for spec in FAMILIES:
        allowed = spec.allowed_kwargs()
        assert allowed and not set(allowed) & set(RESERVED), spec.id
        if spec.has_batch_env:
            assert spec.allowed_kwargs(batch=True) == allowed, spec.id


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.id)
def test_misspelled_kwarg_suggests_the_right_one(spec, kind):
    allowed = spec.allowed_kwargs(batch=kind == "batch")
    for name in allowed:
        err = _raises(spec, kind, **{name[:-1]: 1.0})
        assert err.kwarg == name[:-1]
        assert str(err) == (f"task family '{spec.id}': unknown kwarg '{name[:-1]}'; did you mean "
                            f"'{name}'? (allowed: {', '.join(allowed)})")
    err = _raises(spec, kind, zzz=1)
    assert "did you mean" not in str(err) and f"(allowed: {', '.join(allowed)})" in str(err)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.id)
def test_wrongly_typed_kwarg_names_the_expected_type(spec, kind):
    params = family_kwargs(_entry(spec, kind)).params
    name = next(n for n, p in params.items() if p.hint is float)
    err = _raises(spec, kind, **{name: "abc"})
    assert str(err) == (f"task family '{spec.id}': kwarg '{name}' expects a number (float), "
                        "got 'abc' (str)")
    assert "expects a number (float), got True (bool)" in str(_raises(spec, kind, **{name: True}))
    assert "got [1.0] (list)" in str(_raises(spec, kind, **{name: [1.0]}))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", FAMILIES, ids=lambda s: s.id)
def test_valid_kwargs_still_build(spec, kind):
    params = family_kwargs(_entry(spec, kind)).params
    env = _make(spec, kind, **{n: p.default for n, p in params.items()})
    env.close()
    ints = {n: int(p.default) for n, p in params.items()
            if p.hint is float and float(p.default).is_integer()}
    ints.update({n: 0 for n in ("reset_noise_scale", "start_range") if n in params})
    assert ints
    env = _make(spec, kind, **ints)  # an int fits a float
    env.close()


@pytest.mark.parametrize("kind", KINDS)
def test_reserved_names_are_not_family_kwargs(kind):
    spec = get_task_family("Navigation2D-v0")
    name = "max_episode_steps" if kind == "batch" else "horizon"  # the other kind's keyword
    err = _raises(spec, kind, **{name: 5})
    assert err.kwarg == name
    assert str(err) == (f"task family 'Navigation2D-v0': kwarg '{name}' is set by metarl itself "
                        "(from env.horizon), not a family kwarg (allowed: distance, goal_low, "
                        "goal_high, max_action, goal_tolerance, start_range)")
    extra = {"batch": ("render_mode", "rgb_array"), "env": ("num_envs", 2)}[kind]
    assert f"'{extra[0]}' is set by metarl itself, not" in str(_raises(spec, kind, **dict([extra])))
    assert spec.make_env(disable_env_checker=True).spec.max_episode_steps == 100


@pytest.mark.parametrize("kind", KINDS)
def test_range_checks_of_the_families_still_run(kind):
    with pytest.raises(TaskFamilyError, match=r"^task family 'Navigation2D-v0': Navigation2D: "
                                              r"goal_low \(1.0\) must be < goal_high \(0.5\)$"):
        _make(get_task_family("Navigation2D-v0"), kind, goal_low=1.0)
    with pytest.raises(TaskFamilyError, match=r"distance='manhattan' is not one of"):
        _make(get_task_family("Navigation2D-v0"), kind, distance="manhattan")
    with pytest.raises(TaskFamilyError,
                       match=r"^task family 'AntGoal-v0': AntGoal: goal_radius must be > 0"):
        _make(get_task_family("AntGoal-v0"), kind, goal_radius=0)
    bad_bool = _raises(get_task_family("HalfCheetahDir-v0"), kind,
                       exclude_current_positions_from_observation="no")
    assert "kwarg 'exclude_current_positions_from_observation' expects true or false (bool), " \
           "got 'no' (str)" in str(bad_bool)


# -- user families ------------------------------------------------------------------------------


class _ToyParams:
    """Annotated kwargs shared by the toy envs below (a point moving by ``scale * action``)."""

    def __init__(self, scale: float = 1.0, steps: int = 3, mode: Literal["sum", "max"] = "sum",
                 offset: tuple[float, float] = (0.0, 0.0), label: Optional[str] = None,
                 flag: bool = False, weights: list[float] | None = None) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale, self.steps, self.mode, self.offset = scale, steps, mode, tuple(offset)
        self.label, self.flag, self.weights = label, flag, weights


class ToyEnv(TaskEnvMixin, gymnasium.Env):
    """A point in the plane; the task is a goal, the reward the negative distance to it."""

    def __init__(self, scale: float = 1.0, steps: int = 3, mode: Literal["sum", "max"] = "sum",
                 offset: tuple[float, float] = (0.0, 0.0), label: Optional[str] = None,
                 flag: bool = False, weights: list[float] | None = None) -> None:
        self.params = _ToyParams(scale, steps, mode, offset, label, flag, weights)
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self._task, self._pos = GoalTask((0.0, 0.0)), np.zeros(2)

    def sample_tasks(self, n, rng=None):
        rng = rng if rng is not None else self.np_random
        return [GoalTask(tuple(map(float, g))) for g in rng.uniform(-1, 1, size=(n, 2))]

    def set_task(self, task):
        self._task = task

    def get_task(self):
        return self._task

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos = np.array(self.params.offset, dtype=np.float64)
        return self._pos.copy(), {"task": self._task}

    def step(self, action):
        self._pos = self._pos + self.params.scale * np.asarray(action, dtype=np.float64)
        reward = -float(np.linalg.norm(self._pos - np.asarray(self._task.goal)))
        return self._pos.copy(), reward, False, False, {"task": self._task}


class ToyBatchEnv(BatchTaskEnv):
    """``num_envs`` toy points stepped with numpy."""

    def __init__(self, num_envs: int, horizon: int, threads: int = 0, scale: float = 1.0,
                 steps: int = 3, mode: Literal["sum", "max"] = "sum",
                 offset: tuple[float, float] = (0.0, 0.0), label: Optional[str] = None,
                 flag: bool = False, weights: list[float] | None = None) -> None:
        self.params = _ToyParams(scale, steps, mode, offset, label, flag, weights)
        self.num_envs, self.horizon = num_envs, horizon
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float64)
        self._pos, self._goals = np.zeros((num_envs, 2)), np.zeros((num_envs, 2))

    def sample_tasks(self, n, rng):
        return [GoalTask(tuple(map(float, g))) for g in rng.uniform(-1, 1, size=(n, 2))]

    def reset(self, tasks, seeds=None):
        self._check_tasks(tasks, seeds)
        self._goals = np.array([t.goal for t in tasks], dtype=np.float64)
        self._pos = np.tile(np.array(self.params.offset, dtype=np.float64), (self.num_envs, 1))
        return self._pos.copy()

    def step(self, actions):
        self._pos = self._pos + self.params.scale * np.asarray(actions, dtype=np.float64)
        reward = -np.linalg.norm(self._pos - self._goals, axis=1)
        false = np.zeros(self.num_envs, dtype=bool)
        return self._pos.copy(), reward, false, false, {}


TOY_KWARGS = ["scale", "steps", "mode", "offset", "label", "flag", "weights"]


@pytest.mark.parametrize("kind", KINDS)
def test_user_family_gets_the_same_checks(kind, unregister):
    spec = register_task_family("ToyKwargs-v0", env_entry_point=ToyEnv,
                                batch_entry_point=ToyBatchEnv, max_episode_steps=5)
    unregister(spec.id)
    assert spec.allowed_kwargs(batch=kind == "batch") == TOY_KWARGS  # no num_envs, horizon
    err = _raises(spec, kind, scael=2.0)
    assert str(err) == ("task family 'ToyKwargs-v0': unknown kwarg 'scael'; did you mean "
                        f"'scale'? (allowed: {', '.join(TOY_KWARGS)})")
    wrong = {
        "steps": (2.5, "expects an integer (int), got 2.5 (float)"),
        "flag": ([1], "expects true or false (bool), got [1] (list)"),
        "mode": ("summ", "expects one of 'sum', 'max', got 'summ' (str); did you mean 'sum'?"),
        "offset": ([1.0], "expects a list (tuple[float, float]), got [1.0] (list)"),
        "label": (3, "expects a string or null (Optional[str]), got 3 (int)"),
        "weights": (["a"], "expects a list or null (list[float] | None), got ['a'] (list)"),
        "scale": (np.zeros((3, 3)), "got array([[0., 0., 0.], [0., 0., 0.], [0., 0., 0.]]) "
                                    "(ndarray)"),
    }
    for name, (value, expected) in wrong.items():
        err = _raises(spec, kind, **{name: value})
        assert err.kwarg == name and f"kwarg '{name}' " in str(err), str(err)
        assert expected in str(err), str(err)
    env = _make(spec, kind, scale=2, steps=np.int64(4), mode="max", offset=[0.5, -0.5],
                label=None, flag=np.bool_(True), weights=[1, 2.5])
    assert env.unwrapped.params.scale == 2 if kind == "env" else env.params.scale == 2
    with pytest.raises(TaskFamilyError, match=r"^task family 'ToyKwargs-v0': scale must be > 0"):
        _make(spec, kind, scale=-1.0)


class LenientEnv(ToyEnv):
    """Takes ``**kwargs`` it keeps for itself: names outside its signature pass unchecked."""

    def __init__(self, scale: float = 1.0, **extra: Any) -> None:
        super().__init__(scale=scale)
        self.extra = extra


class UnannotatedEnv(ToyEnv):
    """No annotations: any value fits, but unknown names are still errors."""

    def __init__(self, scale=1.0, steps=3):  # noqa: ANN001 - unannotated on purpose
        super().__init__(scale=float(scale), steps=int(steps))


def test_user_family_with_var_kwargs_or_no_annotations_is_checked_leniently(unregister):
    lenient = register_task_family("LenientKwargs-v0", env_entry_point=LenientEnv,
                                   max_episode_steps=5)
    unregister(lenient.id)
    assert lenient.make_env(anything=[1, 2], scale=3).unwrapped.extra == {"anything": [1, 2]}
    assert "kwarg 'scale' expects a number (float)" in str(_raises(lenient, "env", scale="big"))
    bare = register_task_family("BareKwargs-v0", env_entry_point=UnannotatedEnv,
                                max_episode_steps=5)
    unregister(bare.id)
    assert bare.make_env(scale="2", steps=2.0).unwrapped.params.scale == 2.0
    assert "did you mean 'steps'?" in str(_raises(bare, "env", step=2))


class BonusCheetah(HalfCheetahVel):
    """Half-cheetah velocity with an extra (unused) annotated keyword."""

    def __init__(self, bonus_weight: float = 0.0, repeats: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.bonus_weight, self.repeats = bonus_weight, repeats


@pytest.mark.parametrize("kind", KINDS)
def test_user_mujoco_family_gets_the_same_checks(kind, unregister):
    spec = register_mujoco_family("BonusCheetah-v0", BonusCheetah, override=True)
    unregister(spec.id)
    allowed = ["bonus_weight", "repeats", "velocity_low", "velocity_high", "ctrl_cost_weight",
               "reset_noise_scale", "exclude_current_positions_from_observation"]
    assert spec.allowed_kwargs(batch=kind == "batch") == allowed
    err = _raises(spec, kind, bonus_wieght=1.0)
    assert str(err) == ("task family 'BonusCheetah-v0': unknown kwarg 'bonus_wieght'; did you "
                        f"mean 'bonus_weight'? (allowed: {', '.join(allowed)})")
    assert "kwarg 'repeats' expects an integer (int), got 2.0 (float)" in str(
        _raises(spec, kind, repeats=2.0))
    with pytest.raises(TaskFamilyError,
                       match=r"^task family 'BonusCheetah-v0': BonusCheetah: repeats must"):
        _make(spec, kind, repeats=0)
    env = _make(spec, kind, bonus_weight=1, repeats=2, velocity_high=3)
    assert (env.unwrapped if kind == "env" else env).family.repeats == 2
    env.close()


# -- the command line ---------------------------------------------------------------------------


def _train(tmp_path, monkeypatch, capsys, *sets: str) -> str:
    monkeypatch.chdir(ROOT)
    args = ["train", "configs/maml_trpo/navigation_2d.yaml", "--run-dir", str(tmp_path / "r")]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "__init__" not in err and "Traceback" not in err
    return err


def test_cli_names_family_misspelled_kwarg_and_the_right_one(tmp_path, monkeypatch, capsys):
    err = _train(tmp_path, monkeypatch, capsys, "env.kwargs.distanc=squared")
    assert err.startswith("metarl train: error: env.kwargs.distanc: task family "
                          "'Navigation2D-v0': unknown kwarg 'distanc'; did you mean 'distance'? "
                          "(allowed: distance, goal_low,")


@pytest.mark.parametrize("setting, expected", [
    ("env.kwargs.goal_low=abc",
     "env.kwargs.goal_low: task family 'Navigation2D-v0': kwarg 'goal_low' expects a number "
     "(float), got 'abc' (str)"),
    ("env.kwargs.horizon=3",  # would clash with the sampler's own horizon keyword
     "env.kwargs.horizon: task family 'Navigation2D-v0': kwarg 'horizon' is set by metarl "
     "itself (from env.horizon)"),
    ("env.kwargs.goal_low=2",
     "env.kwargs: task family 'Navigation2D-v0': Navigation2D: goal_low (2) must be <"),
])
def test_cli_reports_bad_kwargs_in_one_line(setting, expected, tmp_path, monkeypatch, capsys):
    assert expected in _train(tmp_path, monkeypatch, capsys, setting)


def test_cli_checks_the_gym_backend_too(tmp_path, monkeypatch, capsys):
    err = _train(tmp_path, monkeypatch, capsys, "sampler.backend=gym",
                 "env.kwargs.disable_env_checker=false")
    assert re.search(r"env\.kwargs\.disable_env_checker: .*is set by metarl itself", err)
