"""RL²: the recurrent sampler against a step-by-step reference, hidden-state resets at trial
boundaries only, trial GAE and PPO's clipped loss against hand-computed values, learning on
navigation, TRPO's step, exact resume and `metarl eval` through the command line, NaN guards."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from metarl.algos.rl2.learner import ppo_loss
from metarl.cli import main
from metarl.config import load_config
from metarl.envs import get_task_family
from metarl.experiment import build
from metarl.policies import GaussianGRUPolicy
from metarl.samplers import BatchSampler, EpisodeBatch, RecurrentSampler, RolloutStreams, TrialBatch

from cli_helpers import two_plus_two_equals_four

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "rl2" / "navigation_2d.yaml")


def _policy(sampler, hidden=8, seed=0):
    torch.manual_seed(seed)
    return GaussianGRUPolicy(sampler.obs_dim, sampler.act_dim, hidden, init_std=0.5).double()


def _reference_rollout(family, env_kwargs, policy, tasks, trials, episodes, horizon, seed):
    """One simulation at a time: a gymnasium env and one policy call per step, drawing the
    streams in the recurrent sampler's documented order (per episode: seeds, then noise)."""
    streams = RolloutStreams(seed)
    n = len(tasks) * trials
    draws = []
    for _ in range(episodes):
        seeds = streams.reset_rng.integers(0, 2**63 - 1, size=n)
        draws.append((seeds, torch.randn((horizon, n, policy.act_dim),
                                         generator=streams.generator).double()))
    shape = (episodes, n, horizon)
    obs_out = np.zeros((*shape, policy.obs_dim))
    act_out = np.zeros((*shape, policy.act_dim))
    rew_out, mask_out = np.zeros(shape), np.zeros(shape)
    for i, task in enumerate(task for task in tasks for _ in range(trials)):
        env = family.make_env(max_episode_steps=horizon, disable_env_checker=True, **env_kwargs)
        env.unwrapped.set_task(task)
        hidden = policy.initial_state(1)
        prev_action, prev_reward = np.zeros(policy.act_dim, np.float32), np.float32(0.0)
        for k, (seeds, noise) in enumerate(draws):
            obs, _ = env.reset(seed=int(seeds[i]))
            flag = np.float32(k > 0)
            for t in range(horizon):
                x = np.concatenate([np.asarray(obs, np.float32), prev_action,
                                    [prev_reward], [flag]]).astype(np.float32)
                with torch.no_grad():
                    mean, std, hidden = policy.step(torch.from_numpy(x).double()[None], hidden)
                action = (mean + std * noise[t, i])[0].numpy().astype(np.float32)
                obs_out[k, i, t], act_out[k, i, t] = obs, action
                obs, reward, term, trunc, _ = env.step(action)
                rew_out[k, i, t], mask_out[k, i, t] = reward, 1.0
                prev_action, prev_reward, flag = action, np.float32(reward), np.float32(0.0)
                if term or trunc:
                    break
        env.close()
    return obs_out, act_out, rew_out, mask_out


@pytest.mark.parametrize("family_id, kwargs", [("Navigation2D-v0", {"goal_tolerance": 0.2}),
                                               ("MAMLHalfCheetahVel-v0", {})])
def test_recurrent_sampler_matches_a_step_by_step_reference(family_id, kwargs):
    family = get_task_family(family_id)
    tasks_n, trials, episodes, horizon, seed = 3, 2, 3, 7, 5
    sampler = BatchSampler(family, kwargs, horizon=horizon, seed=seed, threads=1)
    policy = _policy(sampler)
    tasks = sampler.sample_tasks(tasks_n, np.random.default_rng(1))
    batch = RecurrentSampler(sampler).sample(policy, tasks, trials, episodes)
    ref_obs, ref_act, ref_rew, ref_mask = _reference_rollout(
        family, kwargs, policy, tasks, trials, episodes, horizon, seed)
    n = tasks_n * trials
    for k, episode in enumerate(batch.episodes):
        mask = episode.mask.reshape(n, horizon).numpy()
        np.testing.assert_array_equal(mask, ref_mask[k])
        for got, want in ((episode.observations, ref_obs[k]), (episode.actions, ref_act[k]),
                          (episode.rewards, ref_rew[k])):
            got = got.reshape(n, horizon, -1).numpy() * mask[..., None]
            np.testing.assert_allclose(got, want.reshape(n, horizon, -1) * mask[..., None],
                                       rtol=1e-5, atol=1e-5)
    if family_id == "Navigation2D-v0":  # the case exercises episodes that end early
        assert 0 < ref_mask.sum() < ref_mask.size
    sampler.close()


class _Recording:
    """A policy that records every step's inputs, incoming and outgoing hidden state."""

    def __init__(self, policy):
        self.policy, self.calls, self.resets = policy, [], 0

    def initial_state(self, n):
        self.resets += 1
        return self.policy.initial_state(n)

    def step(self, inputs, hidden):
        mean, std, new = self.policy.step(inputs, hidden)
        self.calls.append((inputs.clone(), hidden.clone(), new.clone()))
        return mean, std, new


def test_hidden_state_resets_at_trial_boundaries_and_never_inside_a_trial():
    horizon, episodes = 8, 3
    sampler = BatchSampler(get_task_family("Navigation2D-v0"), {"goal_tolerance": 0.25},
                           horizon=horizon, seed=2)
    policy = _Recording(_policy(sampler))
    tasks = sampler.sample_tasks(6, np.random.default_rng(3))
    batch = RecurrentSampler(sampler).sample(policy, tasks, 1, episodes, deterministic=True)
    assert policy.resets == 1
    lengths = [e.lengths.reshape(-1).long() for e in batch.episodes]
    assert any(bool((length < horizon).any()) for length in lengths[:-1]), "no early ends"
    # the calls of episode k: as many steps as its longest episode
    spans = np.cumsum([0] + [int(length.max()) for length in lengths])
    first_inputs, first_hidden, _ = policy.calls[0]
    assert torch.equal(first_hidden, torch.zeros_like(first_hidden))  # the trial starts at 0
    assert torch.equal(first_inputs[:, -1], torch.zeros(6, dtype=first_inputs.dtype))
    for k in range(1, episodes):
        inputs, hidden_in, _ = policy.calls[spans[k]]
        for sim in range(6):
            last = int(lengths[k - 1][sim]) - 1  # episode k - 1's last real step
            _, _, hidden_after = policy.calls[spans[k - 1] + last]
            # carried over (not reset, and frozen while the simulation idled)
            assert torch.equal(hidden_in[sim], hidden_after[sim])
            if last > 0:  # (the first step reads o = 0, a = 0, r = 0: zero biases keep h = 0)
                assert hidden_in[sim].abs().sum() > 0
            episode = batch.episodes[k - 1]
            torch.testing.assert_close(inputs[sim, 2:4], episode.actions[sim, 0, last])
            torch.testing.assert_close(inputs[sim, 4], episode.rewards[sim, 0, last])
        assert torch.equal(inputs[:, -1], torch.ones(6, dtype=inputs.dtype))  # new episode
        later, _, _ = policy.calls[spans[k] + 1]
        assert torch.equal(later[:, -1], torch.zeros(6, dtype=later.dtype))
    # the update's view of the trials replays the memory the sampler had: same means
    sequences = batch.sequences()
    means, _ = policy.policy.sequence(sequences.observations[0])
    real = sequences.mask[0] > 0
    actions = sequences.actions[0]
    # (the sampler stores actions in float32)
    torch.testing.assert_close(means[real], actions[real], rtol=1e-6, atol=1e-6)
    # a second trial starts from the initial state again
    RecurrentSampler(sampler).sample(policy, tasks, 1, 1)
    assert policy.resets == 2
    _, hidden_in, _ = policy.calls[spans[-1]]
    assert torch.equal(hidden_in, torch.zeros_like(hidden_in))


def test_a_diverged_step_is_masked_and_leaves_the_memory_as_it_was():
    from test_pearl_faults import FAULTY  # navigation whose left-goal simulations diverge

    horizon, episodes = 6, 3
    sampler = BatchSampler(FAULTY, {"diverge_at": 2, "diverge_left_of": 0.0}, horizon=horizon,
                           seed=4)
    policy = _Recording(_policy(sampler))
    tasks = sampler.sample_tasks(4, np.random.default_rng(5))
    batch = RecurrentSampler(sampler).sample(policy, tasks, 1, episodes, deterministic=True)
    faulty = np.array([task.goal[0] < 0 for task in tasks])
    assert 0 < faulty.sum() < len(tasks)
    assert batch.num_diverged == faulty.sum() * episodes
    for k, episode in enumerate(batch.episodes):
        assert episode.diverged.reshape(-1).tolist() == faulty.tolist()
        for sim in np.flatnonzero(faulty):  # steps 0 and 1 are real, step 2 diverged
            assert episode.mask[sim, 0].tolist() == [1, 1, 0, 0, 0, 0]
            assert episode.rewards[sim, 0, 2:].abs().sum() == 0
        if k + 1 < episodes:  # the next episode reads step 1's memory, action and reward
            inputs, hidden_in, _ = policy.calls[(k + 1) * horizon]
            _, _, after_step_1 = policy.calls[k * horizon + 1]
            _, _, after_diverged = policy.calls[k * horizon + 2]
            for sim in np.flatnonzero(faulty):
                assert torch.equal(hidden_in[sim], after_step_1[sim])
                assert not torch.equal(hidden_in[sim], after_diverged[sim])
                torch.testing.assert_close(inputs[sim, 2:4], episode.actions[sim, 0, 1])
                torch.testing.assert_close(inputs[sim, 4], episode.rewards[sim, 0, 1])
    sequences = batch.sequences()
    assert sequences.lengths[0].tolist() == [2 * episodes if f else horizon * episodes
                                             for f in faulty]
    means, _ = policy.policy.sequence(sequences.observations[0])
    real = sequences.mask[0] > 0
    torch.testing.assert_close(means[real], sequences.actions[0][real], rtol=1e-6, atol=1e-6)


def _episode(mask, rewards, obs_dim=1):
    mask = torch.tensor(mask, dtype=torch.float64).view(1, -1, len(mask[0]))
    rewards = torch.tensor(rewards, dtype=torch.float64).view_as(mask)
    shape = (*mask.shape, obs_dim)
    return EpisodeBatch(torch.zeros(shape, dtype=torch.float64),
                        torch.zeros(shape, dtype=torch.float64), rewards, mask,
                        torch.zeros(mask.shape[:2], dtype=torch.bool))


def test_trial_sequences_and_gae_run_across_episode_boundaries():
    # two trials of one task, two episodes of horizon 3 each. Trial 0: episode 0 ends after
    # two steps; trial 1: episode 1 diverges at its second step
    first = _episode([[1, 1, 0], [1, 1, 1]], [[1, 2, 0], [6, 7, 8]])
    second = _episode([[1, 1, 1], [1, 0, 0]], [[3, 4, 5], [9, 0, 0]])
    inputs = torch.arange(12, dtype=torch.float64).view(1, 2, 2, 3, 1) + 100
    seq = TrialBatch([first, second], inputs).sequences()
    assert seq.rewards.shape == (1, 2, 5)
    torch.testing.assert_close(seq.rewards[0], torch.tensor([[1., 2, 3, 4, 5], [6, 7, 8, 9, 0]],
                                                            dtype=torch.float64))
    torch.testing.assert_close(seq.mask[0], torch.tensor([[1., 1, 1, 1, 1], [1, 1, 1, 1, 0]],
                                                         dtype=torch.float64))
    # inputs [task, trial, episode, t]: trial 0 is 100..105, trial 1 is 106..111
    torch.testing.assert_close(seq.observations[0, :, :, 0], torch.tensor(
        [[100., 101, 103, 104, 105], [106, 107, 108, 109, 0]], dtype=torch.float64))
    values = torch.tensor([[[0.5, 0.4, 0.3, 0.2, 0.1], [0.0, 0.0, 0.0, 0.0, 7.0]]],
                          dtype=torch.float64)
    advantages = seq.gae(values, gamma=0.9, lam=0.8)
    # by hand, trial 0 (gamma * lam = 0.72); step 1 is episode 0's last and bootstraps from
    # episode 1's first value (0.3), not from 0:
    # d4 = 5 - 0.1 = 4.9                  A4 = 4.9
    # d3 = 4 + 0.9*0.1 - 0.2 = 3.89       A3 = 3.89 + 0.72*4.9 = 7.418
    # d2 = 3 + 0.9*0.2 - 0.3 = 2.88       A2 = 2.88 + 0.72*7.418 = 8.22096
    # d1 = 2 + 0.9*0.3 - 0.4 = 1.87       A1 = 1.87 + 0.72*8.22096 = 7.7890912
    # d0 = 1 + 0.9*0.4 - 0.5 = 0.86       A0 = 0.86 + 0.72*7.7890912 = 6.468145664
    torch.testing.assert_close(advantages[0, 0], torch.tensor(
        [6.468145664, 7.7890912, 8.22096, 7.418, 4.9], dtype=torch.float64))
    # trial 1 (zero values): discounted sums of 0.72-weighted deltas; padding gets 0
    expected = [6 + 0.72 * (7 + 0.72 * (8 + 0.72 * 9)), 7 + 0.72 * (8 + 0.72 * 9),
                8 + 0.72 * 9, 9.0, 0.0]
    torch.testing.assert_close(advantages[0, 1], torch.tensor(expected, dtype=torch.float64))


def test_gru_sequences_through_nn_gru_equal_the_step_by_step_cell_to_second_order():
    """The update's fused GRU (nn.GRU's C++ loop, on CPU) gives the states, gradients and
    Hessian-vector products of the sampler's cell run step by step (float64)."""
    torch.manual_seed(0)
    policy = GaussianGRUPolicy(5, 2, 8).double()
    with torch.no_grad():
        for param in (policy.b_ih, policy.b_hh):
            param.normal_()  # non-zero biases: both bias vectors enter the check
    inputs = torch.randn(3, 30, policy.input_dim, dtype=torch.float64)
    hidden = torch.randn(3, 8, dtype=torch.float64)
    params = [policy.w_ih, policy.w_hh, policy.b_ih, policy.b_hh]
    vector = [torch.randn_like(p) for p in params]

    def derivatives(states_of):
        states = states_of(inputs, hidden)
        loss = (states.sin() ** 2).sum()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        hvp = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, vector)), params)
        return states, grads, hvp

    fused, loop = derivatives(policy._states_fused), derivatives(policy._states_loop)
    for a, b in zip([fused[0], *fused[1], *fused[2]], [loop[0], *loop[1], *loop[2]]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    steps, h = [], hidden
    for t in range(inputs.shape[1]):  # the sampler's path
        h = policy._cell(inputs[:, t] @ policy.w_ih + policy.b_ih, h)
        steps.append(h)
    torch.testing.assert_close(fused[0], torch.stack(steps, 1), rtol=1e-12, atol=1e-14)


def test_ppo_clipped_loss_matches_hand_computed_values():
    ratio = torch.tensor([[0.5, 1.0, 1.5], [0.5, 1.3, 2.0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -1.0, 2.0], [-1.0, 0.5, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    loss = ppo_loss(ratio.log(), torch.zeros_like(ratio), adv, mask, clip_eps=0.2)
    # min(r A, clip(r, 0.8, 1.2) A): 0.5, -1.0, min(3.0, 2.4), min(-0.5, -0.8), min(0.65, 0.6);
    # one mean over the five real steps (not per trial); the padded step does not count
    torch.testing.assert_close(loss, torch.tensor(-(0.5 - 1.0 + 2.4 - 0.8 + 0.6) / 5,
                                                  dtype=torch.float64))


def _learner(overrides=()):
    cfg = load_config(CONFIG, ["train.seed=0", *overrides])
    return build(cfg, torch.device("cpu")).algo


def test_rl2_learns_on_navigation():
    algo = _learner(["algo.meta_batch_size=6", "algo.ppo_epochs=5"])
    stats = [algo.train_iteration().scalars for _ in range(10)]
    returns = np.array([[s[f"meta_train/return/adapt_{k}"] for k in range(4)] for s in stats])
    # the GRU starts as a random walk (about -95 at horizon 100); it learns to stay near
    # the goals' square in a few iterations
    assert returns[-3:].mean() > returns[:2].mean() + 25, returns.mean(1)
    for s in stats:
        assert s["diagnostics/skipped_updates"] == 0.0
        assert s["losses/kl_after"] < 0.1 and 0.0 <= s["diagnostics/clip_fraction"] <= 1.0
        assert s["meta_train/return/gain"] == pytest.approx(
            s["meta_train/return/adapt_3"] - s["meta_train/return/adapt_0"])
    assert algo.optimizer.state  # Adam's moments persist across iterations


def test_trpo_option_steps_within_the_trust_region():
    algo = _learner(["algo.optimizer=trpo", "algo.meta_batch_size=3", "env.horizon=20",
                     "algo.episodes_per_trial=2"])
    assert algo.optimizer is None
    before = [p.detach().clone() for p in algo.policy.parameters()]
    s = algo.train_iteration().scalars
    assert s["diagnostics/step_accepted"] == 1.0
    assert s["losses/surrogate_after"] < s["losses/surrogate_before"]
    assert 0.0 < s["losses/kl_after"] <= 0.01
    assert any(not torch.equal(p, q) for p, q in zip(algo.policy.parameters(), before))


@pytest.mark.parametrize("poison, reason", [
    ("advantages", "non-finite advantages"),
    ("loss", "non-finite PPO loss (epoch 1, minibatch 1)"),
    ("gradient", "non-finite PPO gradient (epoch 1, minibatch 1)")])
def test_non_finite_updates_are_skipped_and_leave_the_policy_and_adam_as_they_were(poison,
                                                                                    reason):
    algo = _learner(["algo.meta_batch_size=2", "env.horizon=10", "algo.episodes_per_trial=2"])
    algo.train_iteration()  # Adam has moments now
    params = [p.detach().clone() for p in algo.policy.parameters()]
    moments = {k: {f: v.clone() for f, v in s.items()} for k, s in
               algo.optimizer.state_dict()["state"].items()}
    real = algo.advantages

    def poisoned(sequences, entropy):
        advantages, values, returns = real(sequences, entropy)
        # NaN, or finite values whose mean overflows float32 (an infinite loss)
        value = float("nan") if poison == "advantages" else 3e38
        return torch.full_like(advantages, value) * sequences.mask, values, returns

    if poison == "gradient":  # a finite loss whose gradient is not
        algo.policy.log_std.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    else:
        algo.advantages = poisoned
    result = algo.train_iteration()
    assert result.skip_reason == reason
    assert result.scalars["diagnostics/skipped_updates"] == 1.0
    for p, q in zip(algo.policy.parameters(), params):
        assert torch.equal(p, q)
    for key, state in algo.optimizer.state_dict()["state"].items():
        for field, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(moments[key][field]))


SMALL = ["--set", "algo.meta_batch_size=2", "--set", "algo.episodes_per_trial=2",
         "--set", "env.horizon=10", "--set", "train.checkpoint_every=2",
         "--set", "logging.console=false", "--set", "logging.tensorboard=false"]


def _rows(run_dir):
    with open(run_dir / "progress.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if not (k.startswith("time/") or k == "wall_s")}
                for row in csv.DictReader(handle)]


def test_resume_is_bit_identical_and_eval_gives_the_curve_over_episodes(tmp_path):
    full, part, a, b = two_plus_two_equals_four(CONFIG, tmp_path, SMALL)
    assert _rows(full) == _rows(part)
    assert torch.equal(a["minibatch_generator"], b["minibatch_generator"])
    assert "meta_train/return/adapt_1" in _rows(full)[0]
    assert main(["eval", str(full), "--tasks", "3", "--steps", "2", "--device", "cpu"]) == 0
    with open(full / "eval" / "adaptation.csv", newline="") as handle:
        curve = [(r["method"], int(r["step"])) for r in csv.DictReader(handle)]
    assert curve == [("rl2", 0), ("rl2", 1), ("rl2", 2)]  # 3 episodes per trial
    info = yaml.safe_load((full / "eval" / "eval_info.yaml").read_text())
    assert info["adaptation_units"] == "episodes" and info["algorithm"] == "rl2"


def test_the_ray_backend_is_refused_when_the_config_is_read():
    """RL²'s hidden states live in this process: ``sampler.backend: ray`` is a config error
    naming the key, the value and the algorithm, raised before anything is built."""
    from metarl.schema import ConfigError

    with pytest.raises(ConfigError, match=r"sampler\.backend: 'ray' is not supported by "
                                          r"algo\.name 'rl2' \(RL² rolls out its trials"):
        load_config(CONFIG, ["sampler.backend=ray"])
    assert load_config(CONFIG, ["sampler.backend=gym"]).sampler.backend == "gym"
