"""Hand-derived curvature products of the Gaussian MLP policy, batched over tasks.

The Gauss-Newton Fisher products (:mod:`.kernels`) need, per conjugate-gradient
iteration, two Hessian-vector products of the inner policy-gradient loss, one
Jacobian-vector product of the policy's (mean, log-std) and one vector-Jacobian
product. Autograd computes them by differentiating the backward graph; here they are
written out for the MLP (Pearlmutter's R-operator, "Fast exact multiplication by the
Hessian", Neural Computation 1994): one forward R-pass and one backward R-pass over
activations cached once per meta-step. The matrix products are the same in number as
autograd's; what is saved is the elementwise work (no zero-filled tensors, no
``threshold_backward`` of a ``threshold_backward``, no gradient accumulation into
fresh buffers), which on a CPU is a large share of a product's time.

Conventions follow :class:`~metarl.policies.GaussianMLPPolicy`: weights ``[in, out]``,
stacked per task (``[T, in, out]``), state-independent ``log_std`` clamped below at
``log(min_std)``, activation ``relu`` or ``tanh``. Every product equals autograd's to
float rounding (``tests/test_maml_kernels.py``).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ...policies import GaussianMLPPolicy
from ...samplers import EpisodeBatch

Vectors = list[torch.Tensor]  # one tensor per policy parameter, stacked per task


def supports(policy: torch.nn.Module) -> bool:
    """Whether ``policy`` computes its distribution exactly as derived here."""
    return (isinstance(policy, GaussianMLPPolicy)
            and type(policy).mean_std is GaussianMLPPolicy.mean_std
            and policy.activation in ("relu", "tanh"))


class Linearization:
    """The policy network at stacked parameters on ``obs[T, ..., obs_dim]``: its
    Jacobian-vector and vector-Jacobian products with respect to the parameters.

    ``params`` are the stacked tensors in ``policy.params()`` order (weights, biases,
    then ``log_std``).
    """

    def __init__(self, policy: GaussianMLPPolicy, params: Vectors, obs: torch.Tensor) -> None:
        self.num_layers = policy.num_layers
        self.tanh = policy.activation == "tanh"
        self.weights = params[0:2 * self.num_layers:2]
        biases = params[1:2 * self.num_layers:2]
        log_std = params[-1]
        x = obs.reshape(obs.shape[0], -1, obs.shape[-1])
        self.inputs = [x]     # the input of every layer
        self.slopes = [None]  # the activation's derivative at every hidden layer's output
        for i, (w, b) in enumerate(zip(self.weights, biases)):
            x = torch.baddbmm(b.unsqueeze(1), x, w)
            if i < self.num_layers - 1:
                if self.tanh:
                    x = torch.tanh(x)
                    self.slopes.append(1.0 - x * x)
                else:
                    x = torch.relu(x)
                    self.slopes.append(torch.sign(x))  # relu's derivative, 0 at 0 as autograd's
                self.inputs.append(x)
        self.mean = x  # [T, N, act_dim]
        # clamp's derivative, as autograd takes it (1 where log_std >= the bound)
        self.log_std_slope = (log_std >= policy.min_log_std).to(log_std.dtype)
        self.log_std = torch.clamp(log_std, min=policy.min_log_std)

    def jvp(self, v: Vectors) -> tuple[torch.Tensor, torch.Tensor, Vectors]:
        """``(d mean, d log_std, d hidden)`` along ``v``: ``[T, N, A]``, ``[T, A]`` and
        the directional derivative of every layer's input (``None`` for the first)."""
        d_inputs: list[torch.Tensor | None] = [None]
        d_out = torch.baddbmm(v[1].unsqueeze(1), self.inputs[0], v[0])
        for i in range(1, self.num_layers):
            d_in = self.slopes[i] * d_out
            d_inputs.append(d_in)
            d_out = torch.baddbmm(torch.baddbmm(v[2 * i + 1].unsqueeze(1), self.inputs[i],
                                                v[2 * i]), d_in, self.weights[i])
        return d_out, self.log_std_slope * v[-1], d_inputs

    def vjp(self, d_mean: torch.Tensor, d_log_std: torch.Tensor) -> Vectors:
        """Parameter gradient of ``sum(d_mean * mean) + sum(d_log_std * log_std)``."""
        return self.backward(d_mean, d_log_std)

    def backward(self, delta: torch.Tensor, d_log_std: torch.Tensor,
                  tangent: tuple[Vectors, Vectors, Vectors, Vectors] | None = None) -> Vectors:
        """Back-propagation of ``delta``, the cotangent of the output.

        With ``tangent = (v, d_inputs, deltas, input_grads)`` it is instead the R-pass of
        the back-propagation that had ``deltas[i]`` as layer ``i``'s output cotangent and
        ``input_grads[i]`` as its input gradient, differentiated along ``v``; ``delta``
        and ``d_log_std`` are then the derivatives of the top cotangents along ``v``.
        """
        out: Vectors = [None] * (2 * self.num_layers + 1)  # type: ignore[list-item]
        out[-1] = self.log_std_slope * d_log_std
        if tangent is not None:
            v, d_inputs, deltas, input_grads = tangent
        for i in reversed(range(self.num_layers)):
            grad_w = torch.bmm(self.inputs[i].transpose(1, 2), delta)
            if tangent is not None and i > 0:
                grad_w = torch.baddbmm(grad_w, d_inputs[i].transpose(1, 2), deltas[i])
            out[2 * i], out[2 * i + 1] = grad_w, delta.sum(1)
            if i == 0:
                break
            d_input = torch.bmm(delta, self.weights[i].transpose(1, 2))
            if tangent is not None:
                d_input = torch.baddbmm(d_input, deltas[i], v[2 * i].transpose(1, 2))
            delta = self.slopes[i] * d_input
            if tangent is not None and self.tanh:
                # tanh' = 1 - tanh^2 moves along v too: d tanh' = -2 tanh d(tanh)
                delta = delta - 2.0 * self.inputs[i] * d_inputs[i] * input_grads[i]
        return out


class InnerLossCurvature:
    """The inner policy-gradient loss of :func:`~.policy_gradient.reinforce_loss`
    (summed over tasks) at stacked parameters: its gradient and Hessian-vector products.

    Per task ``L = -sum_t c_t log N(a_t | mu_t, sigma)`` with ``c_t = m_t A_t / n``
    (mask, advantage, the task's real steps), so with ``r = a - mu`` and ``s = log sigma``:
    ``dL/dmu = -c r / sigma^2``, ``dL/ds = -sum_t c_t (r^2 / sigma^2 - 1)`` and the second
    derivatives ``c / sigma^2`` (mu mu), ``2 c r / sigma^2`` (mu s), ``2 sum_t c_t r^2 / sigma^2``
    (s s).
    """

    def __init__(self, policy: GaussianMLPPolicy, params: Vectors, batch: EpisodeBatch,
                 advantages: torch.Tensor) -> None:
        net = self.net = Linearization(policy, params, batch.observations)
        num_tasks = batch.observations.shape[0]
        mask = batch.mask.reshape(num_tasks, -1)
        count = mask.sum(1, keepdim=True).clamp(min=1.0)
        c = (advantages.reshape(num_tasks, -1) * mask / count).unsqueeze(-1)  # [T, N, 1]
        residual = batch.actions.reshape(num_tasks, -1, net.mean.shape[-1]) - net.mean
        inv_var = torch.exp(-2.0 * net.log_std).unsqueeze(1)  # [T, 1, A]
        self.c_inv_var = c * inv_var
        self.cross = 2.0 * self.c_inv_var * residual  # d2L / dmu ds, per step
        self.ss = (self.cross * residual).sum(1)      # d2L / ds^2
        delta = -self.c_inv_var * residual
        d_log_std = -(c * (residual * residual * inv_var - 1.0)).sum(1)
        # the backward pass, keeping every layer's output cotangent and input gradient
        self.deltas: Vectors = [None] * net.num_layers  # type: ignore[list-item]
        self.grads: Vectors = [None] * net.num_layers   # type: ignore[list-item]
        self.deltas[-1] = delta
        for i in reversed(range(1, net.num_layers)):
            self.grads[i] = torch.bmm(self.deltas[i], net.weights[i].transpose(1, 2))
            self.deltas[i - 1] = net.slopes[i] * self.grads[i]
        self._delta_top, self._d_log_std = delta, d_log_std

    def gradient(self) -> Vectors:
        """Each task's gradient of its loss, stacked."""
        return self.net.vjp(self._delta_top, self._d_log_std)

    def hvp(self, v: Vectors) -> Vectors:
        """Each task's Hessian of its loss times its slice of ``v``."""
        d_mean, d_s, d_inputs = self.net.jvp(v)
        d_s = d_s.unsqueeze(1)
        d_delta = self.c_inv_var * d_mean + self.cross * d_s
        d_log_std = (self.cross * d_mean).sum(1) + self.ss * d_s.squeeze(1)
        return self.net.backward(d_delta, d_log_std, (v, d_inputs, self.deltas, self.grads))


_compile_failed: str | None = None  # why torch.compile failed in this process, once it has


def compiled(product: Callable[[torch.Tensor], torch.Tensor]
             ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``product`` through ``torch.compile``, or ``product`` itself if compiling fails.

    The products are plain tensor code (no autograd), so Inductor fuses their
    elementwise work into the loops around the matrix products. Graphs are cached by
    shape, so a run whose meta-batches keep their shape compiles once. A failure (no C++
    compiler, an unsupported backend) warns once per process and the run continues
    eagerly: the values are the same either way.
    """
    global _compile_failed
    if _compile_failed is not None:
        return product
    fast = torch.compile(product, dynamic=False)

    def call(vector: torch.Tensor) -> torch.Tensor:
        global _compile_failed
        if _compile_failed is None:
            try:
                return fast(vector)
            except Exception as err:  # noqa: BLE001 - any compiler failure: run eagerly
                _compile_failed = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                warnings.warn(f"algo.compile: torch.compile of the Fisher-vector products "
                              f"failed ({_compile_failed}); they run eagerly", RuntimeWarning)
        return product(vector)

    return call
