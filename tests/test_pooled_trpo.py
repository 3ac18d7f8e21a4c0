"""`algo.pool_tasks` of TRPO on the task mixture: the MAML paper's pretrained baseline as
rllab trained it (one batch per iteration, one lagged linear baseline, one
standardisation), against a NumPy transcription of rllab's ``process_samples``."""

from pathlib import Path

import numpy as np
import torch
import yaml

from metarl.algos.maml import MixtureTRPOConfig, TRPO
from metarl.checkpoint import load_checkpoint
from metarl.cli import main
from metarl.envs import get_task_family
from metarl.policies import GaussianMLPPolicy
from metarl.samplers import BatchSampler, EpisodeBatch

from cli_helpers import NAV_CONFIG


def _random_batch(tasks: int = 3, episodes: int = 2, horizon: int = 4) -> EpisodeBatch:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(tasks, episodes, horizon)
    mask[0, 1, 2:] = 0.0  # one episode ends early
    return EpisodeBatch(torch.randn(tasks, episodes, horizon, 5, generator=g),
                        torch.randn(tasks, episodes, horizon, 2, generator=g),
                        torch.randn(tasks, episodes, horizon, generator=g) * mask, mask,
                        torch.zeros(tasks, episodes, dtype=torch.bool),
                        final_observations=torch.randn(tasks, episodes, 5, generator=g))


def test_pooled_batch_holds_every_episode_as_one_task():
    batch = _random_batch()
    pooled = batch.pooled()
    assert pooled.num_tasks == 1 and pooled.episodes_per_task == 6
    assert pooled.observations.shape == (1, 6, 4, 5)
    for task in range(3):
        for episode in range(2):
            row = 2 * task + episode
            torch.testing.assert_close(pooled.observations[0, row], batch.observations[task, episode])
            torch.testing.assert_close(pooled.final_observations[0, row],
                                       batch.final_observations[task, episode])
    assert pooled.num_steps == batch.num_steps
    torch.testing.assert_close(pooled.episode_returns().flatten(), batch.episode_returns().flatten())


def _paths(batch: EpisodeBatch) -> list[dict[str, np.ndarray]]:
    """The batch as rllab's list of paths (real steps only)."""
    obs, rew = batch.observations.double().numpy(), batch.rewards.double().numpy()
    lengths = batch.lengths.long().numpy()
    return [{"observations": obs[t, e, :lengths[t, e]], "rewards": rew[t, e, :lengths[t, e]]}
            for t in range(batch.num_tasks) for e in range(batch.episodes_per_task)]


def _features(path):  # rllab/baselines/linear_feature_baseline.py
    o = np.clip(path["observations"], -10, 10)
    al = np.arange(len(path["rewards"])).reshape(-1, 1) / 100.0
    return np.concatenate([o, o ** 2, al, al ** 2, al ** 3, np.ones((len(o), 1))], axis=1)


def _discount_cumsum(x, discount):
    out, running = np.zeros_like(x), 0.0
    for t in range(len(x) - 1, -1, -1):
        running = x[t] + discount * running
        out[t] = running
    return out


def _rllab_advantages(paths, coeffs, gamma, lam):
    """rllab/sampler/base.py ``process_samples``: predict with the baseline fitted before,
    GAE, concatenate, ``center_adv``; then fit the baseline on these paths (reg 1e-5)."""
    advantages = []
    for path in paths:
        values = np.zeros(len(path["rewards"])) if coeffs is None else _features(path) @ coeffs
        values = np.append(values, 0.0)
        deltas = path["rewards"] + gamma * values[1:] - values[:-1]
        advantages.append(_discount_cumsum(deltas, gamma * lam))
    advantages = np.concatenate(advantages)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    x = np.concatenate([_features(p) for p in paths])
    y = np.concatenate([_discount_cumsum(p["rewards"], gamma) for p in paths])
    new_coeffs = np.linalg.lstsq(x.T @ x + 1e-5 * np.identity(x.shape[1]), x.T @ y, rcond=-1)[0]
    return advantages, new_coeffs


def test_pooled_advantages_match_rllabs_process_samples():
    family = get_task_family("Navigation2D-v0")
    sampler = BatchSampler(family, horizon=12, seed=3)
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (8,)).double()
    cfg = MixtureTRPOConfig(meta_batch_size=4, gamma=0.99, gae_lambda=0.97, pool_tasks=True)
    learner = TRPO(policy, sampler, cfg, episodes_per_task=3, seed=0)
    rng = np.random.default_rng(0)
    coeffs = None
    for _ in range(3):  # the first without a fitted baseline, then lagged fits
        batch = sampler.sample(policy, policy.params(), sampler.sample_tasks(4, rng), 3).pooled()
        ours = learner.pooled_advantages(batch)
        expected, coeffs = _rllab_advantages(_paths(batch), coeffs, cfg.gamma, cfg.gae_lambda)
        real = batch.mask.bool()
        np.testing.assert_allclose(ours[real].numpy(), expected, rtol=1e-6, atol=1e-6)
        assert bool((ours[~real] == 0).all())
        np.testing.assert_allclose(learner.pooled_baseline[0].numpy(), coeffs, rtol=1e-5,
                                   atol=1e-7)


def _pooled_config(tmp_path: Path) -> Path:
    data = yaml.safe_load(NAV_CONFIG.read_text())
    keys = {"meta_batch_size", "gamma", "gae_lambda", "normalize_advantages", "baseline_reg",
            "max_kl", "cg_iters", "cg_damping", "ls_max_steps", "ls_backtrack_ratio"}
    data["algo"] = ({k: v for k, v in data["algo"].items() if k in keys}
                    | {"name": "trpo", "pool_tasks": True, "meta_batch_size": 5})
    data["sampler"]["episodes_per_task"] = 1
    path = tmp_path / "pooled.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pooled_run_resumes_exactly_with_its_lagged_baseline(tmp_path):
    config = _pooled_config(tmp_path)
    common = ["--set", "env.horizon=10", "--set", "logging.console=false",
              "--set", "logging.tensorboard=false", "--set", "train.checkpoint_every=2",
              "--device", "cpu"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", str(config), *common, "--set", "train.iterations=4",
                 "--run-dir", str(full)]) == 0
    assert main(["train", str(config), *common, "--set", "train.iterations=2",
                 "--run-dir", str(part)]) == 0
    assert "pooled_baseline" in load_checkpoint(
        part / "checkpoints" / "iter_000002.pt")["algo_state"]
    assert main(["train", "--resume", str(part), "--set", "train.iterations=4"]) == 0
    a, b = (load_checkpoint(run / "checkpoints" / "iter_000004.pt")["algo_state"]
            for run in (full, part))
    for name, tensor in a["policy"].items():
        assert torch.equal(b["policy"][name], tensor), name
    assert torch.equal(a["pooled_baseline"], b["pooled_baseline"])
    # the pooled update stepped: the policy moved from its initialisation
    first = load_checkpoint(full / "checkpoints" / "iter_000002.pt")["algo_state"]["policy"]
    assert any(not torch.equal(first[k], a["policy"][k]) for k in first)
