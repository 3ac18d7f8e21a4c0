"""The ``algo`` keys of MAML-TRPO (``algo.name: maml_trpo``) and of plain TRPO on the task
mixture (``algo.name: trpo``, the MAML paper's pretrained and oracle baselines).

Defaults are the MAML paper's (Finn et al. 2017, appendix A; github.com/cbfinn/maml_rl
``maml_examples/maml_trpo_*.py``). Torch-free: configs are checked before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...schema import setting


@dataclass
class PolicyGradientConfig:
    """The keys every on-policy gradient learner here shares: tasks and advantages."""

    name: str = setting("trpo", "Algorithm (see `metarl algos`).")
    meta_batch_size: int = setting(20, "Tasks sampled per iteration.", ge=1, le=10**6)
    gamma: float = setting(0.99, "Discount factor.", gt=0, le=1)
    gae_lambda: float = setting(1.0, "GAE lambda (1.0 = Monte-Carlo advantages).", ge=0, le=1)
    normalize_advantages: bool = setting(True, "Standardize advantages per task.")
    baseline_reg: float = setting(1e-5, "Ridge coefficient of the linear feature value "
                                  "baseline of the advantages.", gt=0, le=1e6)


@dataclass
class InnerLoopConfig(PolicyGradientConfig):
    """The inner loop of the MAML family: policy-gradient adaptation steps."""

    inner_steps: int = setting(1, "Inner-loop policy-gradient steps during meta-training.",
                               ge=1, le=100)
    inner_step_size: float = setting(0.1, "Inner-loop step size alpha.", gt=0, le=1e3)
    eval_step_sizes: list[float] = setting(
        [0.1, 0.05], "Step sizes of `metarl eval`'s adaptation: step k uses entry "
        "min(k, len-1).", gt=0, le=1e3)


@dataclass
class TRPOConfig(PolicyGradientConfig):
    """TRPO on the mixture of tasks: one policy for all tasks, no adaptation in training."""

    name: str = setting("trpo", "Algorithm (see `metarl algos`).")
    max_kl: float = setting(0.01, "TRPO trust region: max mean KL per update.", gt=0, le=10)
    fisher_subsample: float = setting(1.0, "Share of each task's post-adaptation episodes "
                                      "the Fisher-vector products evaluate the KL on (their "
                                      "inner steps, the gradient and the line search use "
                                      "all).", gt=0, le=1)
    compile: bool = setting(False, "Compile the Fisher-vector products with torch.compile "
                            "(needs a C++ compiler on CPU; the first meta-step compiles for "
                            "10-25 s, later meta-steps ran up to 1.2x faster, most on one "
                            "thread; same values to float rounding). Falls back to eager "
                            "with a warning if compiling fails.")
    cg_iters: int = setting(10, "Conjugate-gradient iterations.", ge=1, le=10**4)
    cg_damping: float = setting(1e-5, "Damping added to the Fisher-vector product.", ge=0,
                                le=1e6)
    ls_max_steps: int = setting(15, "Maximum backtracking line-search steps.", ge=1, le=1000)
    ls_backtrack_ratio: float = setting(0.8, "Step shrink factor per line-search step.", gt=0,
                                        lt=1)


@dataclass
class MixtureTRPOConfig(TRPOConfig):
    """``algo.name: trpo``: TRPO's keys plus how the iteration's episodes are pooled."""

    pool_tasks: bool = setting(False, "Treat each iteration's episodes as one batch, as "
                               "rllab's TRPO on a task-randomised env does (the MAML "
                               "paper's pretrained and oracle baselines, maml_rl "
                               "maml_examples/cluster_trpo_*.py): one linear baseline "
                               "for all tasks, fitted on the previous iteration's episodes "
                               "(rllab/sampler/base.py fits after predicting), advantages "
                               "standardised over the whole batch, surrogate and KL "
                               "averaged over all steps. false: per task, as MAML's "
                               "meta-batch.")


@dataclass
class MAMLTRPOConfig(InnerLoopConfig, TRPOConfig):
    """MAML with a TRPO meta-optimizer: TRPO's keys plus the inner loop's."""

    name: str = setting("maml_trpo", "Algorithm (see `metarl algos`).")
    first_order: bool = setting(False, "Drop second-order terms of the meta-gradient (FOMAML).")
    fisher: str = setting("gauss_newton", "Fisher-vector products of the meta-step's KL: exact "
                          "(double backprop), gauss_newton (same values, jvp/vjp), first_order "
                          "(ignores the inner step's Jacobian; approximate).",
                          choices=("exact", "gauss_newton", "first_order"))
