"""PEARL under faults: simulations that never produce a valid step, episodes that are merely
short, and NaN/Inf in the learner state before or during an iteration."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import torch

from metarl.algos.pearl import (
    MAX_ROUNDS_WITHOUT_STEPS,
    PEARL,
    CollectionError,
    NonFiniteStateError,
    PEARLConfig,
)
from metarl.envs.navigation import Navigation2DBatchEnv, Navigation2DEnv
from metarl.envs.registry import TaskFamilySpec
from metarl.samplers import BatchSampler
from test_pearl import TINY

HORIZON = 20


class StepBudgetExceeded(AssertionError):
    """Collection kept stepping far past what the schedule needs: its loop is unbounded."""


class StepBudget:
    """Counts ``env.step`` calls and fails once ``limit`` is passed, so that a collection
    loop that never ends fails the test instead of hanging it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.calls = limit, 0

    def spend(self) -> None:
        self.calls += 1
        if self.calls > self.limit:
            raise StepBudgetExceeded(f"env.step was called {self.calls} times (budget "
                                     f"{self.limit}): collection does not end")


class FaultyNavigationBatchEnv(Navigation2DBatchEnv):
    """Navigation2D whose simulations with a goal left of ``diverge_left_of`` diverge from
    step ``diverge_at`` on (0: the first step), signalled as MuJoCo's batched envs do:
    ``info["diverged"]``, the episode truncated there, reward 0, a finite observation."""

    def __init__(self, num_envs: int, horizon: int = 100, threads: int = 0,
                 diverge_at: float = 0, diverge_left_of: float = math.inf,
                 budget: StepBudget | None = None, **navigation: Any) -> None:
        super().__init__(num_envs, horizon, threads, **navigation)
        self.diverge_at, self.diverge_left_of = diverge_at, diverge_left_of
        self.budget = budget

    def step(self, actions: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.budget is not None:
            self.budget.spend()
        obs, reward, terminated, truncated, _ = super().step(actions)
        step_index = self._t - 1
        diverged = (step_index >= self.diverge_at) & (self._goals[:, 0] < self.diverge_left_of)
        return (obs, np.where(diverged, 0.0, reward), terminated, truncated | diverged,
                {"diverged": diverged})


FAULTY = TaskFamilySpec("FaultyNavigation2D-v0", env_entry_point=Navigation2DEnv,
                        batch_entry_point=FaultyNavigationBatchEnv, max_episode_steps=HORIZON)


def _pearl(env_kwargs: dict[str, Any] | None = None, seed: int = 0, **overrides: Any) -> PEARL:
    sampler = BatchSampler(FAULTY, env_kwargs=env_kwargs or {"diverge_at": math.inf},
                           horizon=HORIZON, seed=seed)
    return PEARL(sampler, PEARLConfig(**{**TINY, **overrides}), seed=seed)


# -- collection -------------------------------------------------------------------------------

def test_collection_fails_naming_the_task_when_every_simulation_diverges_at_its_first_step():
    budget = StepBudget(limit=200)
    algo = _pearl({"diverge_at": 0, "budget": budget})
    with pytest.raises(CollectionError) as raised:
        algo.train_iteration()
    message = str(raised.value)
    assert "\n" not in message
    for part in (f"training task 0 {algo.train_tasks[0]!r}", "'FaultyNavigation2D-v0'",
                 "still needs 40 of the 40 steps of algo.num_initial_steps",
                 "every simulation (2 per round) diverged at its first step",
                 "so did 3 more training task(s)", "env.kwargs"):
        assert part in message, part
    # every round is one env.step call (all simulations end at once), and it gives up after
    # MAX_ROUNDS_WITHOUT_STEPS rounds, not after the budget
    assert budget.calls == MAX_ROUNDS_WITHOUT_STEPS
    assert algo.replay_buffer.sizes == [0] * 4


def test_collection_names_the_diverging_task_while_the_others_collect():
    budget = StepBudget(limit=200)
    algo = _pearl({"diverge_at": 0, "diverge_left_of": 0.0, "budget": budget})
    bad = [i for i, task in enumerate(algo.train_tasks) if task.goal[0] < 0.0]
    assert 0 < len(bad) < len(algo.train_tasks), "seed 0 should give goals on both sides"
    named = re.escape(f"PEARL: training task {bad[0]} {algo.train_tasks[bad[0]]!r} ")
    with pytest.raises(CollectionError, match="^" + named):
        algo.train_iteration()
    for task in range(len(algo.train_tasks)):
        if task in bad:
            assert algo.replay_buffer.sizes[task] == 0
        else:
            assert algo.replay_buffer.sizes[task] >= 40
    assert budget.calls <= HORIZON + MAX_ROUNDS_WITHOUT_STEPS


@pytest.mark.parametrize("env_kwargs", [
    {"diverge_at": 1},  # one valid step per episode, then the simulation diverges
    {"diverge_at": math.inf, "goal_tolerance": 10.0},  # every episode ends at its first step
], ids=["diverging-after-one-step", "terminating-at-the-first-step"])
def test_tasks_whose_episodes_are_short_but_valid_still_collect_their_steps(env_kwargs):
    budget = StepBudget(limit=20_000)
    algo = _pearl({**env_kwargs, "budget": budget})
    result = algo.train_iteration()
    stats = result.scalars
    assert result.env_steps == 4 * 40 + 2 * (20 + 20 + 40)  # one step per episode: exact
    assert all(size >= 40 for size in algo.replay_buffer.sizes)
    diverging = env_kwargs["diverge_at"] == 1
    assert (stats["diagnostics/sim_diverged"] > 0) == diverging
    assert algo.skip_reason is None
    assert math.isfinite(stats["losses/qf"]) and math.isfinite(stats["losses/policy"])


# -- NaN rollback -----------------------------------------------------------------------------

def _learner_tensors(algo: PEARL) -> dict[str, torch.Tensor]:
    """Every network tensor (the target V included) and every optimiser state tensor."""
    tensors = {f"nets.{k}": v for k, v in algo.nets.state_dict().items()}
    for label, optimizer in (("critic", algo.critic_optimizer), ("actor", algo.actor_optimizer)):
        for i, state in enumerate(optimizer.state.values()):
            tensors.update({f"{label}.{i}.{k}": v for k, v in state.items()
                            if isinstance(v, torch.Tensor)})
    return tensors


def _non_finite(algo: PEARL) -> list[str]:
    return [k for k, v in _learner_tensors(algo).items()
            if v.is_floating_point() and not torch.isfinite(v).all()]


def _copy(algo: PEARL) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _learner_tensors(algo).items()}


def _inject_policy_weight(algo: PEARL) -> str:
    with torch.no_grad():
        algo.nets.policy.net[0].weight[0, 0] = float("nan")
    return "networks.policy.net.0.weight"


def _inject_target_vf(algo: PEARL) -> str:
    with torch.no_grad():
        algo.nets.target_vf.net[-1].bias.fill_(float("inf"))
    return "networks.target_vf.net."


def _inject_critic_exp_avg(algo: PEARL) -> str:
    weight = algo.nets.qf1.net[0].weight
    algo.critic_optimizer.state[weight]["exp_avg"][0, 0] = float("nan")
    return "critic_optimizer[qf1.net.0.weight].exp_avg"


def _inject_actor_exp_avg_sq(algo: PEARL) -> str:
    weight = algo.nets.vf.net[0].weight
    algo.actor_optimizer.state[weight]["exp_avg_sq"].fill_(float("inf"))
    return "actor_optimizer[vf.net.0.weight].exp_avg_sq"


@pytest.mark.parametrize("inject", [_inject_policy_weight, _inject_target_vf,
                                    _inject_critic_exp_avg, _inject_actor_exp_avg_sq],
                         ids=lambda f: f.__name__.removeprefix("_inject_"))
def test_nan_injected_before_an_iteration_is_rolled_back_and_does_not_return(inject):
    algo = _pearl()
    algo.train_iteration()
    assert algo.skip_reason is None and not _non_finite(algo)
    good = _copy(algo)
    name = inject(algo)
    assert _non_finite(algo)

    stats = algo.train_iteration().scalars  # would sample with a NaN policy, or restore the NaN
    assert not _non_finite(algo)
    assert algo.skip_reason is not None and "before the iteration" in algo.skip_reason
    assert name in algo.skip_reason
    assert stats["diagnostics/skipped_updates"] == 1.0
    for key, value in _learner_tensors(algo).items():  # exactly the state after iteration 1
        assert torch.equal(value, good[key]), key

    stats = algo.train_iteration().scalars
    assert algo.skip_reason is None and not _non_finite(algo)
    assert stats["diagnostics/skipped_updates"] == 0.0
    assert math.isfinite(stats["losses/qf"]) and math.isfinite(stats["losses/policy"])
    changed = algo.nets.qf1.net[0].weight
    assert not torch.equal(changed, good["nets.qf1.net.0.weight"])  # it trains again


def test_non_finite_update_is_rolled_back_to_the_checked_state():
    algo = _pearl()
    # float32 overflows: every Bellman target is inf (set after the range check, which
    # rejects it as a setting)
    algo.cfg.reward_scale = 1e39
    start = _copy(algo)
    stats = algo.train_iteration().scalars
    assert algo.skip_reason is not None and "rolled back" in algo.skip_reason
    assert stats["diagnostics/skipped_updates"] == 1.0
    assert not _non_finite(algo)
    assert not algo.critic_optimizer.state  # Adam's moments are gone with the update
    for key, value in _learner_tensors(algo).items():
        assert torch.equal(value, start[key]), key
    algo.cfg.reward_scale = 5.0
    algo.train_iteration()
    assert algo.skip_reason is None and not _non_finite(algo)


def test_non_finite_state_without_a_finite_snapshot_fails_clearly():
    algo = _pearl()
    with torch.no_grad():
        algo.nets.qf2.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteStateError, match=r"^PEARL: the learner state holds NaN/Inf "
                                                  r"before this iteration \(networks\.qf2\.net\."
                                                  r"0\.weight\).*no finite snapshot"):
        algo.train_iteration()
    assert algo.replay_buffer.sizes == [0] * 4  # it failed before sampling anything


def test_a_loaded_non_finite_state_is_not_rolled_back_to_the_previous_runs_snapshot():
    algo = _pearl()
    algo.train_iteration()
    state = algo.state_dict()
    state["networks"] = {k: v.clone() for k, v in state["networks"].items()}
    state["networks"]["vf.net.0.bias"].fill_(float("nan"))
    algo.load_state_dict(state)
    with pytest.raises(NonFiniteStateError, match=r"networks\.vf\.net\.0\.bias"):
        algo.train_iteration()
