"""Linear feature baseline for policy-gradient advantages (Duan et al. 2016, rllab).

Features per step are ``[clip(o, -10, 10), clip(o, -10, 10)^2, t, t^2, t^3, 1]`` with
``t = step / 100``. Coefficients are fitted per task by ridge regression on the
discounted returns of that task's episodes, all tasks solved in one batched call.
"""

from __future__ import annotations

import torch

from ...samplers.episode_batch import EpisodeBatch


def baseline_features(batch: EpisodeBatch) -> torch.Tensor:
    """``[T, E, H, 2*obs_dim + 4]`` regression features."""
    obs = batch.observations.clamp(-10.0, 10.0)
    steps = torch.arange(batch.horizon, dtype=obs.dtype, device=obs.device) / 100.0
    t = steps.view(1, 1, -1, 1).expand(*obs.shape[:3], 1)
    return torch.cat([obs, obs * obs, t, t ** 2, t ** 3, torch.ones_like(t)], dim=-1)


def fit_linear_baseline(batch: EpisodeBatch, returns: torch.Tensor, reg_coeff: float = 1e-5,
                        max_tries: int = 5) -> torch.Tensor:
    """Per-task ridge coefficients ``[T, F]`` minimising masked squared error to ``returns``.

    The problem is solved in float64 by Cholesky factorisation of the ridge-regularised
    normal equations; a task whose system is numerically singular retries with a
    tenfold ridge coefficient, up to ``max_tries`` times (as rllab does).
    """
    num_tasks = batch.num_tasks
    features = baseline_features(batch)
    x = features.reshape(num_tasks, -1, features.shape[-1]).double()
    m = batch.mask.reshape(num_tasks, -1, 1).double()
    y = returns.reshape(num_tasks, -1, 1).double()
    xtx = x.transpose(1, 2) @ (x * m)
    xty = x.transpose(1, 2) @ (y * m)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    # Cholesky, not LU: the normal equations are symmetric positive semi-definite, and
    # features that never vary (the ant's contact forces of bodies that never touch
    # anything) make them singular up to the ridge. MKL's multithreaded batched LU
    # (torch.linalg.solve) then fails outright on this machine (2 threads, 254 features:
    # "Pivots given to lu_solve must all be greater or equal to 1"), where Cholesky
    # reports failure per task through ``info``.
    reg = torch.full((num_tasks, 1, 1), reg_coeff, dtype=x.dtype, device=x.device)
    for _ in range(max_tries):
        factor, info = torch.linalg.cholesky_ex(xtx + reg * eye)
        coeffs = torch.cholesky_solve(xty, factor)
        failed = (info != 0) | ~torch.isfinite(coeffs).all(dim=1).squeeze(-1)
        if not failed.any():
            break
        reg = torch.where(failed.view(-1, 1, 1), reg * 10.0, reg)
    return coeffs.squeeze(-1).to(returns.dtype)


def predict_linear_baseline(batch: EpisodeBatch, coeffs: torch.Tensor) -> torch.Tensor:
    """``[T, E, H]`` baseline values, zero on padding."""
    features = baseline_features(batch)
    values = torch.einsum("tehf,tf->teh", features, coeffs.to(features.dtype))
    return values * batch.mask
