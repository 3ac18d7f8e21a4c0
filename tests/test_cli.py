"""The command line, end to end, in subprocesses with a tiny budget."""

import csv
import json

import pytest
import yaml

from metarl.checkpoint import load_checkpoint

from cli_helpers import NAV_CONFIG, ROOT, metarl

CONFIG = NAV_CONFIG
TINY = ["--set", "train.iterations=2", "--set", "algo.meta_batch_size=3",
        "--set", "sampler.episodes_per_task=2", "--set", "sampler.eval_episodes_per_task=2",
        "--set", "env.horizon=20", "--set", "train.checkpoint_every=1"]


def _scalar_tags(directory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory))
    acc.Reload()
    return acc, set(acc.Tags()["scalars"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    run_dir = work / "run"
    proc = metarl("train", CONFIG, *TINY, "--seed", 3, "--device", "cpu", "--run-dir", run_dir,
                  cwd=work)
    assert proc.returncode == 0, proc.stderr
    return run_dir, proc


def test_train_writes_the_run_directory(trained_run):
    run_dir, proc = trained_run
    assert "iter 1/2" in proc.stdout and "iter 2/2" in proc.stdout
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["train"]["seed"] == 3 and cfg["train"]["iterations"] == 2
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["device"] == "cpu" and meta["torch"] and meta["metarl_version"]
    rows = list(csv.DictReader(open(run_dir / "progress.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert int(rows[1]["env_steps"]) > int(rows[0]["env_steps"]) > 0
    assert float(rows[0]["meta_train/return/adapt_1"]) < 0
    for k in (0, 1):  # horizon 20; an episode ends early only by reaching its goal
        length = float(rows[0][f"diagnostics/episode_length/adapt_{k}"])
        terminated = float(rows[0][f"diagnostics/terminated/adapt_{k}"])
        assert 0 <= terminated <= 1 and 0 < length <= 20
        assert (length == 20) == (terminated == 0)
    # the config's init_std is 0.5 and one trust-region step moves it a little
    assert 0.4 < float(rows[0]["diagnostics/policy_std"]) < 0.6
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["iter_000001.pt", "iter_000002.pt"]
    state = load_checkpoint(run_dir / "checkpoints" / "iter_000002.pt")
    assert state["iteration"] == 2 and state["algo"] == "maml_trpo"

    acc, tags = _scalar_tags(run_dir)
    for tag in ["meta_train/return/adapt_0", "meta_train/return/adapt_1", "meta_train/return/gain",
                "losses/kl_before", "losses/kl_after", "losses/surrogate_before",
                "losses/surrogate_after", "losses/inner_loss", "time/sps", "time/iteration",
                "time/sample_s", "time/update_s", "diagnostics/line_search_steps",
                "diagnostics/cg_residual", "diagnostics/episode_length/adapt_0",
                "diagnostics/terminated/adapt_1", "diagnostics/policy_std"]:
        assert tag in tags, tag
    steps = [e.step for e in acc.Scalars("meta_train/return/adapt_0")]
    assert steps == [int(r["env_steps"]) for r in rows], "x-axis is total env steps"


def test_eval_writes_curve_plot_and_scalars(trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval"
    proc = metarl("eval", run_dir, "--tasks", 5, "--grad-steps", 2, "--seed", 7, "--out", out,
                  "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "adaptation.csv")))
    assert list(rows[0]) == ["method", "step", "mean_return", "stderr", "n_tasks"]
    assert [(r["method"], int(r["step"]), int(r["n_tasks"])) for r in rows] == [
        ("maml", 0, 5), ("maml", 1, 5), ("maml", 2, 5)]
    assert all(float(r["mean_return"]) < 0 and float(r["stderr"]) >= 0 for r in rows)
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, tags = _scalar_tags(out)
    assert {"meta_test/return/adapt_0", "meta_test/return/adapt_1",
            "meta_test/return/adapt_2"} <= tags
    # Same seed, same numbers: evaluation is reproducible.
    again = metarl("eval", run_dir, "--tasks", 5, "--grad-steps", 2, "--seed", 7,
                   "--out", tmp_path / "again", "--device", "cpu", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "again" / "adaptation.csv").read_text() == (out / "adaptation.csv").read_text()


def test_envs_lists_navigation(tmp_path):
    proc = metarl("envs", cwd=tmp_path)
    assert proc.returncode == 0 and "Navigation2D-v0" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["train", CONFIG, "--set", "algo.max_kll=0.1"], "algo.max_kll: unknown key; did you mean 'max_kl'?"),
    (["train", "missing.yaml"], "config file not found: missing.yaml"),
    (["train", CONFIG, "--set", "env.id=Navigaton2D-v0"], "did you mean 'Navigation2D-v0'?"),
    (["train", CONFIG, "--set", "env.kwargs.distanse=squared"], "distanse"),
    (["eval", "not_a_run"], "not_a_run is not a directory"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, args, message):
    proc = metarl(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_eval_refuses_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = metarl("eval", tmp_path / "empty", cwd=tmp_path)
    assert proc.returncode == 2 and "is not a metarl run directory" in proc.stderr


def test_bench_maml_reports_phase_seconds(tmp_path):
    out = tmp_path / "bench.json"
    proc = metarl("bench", "maml", "--config", CONFIG, "--iterations", 2, "--warmup", 0,
                  "--device", "cpu", "--set", "algo.meta_batch_size=3", "--set", "sampler.episodes_per_task=2",
                  "--set", "env.horizon=20", "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"sample_s", "adapt_s", "update_s", "total_s", "env_steps_per_s",
                            "update_gflop", "update_gflops", "matmul_ceiling_gflops",
                            "update_fraction_of_ceiling"}
    assert all(v > 0 for v in figures.values())
    assert "GFLOP/s; matmul ceiling on its shapes" in proc.stdout
    assert figures["total_s"] >= figures["sample_s"] + figures["adapt_s"] + figures["update_s"] - 1e-3
    assert "iteration 2:" in proc.stdout
    compared = metarl("bench", "maml", "--config", CONFIG, "--iterations", 1, "--warmup", 0,
                      "--device", "cpu", "--set", "algo.meta_batch_size=3", "--set",
                      "sampler.episodes_per_task=2", "--set", "env.horizon=20", "--compare",
                      "--json", out, cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    figures = json.loads(out.read_text())
    assert figures["update_speedup"] > 0 and figures["reference_update_s"] > 0
    bad = metarl("bench", "maml", "--config", CONFIG, "--iterations", 0, cwd=tmp_path)
    assert bad.returncode == 2 and "--iterations must be >= 1" in bad.stderr


def test_bench_fisher_compares_cg_directions_at_the_start_and_at_checkpoints(tmp_path):
    small = ["--set", "algo.meta_batch_size=3", "--set", "sampler.episodes_per_task=5",
             "--set", "env.horizon=20"]
    run = tmp_path / "run"
    trained = metarl("train", CONFIG, "--run-dir", run, "--device", "cpu", "--set",
                     "train.iterations=1", "--set", "logging.tensorboard=false", *small,
                     cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    checkpoint = run / "checkpoints" / "iter_000001.pt"
    out = tmp_path / "fisher.json"
    proc = metarl("bench", "fisher", "--config", CONFIG, "--checkpoint", checkpoint,
                  "--fraction", 0.4, "--device", "cpu", *small, "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    assert figures["fraction"] == 0.4
    assert [p["at"] for p in figures["points"]] == ["initial policy", "iteration 1"]
    for point in figures["points"]:
        assert point["cosine"]["full"] == pytest.approx(1.0)
        assert all(-1.0 <= c <= 1.0 + 1e-9 for c in point["cosine"].values())
        assert all(s > 0 for s in point["seconds"].values())
    assert "kl_states  cosine to full" in proc.stdout
    bad = metarl("bench", "fisher", "--config", CONFIG, "--fraction", 1.0, cwd=tmp_path)
    assert bad.returncode == 2 and "--fraction must be in (0, 1)" in bad.stderr


def test_bench_pearl_reports_gradient_steps_per_second(tmp_path):
    out = tmp_path / "bench.json"
    pearl = ROOT / "configs" / "pearl" / "navigation_2d.yaml"
    proc = metarl("bench", "pearl", "--config", pearl, "--steps", 3, "--warmup", 1,
                  "--device", "cpu", "--set", "algo.hidden_sizes=[16]",
                  "--set", "algo.encoder_hidden_sizes=[16]", "--set", "algo.num_train_tasks=4",
                  "--set", "algo.num_tasks_sample=2", "--set", "algo.meta_batch_size=2",
                  "--json", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["steps_per_s"] > 0
    assert figures["speedup_vs_cpu"] == 1.0 and "gradient steps/s" in proc.stdout
    maml = metarl("bench", "pearl", "--config", CONFIG, cwd=tmp_path)
    assert maml.returncode == 2 and "times PEARL" in maml.stderr
