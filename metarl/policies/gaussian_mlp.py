"""Gaussian MLP policy with functional parameters (the MAML inner loop needs them).

``policy(obs, params)`` evaluates the network with an explicit parameter dict.
Parameters may be *shared* (each tensor has its usual shape) or *stacked per task*
(each tensor has an extra leading task dimension ``T``); with stacked parameters,
``obs`` must be ``[T, ...]`` and task ``i``'s observations are evaluated with task
``i``'s parameters, in one batched matmul per layer rather than a loop over tasks.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Independent, Normal


_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class GaussianMLPPolicy(nn.Module):
    """Diagonal Gaussian over actions; mean from an MLP, state-independent log-std.

    Weights are stored ``[in, out]`` so ``x @ W`` works for shared and stacked
    parameters alike. Initialisation: Xavier-uniform weights, zero biases,
    ``log_std = log(init_std)`` (as in the MAML reference code).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: Sequence[int] = (100, 100),
                 activation: str = "relu", init_std: float = 1.0, min_std: float = 1e-6) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.activation = activation
        self.min_log_std = math.log(min_std)
        sizes = [obs_dim, *hidden_sizes, act_dim]
        self.num_layers = len(sizes) - 1
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            weight = torch.empty(n_in, n_out)
            nn.init.xavier_uniform_(weight)
            self.register_parameter(f"w{i}", nn.Parameter(weight))
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(n_out)))
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))

    def params(self) -> dict[str, torch.Tensor]:
        """The module's own (shared) parameters, as the dict ``forward`` takes."""
        return OrderedDict(self.named_parameters())

    def forward(self, obs: torch.Tensor, params: dict[str, torch.Tensor] | None = None
                ) -> Independent:
        """Action distribution at ``obs`` under ``params`` (default: the module's own)."""
        return Independent(Normal(*self.mean_std(obs, params)), 1)

    def mean_std(self, obs: torch.Tensor, params: dict[str, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (same shape) of the action distribution;
        what samplers call in their inner loop, without building a distribution."""
        params = self.params() if params is None else params
        stacked = params["log_std"].dim() == 2
        x = obs
        if stacked:
            lead = obs.shape[1:-1]
            x = x.reshape(obs.shape[0], -1, obs.shape[-1])
        act = _ACTIVATIONS[self.activation]
        for i in range(self.num_layers):
            bias = params[f"b{i}"]
            x = x @ params[f"w{i}"] + (bias.unsqueeze(-2) if stacked else bias)
            if i < self.num_layers - 1:
                x = act(x)
        log_std = params["log_std"]
        if stacked:
            x = x.reshape(obs.shape[0], *lead, self.act_dim)
            log_std = log_std.reshape(obs.shape[0], *([1] * len(lead)), self.act_dim)
        std = torch.exp(torch.clamp(log_std, min=self.min_log_std)).expand_as(x)
        return x, std


def stack_params(params: dict[str, torch.Tensor], num_tasks: int
                 ) -> dict[str, torch.Tensor]:
    """Shared parameters viewed as ``num_tasks`` stacked copies (no memory copy).

    Differentiating a sum of per-task losses with respect to the stacked view gives
    each task's own gradient, which is what a batched inner loop needs.
    """
    return OrderedDict((k, v.unsqueeze(0).expand(num_tasks, *v.shape)) for k, v in params.items())
