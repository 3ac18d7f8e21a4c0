"""Do Meta-World's scripted expert policies succeed as often on MuJoCo 4 as on MuJoCo 3.3.0?

For every class of a Meta-World benchmark's train and test splits, run ``--episodes`` seeded
episodes of ``metaworld.policies.ENV_POLICY_MAP[class]`` (episode i uses the class's goal
i mod 50 of the benchmark's task list, generated with ``--seed``); an episode succeeds if any
of its <= 500 steps has ``info["success"]`` (Meta-World's evaluation protocol, which ends an
evaluation episode at its first success; so do we). The policies read the goal from the
observation, so the goal is made observable (Meta-World's ML tasks hide it).

Two implementations, run one after the other in two Python environments:

``--impl reference``  plain Meta-World 3.1.1 on mujoco==3.3.0 (a venv of its own; this file
                      imports nothing from metarl on that path)
``--impl ours``       metarl's ``MetaWorld-<benchmark>-v3`` family env on MuJoCo 4

then ``--compare REF.json OURS.json`` prints the markdown table of docs/metaworld.md. Each
JSON also records a digest of every goal (``rand_vec``), so the comparison checks that both
ran the same tasks. Usage (from the repository root):

    nice -n 10 /tmp/mujoco33-venv/bin/python launch/metaworld_fidelity.py --impl reference --out ref.json
    nice -n 10 python launch/metaworld_fidelity.py --impl ours --out ours.json
    python launch/metaworld_fidelity.py --compare ref.json ours.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

HORIZON = 500  # Meta-World's max_path_length


def digest(rand_vec: Any) -> str:
    """A short stable fingerprint of a goal vector (its float64 bytes)."""
    return hashlib.sha1(np.asarray(rand_vec, dtype=np.float64).tobytes()).hexdigest()[:12]


def reference_episodes(benchmark: str, seed: int) -> Iterator[tuple[str, str, list, Callable]]:
    """(split, class, goals, make_env) from plain Meta-World (MuJoCo 3.3.0)."""
    import metaworld

    bench = metaworld.ML1(benchmark[4:], seed=seed) if benchmark.startswith("ML1-") else (
        getattr(metaworld, benchmark)(seed=seed))
    for split, classes, tasks in (("train", bench.train_classes, bench.train_tasks),
                                  ("test", bench.test_classes, bench.test_tasks)):
        for name, cls in classes.items():
            goals = [t for t in tasks if t.env_name == name]

            def make_env(cls: type = cls) -> Callable[[Any], Any]:
                env = cls()

                def start(task: Any) -> Any:
                    data = pickle.loads(task.data)
                    data["partially_observable"] = False  # the policies read the goal
                    env.set_task(metaworld.types.Task(task.env_name, pickle.dumps(data)))
                    return env
                return start
            yield split, name, [(g, pickle.loads(g.data)["rand_vec"]) for g in goals], make_env


def our_episodes(benchmark: str, seed: int) -> Iterator[tuple[str, str, list, Callable]]:
    """(split, class, goals, make_env) from metarl's family env (MuJoCo 4)."""
    from metarl.envs import get_task_family

    family = get_task_family(f"MetaWorld-{benchmark}-v3")
    probe = family.make_env(benchmark_seed=seed, goal_observable=True)
    reference = probe.unwrapped.reference_task_set()
    probe.close()
    for split, tasks in (("train", reference.train), ("test", reference.test)):
        for name in dict.fromkeys(t.env_name for t in tasks):
            goals = sorted((t for t in tasks if t.env_name == name), key=lambda t: t.goal_index)

            def make_env() -> Callable[[Any], Any]:
                env = family.make_env(benchmark_seed=seed, goal_observable=True)

                def start(task: Any) -> Any:
                    env.unwrapped.set_task(task)
                    return env
                return start
            yield split, name, [(g, g.rand_vec) for g in goals], make_env


def run(impl: str, benchmark: str, seed: int, episodes: int) -> dict[str, Any]:
    """Per class: success, first-success step and return up to it, for every episode."""
    from metaworld.policies import ENV_POLICY_MAP

    source = reference_episodes if impl == "reference" else our_episodes
    out: dict[str, Any] = {"impl": impl, "benchmark": benchmark, "seed": seed, "classes": {}}
    try:
        import mujoco
        out["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    start_all = time.perf_counter()
    for split, name, goals, make_env in source(benchmark, seed):
        policy = ENV_POLICY_MAP[name]()
        start = make_env()
        record: dict[str, list] = {"success": [], "steps": [], "return": [], "goal": []}
        steps_total, t0 = 0, time.perf_counter()
        for i in range(episodes):
            task, rand_vec = goals[i % len(goals)]
            env = start(task)
            np.random.seed(seed * 100_000 + i)  # any legacy global-RNG use is seeded too
            obs, _ = env.reset(seed=seed * 100_000 + i)
            ret, success, t = 0.0, False, 0
            for t in range(1, HORIZON + 1):
                obs, reward, terminated, truncated, info = env.step(policy.get_action(obs))
                ret += float(reward)
                if info["success"]:
                    success = True
                    break
                if terminated or truncated:
                    break
            steps_total += t
            record["success"].append(success)
            record["steps"].append(t)
            record["return"].append(round(ret, 6))
            record["goal"].append(digest(rand_vec))
        rate = float(np.mean(record["success"]))
        print(f"{impl} {split:5s} {name:28s} success {rate:.2f}  "
              f"{steps_total / (time.perf_counter() - t0):.0f} steps/s", flush=True)
        out["classes"][name] = {"split": split, **record}
    out["wall_s"] = round(time.perf_counter() - start_all, 1)
    return out


def compare(ref_path: str, ours_path: str) -> str:
    """The markdown table: success rate per class on both (Fisher's exact test of the two
    rates), and how many of the paired episodes (same goal, same policy) differ."""
    ref, ours = (json.load(open(p)) for p in (ref_path, ours_path))
    from scipy.stats import fisher_exact

    lines = [f"| split | task | success, mujoco {ref.get('mujoco', '?')} | success, mujoco "
             f"{ours.get('mujoco', '?')} | Fisher p | mean steps to success (ref / ours) | "
             "episodes: outcome differs / step count differs |", "|---|---|---|---|---|---|---|"]
    for name, r in ref["classes"].items():
        o = ours["classes"][name]
        if r["goal"] != o["goal"]:
            raise SystemExit(f"{name}: the two runs used different goals; not comparable")
        n = len(r["success"])
        outcome = sum(a != b for a, b in zip(r["success"], o["success"]))
        steps = sum(a != b for a, b in zip(r["steps"], o["steps"]))
        wins = [sum(x["success"]) for x in (r, o)]
        p = fisher_exact([[wins[0], n - wins[0]], [wins[1], n - wins[1]]])[1]
        mark = (" **differs**" if wins[0] != wins[1]
                else " *(same rate, outcomes swap)*" if outcome else "")
        mean_steps = "{:.0f} / {:.0f}".format(*(np.mean(x["steps"]) for x in (r, o)))
        lines.append(f"| {r['split']} | {name}{mark} | {wins[0] / n:.2f} | {wins[1] / n:.2f} | "
                     f"{p:.2f} | {mean_steps} | {outcome} / {steps} |")
    rates = [np.mean([np.mean(x["classes"][c]["success"]) for c in ref["classes"]])
             for x in (ref, ours)]
    lines.append(f"| all | mean over classes | {rates[0]:.3f} | {rates[1]:.3f} | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("reference", "ours"))
    parser.add_argument("--benchmark", default="ML10", help="ML10, ML45 or ML1-<task>")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed (goal lists)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per class")
    parser.add_argument("--out", help="JSON file for the per-episode results")
    parser.add_argument("--compare", nargs=2, metavar=("REF_JSON", "OURS_JSON"))
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return
    if not args.impl:
        parser.error("give --impl reference|ours, or --compare REF OURS")
    result = run(args.impl, args.benchmark, args.seed, args.episodes)
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    print(f"wall {result['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main()
