"""Per-task replay buffers stored as ``[tasks, capacity, ...]`` tensors.

Off-policy meta-RL samples a batch from each of many tasks per gradient step;
keeping every task's transitions in one preallocated tensor makes that one
indexing operation (on the GPU when the buffer lives there) instead of a loop
over per-task buffers.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")


class Transitions(NamedTuple):
    """Transitions of several tasks: ``[tasks, batch, ...]``."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor  # 1.0 where the episode terminated (not at the time limit)


class MultiTaskReplayBuffer:
    """One first-in-first-out buffer of up to ``capacity`` transitions per task.

    Storage grows by doubling as tasks fill (all tasks share the allocated length),
    so a large ``capacity`` costs memory only once it is used.
    """

    def __init__(self, num_tasks: int, obs_dim: int, act_dim: int, capacity: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        if num_tasks < 1 or capacity < 1:
            raise ValueError(f"MultiTaskReplayBuffer: need num_tasks >= 1 and capacity >= 1, "
                             f"got {num_tasks} and {capacity}")
        self.num_tasks, self.obs_dim, self.act_dim = num_tasks, obs_dim, act_dim
        self.capacity = capacity
        self.device, self.dtype = torch.device(device), dtype
        self.sizes = [0] * num_tasks  # host copies: bookkeeping without device syncs
        self._next = [0] * num_tasks
        self._sizes = torch.zeros(num_tasks, dtype=torch.long, device=self.device)
        self._allocated = 0
        self._data = {name: torch.zeros(self._shape(name, 0), dtype=dtype, device=self.device)
                      for name in FIELDS}

    def _shape(self, name: str, length: int) -> tuple[int, ...]:
        feature = {"observations": (self.obs_dim,), "next_observations": (self.obs_dim,),
                   "actions": (self.act_dim,)}.get(name, ())
        return (self.num_tasks, length, *feature)

    def _reserve(self, length: int) -> None:
        if length <= self._allocated:
            return
        new = min(self.capacity, max(length, 2 * self._allocated))
        for name, old in self._data.items():
            grown = torch.zeros(self._shape(name, new), dtype=self.dtype, device=self.device)
            grown[:, :self._allocated] = old
            self._data[name] = grown
        self._allocated = new

    def add(self, task: int, transitions: Transitions) -> None:
        """Append ``N`` transitions (each field ``[N, ...]``) to ``task``'s buffer; the
        oldest are overwritten once it holds ``capacity``."""
        n = transitions.rewards.shape[0]
        if n == 0:
            return
        if n > self.capacity:  # only the newest fit
            transitions = Transitions(*(x[-self.capacity:] for x in transitions))
            n = self.capacity
        self._reserve(min(self.capacity, self._next[task] + n))
        positions = (self._next[task] + torch.arange(n, device=self.device)) % self.capacity
        for name, values in zip(FIELDS, transitions):
            self._data[name][task, positions] = values.to(self.device, self.dtype)
        self._next[task] = (self._next[task] + n) % self.capacity
        self.sizes[task] = min(self.capacity, self.sizes[task] + n)
        self._sizes[task] = self.sizes[task]

    def clear(self, task: int) -> None:
        """Empty ``task``'s buffer (its storage is reused)."""
        self.sizes[task] = self._next[task] = 0
        self._sizes[task] = 0

    def sample(self, tasks: Sequence[int] | torch.Tensor, batch_size: int,
               generator: torch.Generator | None = None) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement from each of
        ``tasks`` (repeats allowed): fields ``[len(tasks), batch_size, ...]``.

        ``generator`` is a CPU generator: the draws are made on the CPU and moved to the
        buffer's device, so a seed picks the same transitions on every device.
        """
        task_list = tasks.tolist() if isinstance(tasks, torch.Tensor) else list(tasks)
        empty = sorted({t for t in task_list if self.sizes[t] == 0})
        if empty:
            raise ValueError(f"MultiTaskReplayBuffer.sample: task(s) {empty} have no "
                             "transitions yet; collect data for them first")
        index = torch.as_tensor(task_list, dtype=torch.long, device=self.device)
        sizes = self._sizes[index].unsqueeze(1)
        u = torch.rand(len(task_list), batch_size, generator=generator,
                       dtype=torch.float64).to(self.device)
        rows = torch.minimum((u * sizes).long(), sizes - 1)
        tasks_col = index.unsqueeze(1)
        return Transitions(*(self._data[name][tasks_col, rows] for name in FIELDS))

    def state_dict(self) -> dict[str, Any]:
        """Contents and ring positions, on the CPU: each field holds every task's
        transitions in use, concatenated in task order (``sizes`` splits them), so a
        checkpoint grows with the data collected. (A slice of ``_data`` would be a view,
        and ``torch.save`` writes a view's whole storage: tasks x the allocated length.)"""
        return {"sizes": list(self.sizes), "next": list(self._next), "capacity": self.capacity,
                "packed": True,
                **{name: torch.cat([self._data[name][task, :size]
                                    for task, size in enumerate(self.sizes)]).cpu()
                   for name in FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; also reads the padded ``[tasks, fullest,
        ...]`` layout that checkpoints written before the packed one hold."""
        if state["capacity"] != self.capacity or len(state["sizes"]) != self.num_tasks:
            raise ValueError(f"MultiTaskReplayBuffer: saved buffer holds {len(state['sizes'])} "
                             f"tasks of capacity {state['capacity']}, this one "
                             f"{self.num_tasks} of {self.capacity}")
        sizes = [int(size) for size in state["sizes"]]
        if state.get("packed", False):
            if state["rewards"].shape[0] != sum(sizes):
                raise ValueError(f"MultiTaskReplayBuffer: saved buffer holds "
                                 f"{state['rewards'].shape[0]} transitions, its sizes say "
                                 f"{sum(sizes)}")
            per_task = {name: torch.split(state[name], sizes) for name in FIELDS}
        else:
            per_task = {name: [state[name][task, :size] for task, size in enumerate(sizes)]
                        for name in FIELDS}
        self._allocated = 0
        self._data = {name: torch.zeros(self._shape(name, 0), dtype=self.dtype,
                                        device=self.device) for name in FIELDS}
        self._reserve(max(sizes, default=0))
        for name in FIELDS:
            for task, values in enumerate(per_task[name]):
                self._data[name][task, :sizes[task]] = values.to(self.device, self.dtype)
        self.sizes, self._next = sizes, [int(n) for n in state["next"]]
        self._sizes = torch.tensor(self.sizes, dtype=torch.long, device=self.device)
