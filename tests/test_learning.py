"""MAML-TRPO learns 2D navigation in a small budget (about 30 s on 2 CPU cores)."""

import numpy as np
import pytest
import torch

from metarl.config import load_config
from metarl.experiment import build


def _run(iterations, overrides):
    cfg = load_config(None, ["algo.meta_batch_size=10", "sampler.episodes_per_task=10",
                             "env.horizon=50", "train.seed=0", *overrides])
    parts = build(cfg, torch.device("cpu"))
    return [parts.algo.train_iteration().scalars for _ in range(iterations)]


def test_maml_trpo_learns_to_adapt_on_navigation():
    stats = _run(12, [])
    pre = np.array([s["meta_train/return/adapt_0"] for s in stats])
    post = np.array([s["meta_train/return/adapt_1"] for s in stats])
    # Post-adaptation return climbs well above where it started...
    assert post[-3:].mean() > post[0] + 10, post
    # ...and one gradient step helps on fresh tasks (the meta-learned part).
    assert (post[-3:] - pre[-3:]).mean() > 2, (pre, post)
    assert all(s["diagnostics/step_accepted"] == 1.0 for s in stats[-3:])
    assert all(s["losses/kl_after"] <= 0.01 for s in stats if s["diagnostics/step_accepted"])
    assert all(s["losses/surrogate_after"] < s["losses/surrogate_before"]
               for s in stats if s["diagnostics/step_accepted"])


@pytest.mark.parametrize("overrides", [["algo.first_order=true"], ["algo.inner_steps=2"]])
def test_variants_run_and_respect_the_trust_region(overrides):
    stats = _run(2, overrides)
    for s in stats:
        assert np.isfinite(s["losses/surrogate_before"])
        if s["diagnostics/step_accepted"]:
            assert s["losses/kl_after"] <= 0.01
    if "algo.inner_steps=2" in overrides:
        assert "meta_train/return/adapt_2" in stats[0]


def test_non_finite_meta_gradient_skips_the_update():
    cfg = load_config(None, ["algo.meta_batch_size=2", "sampler.episodes_per_task=2", "env.horizon=10"])
    algo = build(cfg, torch.device("cpu")).algo
    before = [p.detach().clone() for p in algo.policy.parameters()]
    real_advantages, calls = algo.advantages, []

    def poisoned(batch):  # first call: the inner step; second: the outer surrogate
        calls.append(batch)
        adv = real_advantages(batch)
        return adv if len(calls) < 2 else torch.full_like(adv, float("nan"))

    algo.advantages = poisoned
    stats = algo.train_iteration().scalars
    assert len(calls) == 2
    assert stats["diagnostics/skipped_updates"] == 1.0
    assert stats["diagnostics/step_accepted"] == 0.0
    for p, q in zip(algo.policy.parameters(), before):
        assert torch.equal(p, q)
