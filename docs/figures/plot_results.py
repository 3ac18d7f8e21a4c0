"""Draw the figures of README.md and docs/results.md from the measured values of their tables.

Nothing here is re-measured: every number is copied from a table in docs/results.md (mean
return and standard error across held-out tasks, as `metarl eval` wrote them to
`adaptation.csv`). The comment above each table names the section and the command that
measured it. Run from the repository root:

    python docs/figures/plot_results.py

and it writes the PNGs next to this file.
"""

from __future__ import annotations

from pathlib import Path

from metarl.evaluation import AdaptationPoint, plot_adaptation

OUT = Path(__file__).resolve().parent

# method -> [(mean_return, stderr) for step 0, 1, ...]; stderr is across tasks.
Table = dict[str, list[tuple[float, float]]]


def points(table: Table, n_tasks: int) -> list[AdaptationPoint]:
    return [AdaptationPoint(method, step, mean, stderr, n_tasks)
            for method, row in table.items() for step, (mean, stderr) in enumerate(row)]


# docs/results.md, "Half-cheetah velocity and direction" (HalfCheetahVel-v0 table):
# `metarl train configs/maml_trpo/half_cheetah_vel.yaml` (500 iterations), then
# `metarl eval RUN_DIR --grad-steps 3 --baselines pretrained,random,oracle`; 40 held-out tasks.
# The oracle is measured once and drawn at every step, as `metarl eval` draws it.
HALF_CHEETAH_VEL: Table = {
    "MAML (iteration 500)": [(-151.1, 10.5), (-122.3, 7.1), (-119.0, 6.9), (-119.6, 7.1)],
    "pretrained (step 0.025)": [(-151.6, 7.1), (-143.7, 7.1), (-135.9, 7.0), (-131.8, 7.0)],
    "random init (step 0.4)": [(-251.6, 12.1), (-241.1, 12.9), (-225.7, 13.4), (-219.8, 13.4)],
    "oracle": [(-156.8, 9.6)] * 4,
}

# docs/results.md, "Half-cheetah velocity and direction" (HalfCheetahDir-v0 table):
# `metarl train configs/maml_trpo/half_cheetah_dir.yaml` (200 iterations), then
# `metarl eval RUN_DIR --grad-steps 3 --baselines pretrained,random,oracle`; 40 held-out tasks.
HALF_CHEETAH_DIR: Table = {
    "MAML (iteration 200)": [(-38.8, 6.6), (43.9, 11.5), (73.8, 12.0), (94.9, 12.2)],
    "pretrained (step 0.2)": [(-36.8, 2.7), (-24.3, 3.6), (-14.9, 4.3), (-5.2, 5.3)],
    "random init (step 0.2)": [(-46.0, 2.3), (-23.0, 5.6), (-8.2, 6.9), (18.1, 11.2)],
    "oracle": [(220.9, 21.6)] * 4,
}

# docs/results.md, "Half-cheetah velocity and direction", final evaluation on the reference MDP:
# `metarl eval /tmp/maml_half_cheetah_vel --steps 3 --baselines
# pretrained=/tmp/half_cheetah_vel_pretrained,random --device cpu` (MAMLHalfCheetahVel-v0, MAML
# and pretrained at 800 iterations; docs/runs/maml_half_cheetah_vel/eval_iter800/adaptation.csv).
MAML_HALF_CHEETAH_VEL_REFERENCE: Table = {
    "MAML (iteration 800)": [(-134.8, 14.0), (-95.2, 9.6), (-76.5, 7.1), (-74.4, 6.9)],
    "pretrained (step 0.0125)": [(-109.9, 8.0), (-90.4, 6.9), (-76.7, 6.1), (-69.0, 4.9)],
    "random init (step 0.2)": [(-202.6, 14.4), (-177.0, 13.5), (-180.6, 13.1), (-179.2, 12.8)],
}

# docs/results.md, "Half-cheetah velocity and direction", direction on the reference MDP:
# `metarl eval /tmp/maml_half_cheetah_dir [--checkpoint 300] --steps 3 --baselines
# pretrained=/tmp/half_cheetah_dir_pretrained,random --device cpu` (MAMLHalfCheetahDir-v0, pretrained
# at 800 iterations; docs/runs/maml_half_cheetah_dir/eval_iter{800,300}/adaptation.csv).
MAML_HALF_CHEETAH_DIR_REFERENCE: Table = {
    "MAML (iteration 800)": [(-45.4, 5.0), (69.7, 13.6), (87.9, 14.6), (104.2, 14.8)],
    "MAML (iteration 300)": [(-37.0, 8.5), (138.6, 11.0), (163.4, 9.6), (178.8, 7.5)],
    "pretrained (step 0.1)": [(0.1, 0.3), (-0.5, 0.3), (-0.9, 1.1), (0.6, 1.5)],
    "random init (step 0.2)": [(-43.1, 3.6), (8.3, 3.3), (18.7, 3.4), (26.5, 3.9)],
}

# The same section, held-out return of each MAML iterate before and after one step:
# `metarl eval /tmp/maml_half_cheetah_dir --checkpoint N --steps 1 --device cpu`
# (docs/runs/maml_half_cheetah_dir/inner_step_by_iteration.csv): N -> ((k=0 mean, se), (k=1 mean, se)).
MAML_HALF_CHEETAH_DIR_BY_ITERATION: dict[int, tuple[tuple[float, float], ...]] = {
    10: ((-50.5, 9.6), (11.3, 6.9)), 50: ((-46.8, 3.7), (84.0, 7.0)),
    100: ((-44.2, 3.3), (116.1, 7.7)), 150: ((-39.6, 7.4), (125.8, 9.1)),
    200: ((-41.7, 6.2), (146.8, 10.7)), 250: ((-37.0, 7.4), (132.9, 11.4)),
    300: ((-37.0, 8.5), (138.6, 11.0)), 350: ((-38.5, 6.6), (141.7, 11.3)),
    400: ((-41.6, 7.6), (121.9, 16.6)), 450: ((-39.1, 7.4), (122.1, 14.1)),
    500: ((-38.1, 9.1), (119.4, 12.2)), 550: ((-30.0, 11.9), (91.5, 17.7)),
    600: ((-35.3, 11.8), (87.2, 15.6)), 650: ((-35.8, 10.8), (56.4, 17.9)),
    700: ((-40.5, 8.6), (49.9, 16.8)), 750: ((-39.4, 7.9), (67.1, 16.0)),
    800: ((-45.4, 5.0), (69.7, 13.6)),
}

# docs/results.md, "PEARL: 2D navigation":
# `metarl train configs/pearl/navigation_2d.yaml` (40 iterations), then
# `metarl eval RUN_DIR --tasks 40 --grad-steps 4`; 40 fresh tasks x 4 simulations.
PEARL_NAVIGATION: Table = {
    "PEARL, shipped config": [(-17.73, 0.82), (-14.71, 0.84), (-11.23, 0.67), (-9.71, 0.62),
                              (-9.22, 0.61)],
}

# docs/results.md, "PEARL: half-cheetah velocity on a CPU":
# `metarl train configs/pearl/half_cheetah_vel_cpu.yaml` (stopped after 184 iterations), then
# `metarl eval RUN_DIR --tasks 40 --grad-steps 3`; MAML rows from the velocity runs above.
# PEARL's k counts context trajectories, MAML's k gradient steps.
PEARL_VS_MAML_CHEETAH: Table = {
    "PEARL, CPU config (0.39M steps)": [(-144.1, 9.8), (-58.6, 4.2), (-62.2, 4.7), (-60.9, 4.6)],
    "MAML, 120 it. (38.4M steps)": [(-166.9, 9.8), (-156.0, 9.1), (-150.8, 8.8), (-149.5, 8.8)],
    "MAML, 325 it. (104M steps)": [(-158.7, 10.6), (-134.7, 8.1), (-130.3, 7.5), (-128.0, 6.9)],
    "MAML, 500 it. (160M steps)": [(-151.1, 10.5), (-122.3, 7.1), (-119.0, 6.9), (-119.6, 7.1)],
}


# docs/results.md, "PEARL on its reference MDPs": the meta-test during training
# (progress.csv's meta_test/return/adapt_k, 20 held-out tasks of oyster's set) against env
# steps, `metarl train configs/pearl/half_cheetah_vel_cpu.yaml --set train.iterations=80`.
# env steps -> return after k = 0, 1, 2 context trajectories
PEARL_CHEETAH_VEL_REFERENCE_CURVE: dict[int, tuple[float, float, float]] = {
    22_000: (-255.0, -257.3, -257.2), 40_000: (-250.1, -241.9, -240.1),
    60_000: (-249.5, -251.9, -252.0), 80_000: (-243.2, -232.4, -237.2),
    100_000: (-224.6, -182.1, -182.0), 120_000: (-216.5, -148.3, -146.8),
    140_000: (-217.1, -132.4, -126.8), 160_000: (-215.1, -93.7, -93.8),
    180_000: (-187.4, -95.3, -88.6),
}


# docs/results.md, "PEARL on its reference MDPs", the long ant-goal run: means per 100
# iterations of the meta-test on the 10 held-out goals (progress.csv of `metarl train
# configs/pearl/ant_goal_cpu.yaml --set train.iterations=2000 ...`), at each block's last env step.
PEARL_ANT_GOAL_LONG_CURVE: dict[int, tuple[float, float, float]] = {
    220_000: (-558.1, -567.8, -572.9), 420_000: (-562.7, -570.1, -579.4),
    620_000: (-563.5, -554.3, -562.5), 820_000: (-565.2, -555.4, -549.3),
    1_020_000: (-564.8, -545.8, -553.5), 1_220_000: (-561.7, -541.8, -544.6),
    1_420_000: (-566.5, -523.5, -530.4), 1_620_000: (-566.0, -534.9, -535.8),
    1_820_000: (-559.8, -519.8, -509.7), 2_020_000: (-572.0, -518.9, -522.4),
    2_220_000: (-568.3, -525.3, -510.4), 2_420_000: (-562.2, -507.9, -486.0),
    2_620_000: (-565.1, -513.5, -486.7),
}


# docs/results.md, "Four algorithms on 2D navigation": each trained from one commit, then
# `metarl eval RUN_DIR --tasks 40 --steps 3`; MAML-TRPO, ProMP and RL² at ~1.2M env steps,
# PEARL at its shipped 40 iterations (97k). k: gradient steps (MAML-TRPO, ProMP),
# context trajectories (PEARL), episodes of the trial (RL²).
NAVIGATION_ALGORITHMS: Table = {
    "MAML-TRPO, 15 it. (1.17M)": [(-38.13, 2.16), (-15.83, 0.74), (-12.71, 0.30),
                                  (-12.71, 0.30)],
    "ProMP, 8 it. (1.27M)": [(-76.41, 1.83), (-57.67, 1.27), (-47.38, 0.74), (-42.74, 0.60)],
    "RL², 300 it. (1.16M)": [(-20.27, 0.72), (-15.33, 0.40), (-15.57, 0.37), (-15.39, 0.41)],
    "PEARL, 40 it. (0.10M)": [(-17.73, 0.82), (-14.71, 0.84), (-11.23, 0.67), (-9.71, 0.62)],
}

# The same section, the MAML family at ~8M env steps (MAML-TRPO's shipped 100 iterations).
NAVIGATION_MAML_FAMILY_8M: Table = {
    "MAML-TRPO, 100 it. (7.63M)": [(-35.87, 2.34), (-13.42, 1.30), (-8.70, 0.67), (-7.26, 0.28)],
    "ProMP, 50 it. (7.76M)": [(-37.20, 2.22), (-14.43, 0.75), (-14.96, 0.77), (-15.63, 1.01)],
}


# docs/results.md, "Four algorithms on half-cheetah velocity": MAMLHalfCheetahVel-v0, each
# algorithm's shipped config (PEARL: CPU config on the MAML MDP), then `metarl eval RUN_DIR
# --tasks 40 --steps 3` on the same 40 held-out velocities (docs/runs/half_cheetah_vel_comparison/
# */adaptation.csv). k: gradient steps (MAML-TRPO, ProMP), context trajectories (PEARL),
# episodes of the trial (RL²).
HALF_CHEETAH_VEL_ALGORITHMS: Table = {
    "MAML-TRPO, 25 it. (8.0M)": [(-157.04, 11.25), (-127.58, 7.59), (-124.03, 7.32),
                                 (-120.70, 6.40)],
    "ProMP, 25 it. (8.0M)": [(-144.24, 10.33), (-111.72, 6.99), (-106.61, 5.98), (-105.05, 6.31)],
    "RL², 1000 it. (8.0M)": [(-69.43, 4.59), (-79.16, 5.53), (-80.58, 5.77), (-79.78, 6.10)],
    "PEARL, 200 it. (0.42M)": [(-130.80, 9.82), (-91.31, 4.83), (-89.14, 4.64), (-89.69, 4.62)],
}


# docs/results.md, "Ant direction on the reference MDP", interim evaluation at iteration 670:
# `metarl eval /tmp/maml_ant_dir --checkpoint 670 --steps 3 --baselines
# pretrained=/tmp/antdir_pretrained_ref --device cpu` (MAMLAntDir-v0;
# docs/runs/maml_ant_dir/eval_iter670_reference_pretrained/adaptation.csv). The 800-iteration
# pretrained and the random-init rows are the evaluation at 240 on the same 40 tasks
# (docs/runs/maml_ant_dir/eval_iter240/adaptation.csv). No baseline depends on MAML's iterate,
# so the evaluation at 800 below came out with the same three rows.
ANT_DIR_BASELINES: Table = {
    "pretrained as the reference trained it (step 0.2)": [(2.3, 1.5), (3.9, 2.0), (7.1, 3.0),
                                                          (8.6, 2.6)],
    "pretrained, 800 iterations like MAML (step 0.2)": [(4.8, 1.9), (19.2, 2.9), (27.5, 3.9),
                                                         (28.6, 3.6)],
    "random init (step 0.8)": [(9.6, 3.6), (18.6, 4.1), (21.2, 3.1), (26.3, 3.7)],
}
MAML_ANT_DIR_ITER670: Table = {
    "MAML (iteration 670)": [(7.6, 11.1), (473.8, 11.5), (456.6, 9.0), (448.7, 10.0)],
    **ANT_DIR_BASELINES,
}


# docs/results.md, "Ant direction on the reference MDP", final evaluation at iteration 800:
# `metarl eval /tmp/maml_ant_dir --steps 3 --baselines pretrained=/tmp/ant_dir_pretrained,random
# --device cpu` and the same with `--baselines pretrained=/tmp/antdir_pretrained_ref`
# (MAMLAntDir-v0; docs/runs/maml_ant_dir/eval_iter800{,_reference_pretrained}/adaptation.csv).
MAML_ANT_DIR: Table = {
    "MAML (iteration 800)": [(10.3, 6.8), (483.5, 15.2), (460.4, 13.9), (453.8, 12.7)],
    **ANT_DIR_BASELINES,
}


def against_env_steps(curve: dict[int, tuple[float, ...]], label: str, n_tasks: int
                      ) -> list[AdaptationPoint]:
    """One line per k, with training env steps (thousands) on the x axis."""
    return [AdaptationPoint(f"{label} k = {k}" + (" (prior)" if k == 0 else ""), steps // 1000,
                            returns[k], 0.0, n_tasks)
            for k in range(len(next(iter(curve.values()))))
            for steps, returns in sorted(curve.items())]


def main() -> None:
    plot_adaptation(OUT / "maml_half_cheetah_vel.png", points(HALF_CHEETAH_VEL, 40),
                    "MAML-TRPO vs. baselines, HalfCheetahVel-v0", "number of gradient steps")
    plot_adaptation(OUT / "maml_half_cheetah_dir.png", points(HALF_CHEETAH_DIR, 40),
                    "MAML-TRPO vs. baselines, HalfCheetahDir-v0", "number of gradient steps")
    plot_adaptation(OUT / "maml_half_cheetah_vel_reference.png",
                    points(MAML_HALF_CHEETAH_VEL_REFERENCE, 40),
                    "MAML-TRPO vs. baselines, MAMLHalfCheetahVel-v0", "number of gradient steps")
    plot_adaptation(OUT / "maml_half_cheetah_dir_reference.png",
                    points(MAML_HALF_CHEETAH_DIR_REFERENCE, 40),
                    "MAML-TRPO vs. baselines, MAMLHalfCheetahDir-v0", "number of gradient steps")
    plot_adaptation(OUT / "maml_half_cheetah_dir_by_iteration.png",
                    [AdaptationPoint(f"MAML, {k} step" + ("s" if k != 1 else ""), n, *row[k], 40)
                     for k in (0, 1) for n, row in sorted(MAML_HALF_CHEETAH_DIR_BY_ITERATION.items())],
                    "MAML-TRPO iterates, MAMLHalfCheetahDir-v0",
                    "meta-training iteration")
    plot_adaptation(OUT / "pearl_navigation_2d.png", points(PEARL_NAVIGATION, 40),
                    "PEARL, Navigation2D-v0", "context trajectories k")
    plot_adaptation(OUT / "pearl_vs_maml_half_cheetah_vel.png",
                    points(PEARL_VS_MAML_CHEETAH, 40), "HalfCheetahVel-v0, v* ~ U[0, 2]",
                    "k (PEARL: context trajectories; MAML: gradient steps)")
    plot_adaptation(OUT / "navigation_algorithms.png", points(NAVIGATION_ALGORITHMS, 40),
                    "Navigation2D-v0, 40 held-out tasks",
                    "k (gradient steps / context trajectories / episodes)")
    plot_adaptation(OUT / "half_cheetah_vel_algorithms.png",
                    points(HALF_CHEETAH_VEL_ALGORITHMS, 40),
                    "MAMLHalfCheetahVel-v0, 40 held-out tasks",
                    "k (gradient steps / context trajectories / episodes)")
    plot_adaptation(OUT / "navigation_maml_family_8m.png", points(NAVIGATION_MAML_FAMILY_8M, 40),
                    "Navigation2D-v0, ~8M env steps", "number of gradient steps")
    plot_adaptation(OUT / "pearl_half_cheetah_vel_reference.png",
                    against_env_steps(PEARL_CHEETAH_VEL_REFERENCE_CURVE, "context trajectories",
                                      20),
                    "PEARL, PEARLHalfCheetahVel-v0 (CPU config)",
                    "training env steps (thousands)")
    plot_adaptation(OUT / "maml_ant_dir_iter670.png", points(MAML_ANT_DIR_ITER670, 40),
                    "MAML-TRPO vs. baselines, MAMLAntDir-v0", "number of gradient steps")
    plot_adaptation(OUT / "maml_ant_dir.png", points(MAML_ANT_DIR, 40),
                    "MAML-TRPO vs. baselines, MAMLAntDir-v0", "number of gradient steps")
    plot_adaptation(OUT / "pearl_ant_goal_cpu_long.png",
                    against_env_steps(PEARL_ANT_GOAL_LONG_CURVE, "context trajectories", 10),
                    "PEARL, PEARLAntGoal-v0 (CPU config)", "training env steps (thousands)")


if __name__ == "__main__":
    main()
