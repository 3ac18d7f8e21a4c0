"""PEARL's kernels against independent references (closed forms, torch.distributions,
finite differences, numbers worked out by hand, a per-task loop) and short runs."""

import io
import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from metarl.algos.pearl import PEARL, PEARLConfig
from metarl.schema import ConfigError, check_settings
from metarl.algos.pearl.losses import actor_value_loss, critic_loss, q_target, value_target
from metarl.algos.pearl.networks import (
    PEARLNetworks,
    kl_to_standard_normal,
    product_of_gaussians,
)
from metarl.envs import get_task_family
from metarl.policies.tanh_gaussian import TanhGaussianPolicy, tanh_gaussian_log_prob
from metarl.algos.pearl.replay_buffer import FIELDS, MultiTaskReplayBuffer, Transitions
from metarl.samplers import BatchSampler

TINY = dict(latent_size=3, encoder_hidden_sizes=[16, 16], hidden_sizes=[16, 16], batch_size=16,
            embedding_batch_size=8, meta_batch_size=3, num_train_tasks=4, num_test_tasks=2,
            num_tasks_sample=2, num_initial_steps=40, num_steps_prior=20, num_steps_posterior=20,
            num_extra_rl_steps_posterior=40, num_train_steps_per_itr=5, meta_test_trajectories=3)


def _pearl(seed=0, horizon=20, **overrides):
    sampler = BatchSampler(get_task_family("Navigation2D-v0"), horizon=horizon, seed=seed)
    return PEARL(sampler, PEARLConfig(**{**TINY, **overrides}), seed=seed)


# -- Gaussian kernels -------------------------------------------------------------------------

def test_product_of_two_gaussians_is_the_closed_form():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    v = torch.rand(4, 2, 3, generator=g, dtype=torch.float64) + 0.1
    mean, var = product_of_gaussians(m, v)
    (m1, m2), (v1, v2) = m.unbind(1), v.unbind(1)
    torch.testing.assert_close(var, v1 * v2 / (v1 + v2))
    torch.testing.assert_close(mean, (m1 * v2 + m2 * v1) / (v1 + v2))


def test_product_of_many_gaussians_differs_from_the_factors_log_density_by_a_constant():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(7, 2, generator=g, dtype=torch.float64)
    v = torch.rand(7, 2, generator=g, dtype=torch.float64) + 0.05
    mean, var = product_of_gaussians(m, v)
    z = torch.randn(50, 1, 2, generator=g, dtype=torch.float64)
    factors = Normal(m, v.sqrt()).log_prob(z).sum((-1, -2))
    product = Normal(mean, var.sqrt()).log_prob(z[:, 0]).sum(-1)
    difference = factors - product
    torch.testing.assert_close(difference, difference[:1].expand_as(difference))


def test_masked_factors_are_dropped_and_an_empty_product_is_the_prior():
    g = torch.Generator().manual_seed(2)
    m = torch.randn(2, 5, 3, generator=g)
    v = torch.rand(2, 5, 3, generator=g) + 0.1
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    mean, var = product_of_gaussians(m, v, mask)
    kept = product_of_gaussians(m[0, [0, 1, 3]], v[0, [0, 1, 3]])
    torch.testing.assert_close(mean[0], kept[0])
    torch.testing.assert_close(var[0], kept[1])
    assert torch.equal(mean[1], torch.zeros(3)) and torch.equal(var[1], torch.ones(3))


def test_kl_to_standard_normal_matches_torch_distributions():
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(6, 5, generator=g, dtype=torch.float64)
    var = torch.rand(6, 5, generator=g, dtype=torch.float64) * 3 + 1e-3
    expected = kl_divergence(Normal(mean, var.sqrt()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(kl_to_standard_normal(mean, var), expected)


# -- tanh-Gaussian ----------------------------------------------------------------------------

def test_tanh_gaussian_log_prob_matches_change_of_variables_with_finite_differences():
    g = torch.Generator().manual_seed(4)
    mean = torch.randn(200, 2, generator=g, dtype=torch.float64)
    log_std = torch.rand(200, 2, generator=g, dtype=torch.float64) - 1.0
    u = mean + log_std.exp() * torch.randn(200, 2, generator=g, dtype=torch.float64) * 3
    h = 1e-6
    jacobian = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)  # diagonal of da/du
    reference = (Normal(mean, log_std.exp()).log_prob(u) - jacobian.log()).sum(-1)
    # rtol: finite differences lose digits where da/du is tiny
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std), reference,
                               rtol=1e-5, atol=1e-6)


def test_tanh_gaussian_density_integrates_to_one_and_is_finite_when_saturated():
    a = torch.linspace(-1, 1, 400_001, dtype=torch.float64)[1:-1]
    u = torch.atanh(a)
    density = tanh_gaussian_log_prob(u[:, None], torch.tensor([[0.7]], dtype=torch.float64),
                                     torch.tensor([[math.log(0.8)]], dtype=torch.float64)).exp()
    assert torch.trapezoid(density, a).item() == pytest.approx(1.0, abs=1e-4)
    # float32, |u| = 15: tanh(u) rounds to 1, the naive log(1 - tanh^2) is -inf
    u32 = torch.tensor([[15.0, -15.0]])
    value = tanh_gaussian_log_prob(u32, torch.zeros(1, 2), torch.zeros(1, 2))
    exact = tanh_gaussian_log_prob(u32.double(), torch.zeros(1, 2).double(),
                                   torch.zeros(1, 2).double())
    assert torch.isfinite(value).all()
    torch.testing.assert_close(value.double(), exact, rtol=1e-6, atol=0)


def test_tanh_policy_maps_noise_into_the_env_box_and_back():
    policy = TanhGaussianPolicy(2, 2, 3, (8,), action_low=[-0.1, 0.0], action_high=[0.1, 2.0])
    obs, z = torch.randn(4, 5, 2), torch.randn(4, 5, 3)
    mean, std = policy.mean_std(obs, {"z": z})
    noise = torch.randn(4, 5, 2) * 10
    env_action = policy.actions_from_noise(mean, std, noise)
    assert (env_action[..., 0].abs() <= 0.1).all()
    assert ((env_action[..., 1] >= 0) & (env_action[..., 1] <= 2)).all()
    sample = policy.rsample(obs, z, noise)
    torch.testing.assert_close(policy.normalize_action(env_action), sample.action)


# -- losses -----------------------------------------------------------------------------------

def _constant(module, value):
    """Make an MLP's output layer return ``value`` everywhere."""
    last = module.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, value)


def test_sac_targets_on_a_hand_built_batch():
    rewards = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    terminals = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    next_values = torch.tensor([[10.0, 7.0], [-1.0, 2.0]])
    # 5 * r + (1 - d) * 0.9 * V'
    torch.testing.assert_close(q_target(rewards, terminals, next_values, 5.0, 0.9),
                               torch.tensor([[14.0, -10.0], [1.6, 1.8]]))
    assert value_target(torch.tensor([3.0, -1.0]), torch.tensor([0.5, -2.0])).tolist() == [2.5, 1.0]

    nets = PEARLNetworks(2, 2, 3, 5, (8,), (8,))
    _constant(nets.qf1, 1.0)
    _constant(nets.qf2, -1.0)
    _constant(nets.target_vf, 2.0)
    _constant(nets.vf, 0.5)
    batch = Transitions(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), rewards, torch.zeros(2, 2, 2),
                        terminals)
    critic = critic_loss(nets, batch, torch.zeros(2, 4, 5), torch.zeros(2, 3), 5.0, 0.9, 0.0)
    targets = torch.tensor([[5 + 1.8, -10.0], [2.5 + 1.8, 1.8]])  # V' = 2 everywhere
    expected = ((1 - targets) ** 2).mean() + ((-1 - targets) ** 2).mean()
    assert critic.qf.item() == pytest.approx(expected.item())
    actor = actor_value_loss(nets, batch, critic.z, torch.zeros(2, 2, 2), 0.0, 0.0)
    # min(Q1, Q2) = -1 for every action; V = 0.5
    expected_vf = ((0.5 - (-1 - actor.log_pi)) ** 2).mean()
    assert actor.vf.item() == pytest.approx(expected_vf.item())
    assert actor.policy.item() == pytest.approx((actor.log_pi + 1).mean().item())


def test_batched_gradients_equal_a_loop_over_tasks():
    torch.manual_seed(5)
    nets = PEARLNetworks(2, 2, 3, 5, (16, 16), (16, 16)).double()
    tasks, size = 3, 8
    g = torch.Generator().manual_seed(6)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    batch = Transitions(randn(tasks, size, 2), randn(tasks, size, 2).tanh(), randn(tasks, size),
                        randn(tasks, size, 2), (randn(tasks, size) > 1).double())
    context, z_noise, action_noise = randn(tasks, 6, 5), randn(tasks, 3), randn(tasks, size, 2)

    def grads(loss):
        params = [p for p in nets.parameters() if p.requires_grad]
        return [g if g is not None else torch.zeros_like(p)
                for g, p in zip(torch.autograd.grad(loss, params, allow_unused=True), params)]

    def pick(i):
        return Transitions(*(x[i:i + 1] for x in batch))

    critic = critic_loss(nets, batch, context, z_noise, 5.0, 0.99, 0.1)
    loop = sum(c.qf / tasks + 0.1 * c.kl.sum() for c in
               (critic_loss(nets, pick(i), context[i:i + 1], z_noise[i:i + 1], 5.0, 0.99, 0.1)
                for i in range(tasks)))
    for a, b in zip(grads(critic.loss), grads(loop)):
        torch.testing.assert_close(a, b)

    actor = actor_value_loss(nets, batch, critic.z, action_noise, 1e-3, 1e-3)
    loop = sum(actor_value_loss(nets, pick(i), critic.z[i:i + 1], action_noise[i:i + 1],
                                1e-3, 1e-3).loss / tasks for i in range(tasks))
    for a, b in zip(grads(actor.loss), grads(loop)):
        torch.testing.assert_close(a, b)


# -- buffers and sampled transitions ----------------------------------------------------------

def test_replay_buffer_keeps_the_newest_and_samples_each_tasks_own_data():
    buffer = MultiTaskReplayBuffer(3, 1, 1, capacity=5)

    def data(task, values):
        x = torch.tensor(values, dtype=torch.float32)
        return Transitions(torch.full((len(values), 1), float(task)), x[:, None], x, x[:, None],
                           torch.zeros(len(values)))

    buffer.add(0, data(0, [1, 2, 3]))
    buffer.add(0, data(0, [4, 5, 6, 7]))  # wraps: 3..7 remain
    buffer.add(2, data(2, [10]))
    assert buffer.sizes == [5, 0, 1]
    sample = buffer.sample([2, 0, 0], 200, torch.Generator().manual_seed(0))
    assert sample.observations.shape == (3, 200, 1)
    assert (sample.observations[:, :, 0] == torch.tensor([[2.0], [0.0], [0.0]])).all()
    assert set(sample.rewards[1:].flatten().tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    with pytest.raises(ValueError, match="task\\(s\\) \\[1\\] have no transitions"):
        buffer.sample([1], 4)
    state = buffer.state_dict()
    assert state["rewards"].shape == (6,)  # 5 + 0 + 1 transitions, not 3 tasks x 5
    # the padded [tasks, fullest] layout of older checkpoints still loads
    legacy = {**state, **{name: buffer._data[name][:, :5].clone() for name in FIELDS}}
    del legacy["packed"]
    for saved in (state, legacy):
        restored = MultiTaskReplayBuffer(3, 1, 1, capacity=5)
        restored.load_state_dict(saved)
        assert restored.sizes == [5, 0, 1]
        assert torch.equal(restored.sample([0, 2], 50, torch.Generator().manual_seed(1)).rewards,
                           buffer.sample([0, 2], 50, torch.Generator().manual_seed(1)).rewards)
        restored.add(0, data(0, [8]))  # the ring position survives: 8 replaces the oldest, 3
        assert set(restored.sample([0], 200, torch.Generator().manual_seed(2)).rewards
                   .flatten().tolist()) == {4.0, 5.0, 6.0, 7.0, 8.0}
    with pytest.raises(ValueError, match="holds 5 transitions, its sizes say 6"):
        MultiTaskReplayBuffer(3, 1, 1, capacity=5).load_state_dict(
            {**state, **{name: state[name][:5] for name in FIELDS}})


def test_sampled_next_observations_follow_the_navigation_dynamics():
    algo = _pearl()
    batch = algo.sampler.sample(algo.nets.policy, {"z": torch.randn(2, 3, 3)},
                                algo.train_tasks[:2], 3)
    data = algo.transitions(batch)
    real = batch.mask.bool()
    step = (batch.next_observations() - batch.observations)[real]
    torch.testing.assert_close(step, batch.actions.clamp(-0.1, 0.1)[real])  # s' = s + clip(a)
    assert (data.actions.abs() <= 1).all()


def test_deterministic_sampling_uses_the_mean_action_and_no_noise():
    algo = _pearl()
    state = algo.sampler.streams.generator.get_state()
    z = torch.zeros(1, 1, 3)
    batch = algo.sampler.sample(algo.nets.policy, {"z": z}, algo.train_tasks[:1], 1,
                                deterministic=True)
    assert torch.equal(algo.sampler.streams.generator.get_state(), state)
    mean, _ = algo.nets.policy(batch.observations[0, 0, :1], z[0, 0, None])
    torch.testing.assert_close(batch.actions[0, 0, :1], algo.nets.policy.to_env_action(mean.tanh()))


# -- the algorithm ----------------------------------------------------------------------------

def test_meta_test_before_training_gives_finite_returns_per_trajectory():
    algo = _pearl()
    stats = algo.meta_test(k_max=2, episodes=2)
    assert list(stats) == [f"meta_test/return/adapt_{k}" for k in range(3)] + \
        ["meta_test/return/gain"]
    assert all(math.isfinite(v) for v in stats.values())
    adaptation = algo.adapt(algo.test_tasks, 1, 2, algo.sampler)
    assert adaptation.task_returns().shape == (2, 2)


def test_tiny_run_gives_finite_losses_and_resumes_exactly():
    algo = _pearl()
    result = algo.train_iteration()
    first = result.scalars
    assert result.env_steps == 4 * 40 + 2 * (20 + 20 + 40)  # initial steps + schedule
    for key in ("losses/kl_z", "losses/qf", "losses/vf", "losses/policy",
                "meta_train/return/adapt_0", "meta_train/return/posterior"):
        assert math.isfinite(first[key]), key
    assert algo.skip_reason is None and result.skip_reason is None

    handle = io.BytesIO()
    torch.save(algo.state_dict(), handle)
    handle.seek(0)
    resumed = _pearl()
    resumed.load_state_dict(torch.load(handle, weights_only=True))
    def untimed(result):
        return result.env_steps, {k: v for k, v in result.scalars.items()
                                  if not k.startswith("time/")}

    assert untimed(resumed.train_iteration()) == untimed(algo.train_iteration())
    for a, b in zip(resumed.nets.parameters(), algo.nets.parameters()):
        assert torch.equal(a, b)

    with pytest.raises(ValueError, match="task sets differ"):
        _pearl(seed=1).load_state_dict(algo.state_dict())


def test_non_finite_losses_roll_the_iteration_back():
    algo = _pearl(num_steps_posterior=0, num_extra_rl_steps_posterior=0)
    algo.train_iteration()
    policy_before = [p.clone() for p in algo.nets.policy.parameters()]
    with torch.no_grad():
        next(algo.nets.qf1.parameters()).fill_(float("nan"))
    result = algo.train_iteration()
    stats = result.scalars
    assert algo.skip_reason is not None and "rolled back" in algo.skip_reason
    assert result.skip_reason == algo.skip_reason
    assert stats["diagnostics/skipped_updates"] == 1.0
    for a, b in zip(algo.nets.policy.parameters(), policy_before):
        assert torch.equal(a, b)


def test_config_errors_name_the_setting():
    with pytest.raises(ConfigError, match="algo.num_tasks_sample"):
        check_settings(PEARLConfig(num_tasks_sample=10, num_train_tasks=5), "algo.")
    with pytest.raises(ConfigError, match="algo.gamma"):
        check_settings(PEARLConfig(gamma=1.5), "algo.")
    with pytest.raises(ConfigError, match="algo.num_extra_rl_steps_posterior"):
        check_settings(PEARLConfig(num_steps_prior=0), "algo.")
    with pytest.raises(ConfigError, match="algo.hidden_sizes"):  # PEARL's own __init__ checks
        _pearl(hidden_sizes=[])
