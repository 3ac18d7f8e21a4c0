"""A meta-learner written outside metarl, against its public contract only: what a user
adds for a new algorithm. Registered on import; configs name it ``toy_metarl_algo:toy``.

Small but real: REINFORCE on the task mixture with Adam. It does not adapt, so its curve
over "episodes" is flat up to sampling noise; what the tests check is the plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from metarl.algos import (
    Adaptation,
    BuildContext,
    IterationStats,
    MetaLearner,
    register_algorithm,
)
from metarl.policies import GaussianMLPPolicy
from metarl.schema import setting


@dataclass
class ToyConfig:
    name: str = setting("toy", "Algorithm.")
    meta_batch_size: int = setting(4, "Tasks per iteration.", ge=1, le=1000)
    lr: float = setting(0.01, "Adam learning rate.", gt=0, le=1)


class ToyLearner(MetaLearner):
    name = "toy"
    adaptation_units = "episodes"
    step_size_keys = "algo.lr"

    def __init__(self, ctx: BuildContext) -> None:
        self.cfg, self.sampler, self.training = ctx.cfg.algo, ctx.sampler, ctx.training
        self.episodes = ctx.cfg.sampler.episodes_per_task
        self.policy = GaussianMLPPolicy(ctx.sampler.obs_dim, ctx.sampler.act_dim, [8])
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.cfg.lr)
        self.task_rng = np.random.default_rng(ctx.seed)

    def _loss(self, batch: Any) -> torch.Tensor:
        returns = batch.episode_returns()
        advantage = (returns - returns.mean()) / (returns.std() + 1e-8)
        log_prob = (self.policy(batch.observations).log_prob(batch.actions) * batch.mask).sum(-1)
        return -(log_prob * advantage).mean()

    def train_iteration(self) -> IterationStats:
        tasks = self.sampler.sample_tasks(self.cfg.meta_batch_size, self.task_rng)
        batch = self.sampler.sample(self.policy, self.policy.params(), tasks, self.episodes)
        loss = self._loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return IterationStats(batch.num_steps, {
            "meta_train/return/adapt_0": batch.episode_returns().mean().item(),
            "losses/toy": loss.item()})

    @torch.no_grad()
    def adapt(self, tasks: Sequence[Any], k_max: int, episodes: int, sampler: Any, *,
              seed: int | None = None, on_step: Any = None) -> Adaptation:
        params = {k: v.detach().clone() for k, v in self.policy.params().items()}
        batches = []
        for k in range(k_max + 1):
            batch = sampler.sample(self.policy, params, tasks, episodes)
            batches.append(batch)
            if on_step is not None:
                on_step(k, batch)
        return Adaptation(batches)

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "task_rng": self.task_rng.bit_generator.state,
                "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.training:
            self.optimizer.load_state_dict(state["optimizer"])
            self.task_rng.bit_generator.state = state["task_rng"]
            self.sampler.load_state_dict(state["sampler"])


register_algorithm("toy", config=ToyConfig, build=ToyLearner,
                   description="a toy learner registered from outside metarl",
                   best_by="meta_train/return/adapt_0", override=True)
