"""The ``algo`` keys of RL² (``algo.name: rl2``; Duan et al. 2016, Wang et al. 2016).

Defaults are garage's RL²-PPO examples (github.com/rlworkgroup/garage
``src/garage/examples/tf/rl2_ppo_halfcheetah.py``: 10 tasks, 4 episodes per trial, a
64-unit GRU, gamma 0.99, GAE lambda 0.95, clip 0.2, 10 epochs of minibatches of 32
trials, entropy bonus 0.02 added to the rewards, advantages not centred; Adam's rate
1e-3 is the default of ``src/garage/tf/optimizers/first_order_optimizer.py``) and, for
the TRPO option, ``src/garage/tf/algos/rl2trpo.py`` with
``conjugate_gradient_optimizer.py`` (max KL 0.01, 10 CG iterations, damping 1e-5,
backtracking 0.8 x 15). Torch-free: configs are checked before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...schema import setting


@dataclass
class RL2Config:
    """RL²: a recurrent policy that adapts within a trial of several episodes of one
    task, trained across trials with PPO (or TRPO)."""

    name: str = setting("rl2", "Algorithm (see `metarl algos`).")
    meta_batch_size: int = setting(10, "Tasks sampled per iteration.", ge=1, le=10**6)
    trials_per_task: int = setting(1, "Trials (independent simulations) per task per "
                                   "iteration.", ge=1, le=10**6)
    episodes_per_trial: int = setting(4, "Episodes of one task per trial; the policy's "
                                      "hidden state carries over between them.", ge=1,
                                      le=10**4)
    hidden_size: int = setting(64, "Hidden units of the GRU policy.", ge=1, le=65536)
    init_std: float = setting(1.0, "Initial standard deviation of the Gaussian policy "
                              "(a learned, state-independent vector).", gt=0, le=1e3)
    min_std: float = setting(1e-6, "Lower bound on the standard deviation.", gt=0, le=1e3)
    gamma: float = setting(0.99, "Discount factor (over the whole trial).", gt=0, le=1)
    gae_lambda: float = setting(0.95, "GAE lambda (over the whole trial).", ge=0, le=1)
    normalize_advantages: bool = setting(False, "Standardize advantages over all steps of "
                                         "the iteration.")
    baseline_reg: float = setting(1e-5, "Ridge coefficient of the linear feature value "
                                  "baseline (one fit over every trial of the iteration).",
                                  gt=0, le=1e6)
    entropy_coeff: float = setting(0.02, "Weight of the policy's entropy added to every "
                                   "step's reward (no gradient through it).", ge=0, le=1e3)
    optimizer: str = setting("ppo", "Update: ppo (clipped surrogate, epochs of minibatches "
                             "of trials, Adam) or trpo (trust-region step on the surrogate).",
                             choices=("ppo", "trpo"))
    learning_rate: float = setting(1e-3, "Adam learning rate (ppo).", gt=0, le=10)
    clip_eps: float = setting(0.2, "Clip range of the likelihood ratio: [1 - eps, 1 + eps] "
                              "(ppo).", gt=0, lt=1)
    ppo_epochs: int = setting(10, "Passes over the iteration's trials (ppo).", ge=1,
                              le=10**4)
    minibatch_size: int = setting(32, "Trials per Adam step (ppo).", ge=1, le=10**6)
    max_kl: float = setting(0.01, "Trust region: max mean KL per update (trpo).", gt=0,
                            le=10)
    cg_iters: int = setting(10, "Conjugate-gradient iterations (trpo).", ge=1, le=10**4)
    cg_damping: float = setting(1e-5, "Damping added to the Fisher-vector product (trpo).",
                                ge=0, le=1e6)
    ls_max_steps: int = setting(15, "Maximum backtracking line-search steps (trpo).", ge=1,
                                le=1000)
    ls_backtrack_ratio: float = setting(0.8, "Step shrink factor per line-search step "
                                        "(trpo).", gt=0, lt=1)

    def validate(self, prefix: str) -> None:
        """Checks across keys."""
        from ...schema import ConfigError

        if self.min_std > self.init_std:
            raise ConfigError(f"{prefix}min_std: {self.min_std} must not exceed "
                              f"{prefix}init_std ({self.init_std})")
