"""Env-steps/s of a Meta-World family through metarl's samplers: backend gym in one process,
and backend ray with N worker processes (the existing multi-process path).

Samples ``--tasks`` training tasks x ``--episodes`` full 500-step episodes with the MAML
policy (Gaussian MLP 100x100, tanh), twice per sampler, and reports the second (warm) call.
Usage:  nice -n 10 python launch/metaworld_speed.py --family MetaWorld-ML10-v3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def measure(sampler, policy, tasks, episodes: int, repeats: int = 2) -> float:
    """Env steps per second of the last of ``repeats`` sample calls."""
    rate = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        batch = sampler.sample(policy, policy.params(), tasks, episodes)
        rate = float(batch.mask.sum()) / (time.perf_counter() - start)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="MetaWorld-ML10-v3")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="ray workers (0: skip ray)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    import torch

    from metarl.envs import get_task_family
    from metarl.policies import GaussianMLPPolicy
    from metarl.samplers import BatchSampler

    torch.set_num_threads(1)
    family = get_task_family(args.family)
    local = BatchSampler(family, backend="gym", seed=0)
    tasks = local.sample_tasks(args.tasks, np.random.default_rng(0))
    policy = GaussianMLPPolicy(local.obs_dim, local.act_dim, (100, 100), "tanh")
    result = {"family": args.family, "tasks": args.tasks, "episodes": args.episodes,
              "load_avg_1min": os.getloadavg()[0],
              "gym_1_process": measure(local, policy, tasks, args.episodes)}
    local.close()
    if args.workers:
        from metarl.samplers.ray_sampler import RaySampler

        remote = RaySampler(family, backend="gym", seed=0, num_workers=args.workers)
        result[f"ray_{args.workers}_workers"] = measure(remote, policy, tasks, args.episodes)
        remote.close()
        result["speedup"] = result[f"ray_{args.workers}_workers"] / result["gym_1_process"]
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
