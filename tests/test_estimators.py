"""Returns, GAE and the linear baseline against hand-computed values."""

import pytest
import numpy as np
import torch

from metarl.algos.maml.policy_gradient import masked_task_mean, normalize_per_task
from metarl.algos.maml.linear_value_baseline import baseline_features, fit_linear_baseline, predict_linear_baseline
from metarl.samplers import EpisodeBatch


def _batch():
    # One task, two episodes, horizon 3. Episode 0 runs to the time limit;
    # episode 1 terminates after two steps (third step is padding, with junk values).
    rewards = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 1.0, 7.0]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]], dtype=torch.float64)
    obs = torch.zeros(1, 2, 3, 1, dtype=torch.float64)
    return EpisodeBatch(obs, torch.zeros(1, 2, 3, 1, dtype=torch.float64), rewards * mask, mask,
                        torch.tensor([[False, True]]))


def test_discounted_returns_by_hand():
    returns = _batch().discounted_returns(0.9)
    expected = torch.tensor([[[1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3.0], [1.9, 1.0, 0.0]]],
                            dtype=torch.float64)
    torch.testing.assert_close(returns, expected)


def test_gae_by_hand_with_termination_and_padding():
    values = torch.tensor([[[0.5, 1.0, 1.5], [2.0, 2.0, 99.0]]], dtype=torch.float64)
    adv = _batch().gae(values, gamma=0.9, lam=0.8)
    # Episode 0: deltas 1.4, 2.35, 1.5; episode 1: deltas 0.8, -1 (value after the end is 0).
    a2 = 1.5
    a1 = 2.35 + 0.72 * a2
    a0 = 1.4 + 0.72 * a1
    expected = torch.tensor([[[a0, a1, a2], [0.8 + 0.72 * -1.0, -1.0, 0.0]]], dtype=torch.float64)
    torch.testing.assert_close(adv, expected)


def test_gae_lambda_one_with_zero_values_is_discounted_return():
    batch = _batch()
    torch.testing.assert_close(batch.gae(torch.zeros_like(batch.rewards), 0.95, 1.0),
                               batch.discounted_returns(0.95))


def test_episode_returns_and_lengths_ignore_padding():
    batch = _batch()
    torch.testing.assert_close(batch.episode_returns(), torch.tensor([[6.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(batch.lengths, torch.tensor([[3.0, 2.0]], dtype=torch.float64))
    assert batch.num_steps == 5


def test_linear_baseline_recovers_a_linear_signal():
    torch.manual_seed(0)
    tasks, episodes, horizon, obs_dim = 3, 5, 30, 2
    obs = torch.rand(tasks, episodes, horizon, obs_dim, dtype=torch.float64) * 4 - 2
    mask = torch.ones(tasks, episodes, horizon, dtype=torch.float64)
    mask[:, 0, 20:] = 0.0  # one shorter episode per task
    batch = EpisodeBatch(obs, obs[..., :1], torch.zeros_like(mask), mask,
                         torch.zeros(tasks, episodes, dtype=torch.bool))
    true_coeffs = torch.randn(tasks, 2 * obs_dim + 4, dtype=torch.float64)
    target = torch.einsum("tehf,tf->teh", baseline_features(batch), true_coeffs)
    coeffs = fit_linear_baseline(batch, target, reg_coeff=1e-10)
    torch.testing.assert_close(coeffs, true_coeffs, rtol=1e-5, atol=1e-6)
    values = predict_linear_baseline(batch, coeffs)
    torch.testing.assert_close(values, target * mask, rtol=1e-6, atol=1e-6)
    assert (values[:, 0, 20:] == 0).all()


def test_linear_baseline_solves_rank_deficient_designs_like_the_ants():
    # The ant observes contact forces of bodies that never touch anything: whole feature
    # columns are zero, so the normal equations are singular up to the ridge. MKL's
    # two-thread batched LU failed on exactly this (a real ant batch, 254 features).
    torch.manual_seed(1)
    tasks, episodes, horizon, obs_dim = 8, 4, 50, 125
    obs = torch.randn(tasks, episodes, horizon, obs_dim, dtype=torch.float64) * 3
    obs[..., 65:] = 0.0  # the never-touching contact block
    mask = torch.ones(tasks, episodes, horizon, dtype=torch.float64)
    mask[:, 1, 30:] = 0.0
    batch = EpisodeBatch(obs, obs[..., :1], torch.zeros_like(mask), mask,
                         torch.zeros(tasks, episodes, dtype=torch.bool))
    returns = torch.randn(tasks, episodes, horizon, dtype=torch.float64) * 100
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        coeffs = fit_linear_baseline(batch, returns, reg_coeff=1e-5)
    finally:
        torch.set_num_threads(threads)
    feats = baseline_features(batch).reshape(tasks, -1, 2 * obs_dim + 4).numpy()
    m = mask.reshape(tasks, -1, 1).numpy()
    y = returns.reshape(tasks, -1, 1).numpy()
    for i in range(tasks):
        a = feats[i].T @ (feats[i] * m[i]) + 1e-5 * np.eye(feats.shape[-1])
        reference = np.linalg.lstsq(a, feats[i].T @ (y[i] * m[i]), rcond=None)[0][:, 0]
        # The fitted values, not the coefficients, are well determined here.
        np.testing.assert_allclose(feats[i] @ coeffs[i].numpy(), feats[i] @ reference,
                                   rtol=0, atol=1e-6 * np.abs(y[i]).max())


def test_baseline_features_time_terms():
    batch = _batch()
    feats = baseline_features(batch)
    assert feats.shape == (1, 2, 3, 2 * 1 + 4)
    t = torch.tensor([0.0, 0.01, 0.02], dtype=torch.float64)
    torch.testing.assert_close(feats[0, 0, :, 2], t)
    torch.testing.assert_close(feats[0, 0, :, 4], t ** 3)
    assert (feats[..., -1] == 1).all()


def test_normalize_per_task_uses_only_real_steps():
    adv = torch.tensor([[[1.0, 3.0, 100.0]], [[-2.0, 2.0, -100.0]]], dtype=torch.float64)
    mask = torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 1.0, 0.0]]], dtype=torch.float64)
    out = normalize_per_task(adv, mask)
    torch.testing.assert_close(out, torch.tensor([[[-1.0, 1.0, 0.0]], [[-1.0, 1.0, 0.0]]],
                                                 dtype=torch.float64), rtol=1e-6, atol=1e-6)
    assert masked_task_mean(adv, mask).tolist() == pytest.approx([2.0, 0.0])
