"""Config loading, overrides and error messages."""

import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from metarl.algos import get_algorithm
from metarl.config import ConfigError, describe_fields, load_config
from metarl.evaluation import evaluate_run
from metarl.experiment import resolve_device

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def _write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_and_typed_overrides(tmp_path):
    cfg = load_config(_write(tmp_path, "algo:\n  max_kl: 0.02\n"),
                      ["algo.inner_step_size=0.5", "train.iterations=7", "algo.first_order=true",
                       "env.kwargs.distance=squared", "policy.hidden_sizes=[32, 16]"])
    assert cfg.algo.max_kl == 0.02 and cfg.algo.inner_step_size == 0.5
    assert cfg.train.iterations == 7 and cfg.algo.first_order is True
    assert cfg.env.kwargs == {"distance": "squared"}
    assert cfg.policy.hidden_sizes == [32, 16]
    assert isinstance(load_config(None, ["algo.max_kl=1"]).algo.max_kl, float)


@pytest.mark.parametrize("overrides, pattern", [
    (["algo.max_k=0.1"], r"algo\.max_k: unknown key; did you mean 'max_kl'\?"),
    (["algorithm.max_kl=0.1"], r"algorithm: unknown section"),
    (["trian.iterations=3"], r"trian: unknown section; did you mean 'train'\?"),
    (["train.iterations=ten"], r"train\.iterations: expected an integer, got 'ten'"),
    (["train.iterations=2.5"], r"train\.iterations: expected an integer, got 2\.5"),
    (["train.iterations=0"], r"train\.iterations: 0 is out of range; must be >= 1"),
    (["algo.max_kl=-0.1"], r"algo\.max_kl: -0\.1 is out of range; must be > 0"),
    (["algo.gamma=1.5"], r"algo\.gamma: 1\.5 is out of range; must be <= 1"),
    (["algo.max_kl=.nan"], r"algo\.max_kl: expected a finite number"),
    (["algo.first_order=maybe"], r"algo\.first_order: expected a boolean"),
    (["train.device=tpu"], r"train\.device: 'tpu' is not allowed; choose one of 'auto', 'cpu', 'cuda'"),
    (["sampler.inference=gpu"], r"sampler\.inference: 'gpu' is not allowed; choose one of 'device', 'cpu'"),
    (["policy.hidden_sizes=[64, -1]"], r"policy\.hidden_sizes\[1\]: -1 is out of range"),
    (["policy.hidden_sizes=64"], r"policy\.hidden_sizes: expected a list of integers"),
    (["algo"], r"expected section\.key=value"),
    (["policy.min_std=2.0"], r"policy\.min_std: 2\.0 must not exceed policy\.init_std"),
])
def test_bad_values_name_the_key(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(None, overrides)


def test_sampler_inference_reaches_the_sampler_and_ray_keeps_its_cpu_workers():
    import torch

    from metarl.experiment import family_of, make_sampler

    for value in ("device", "cpu"):
        cfg = load_config(ROOT / "configs/maml_trpo/navigation_2d.yaml",
                          [f"sampler.inference={value}"])
        sampler = make_sampler(cfg, family_of(cfg), torch.device("cpu"), 0)
        assert sampler.inference == value and sampler.inference_device.type == "cpu"
    from metarl.samplers import PartitionedSampler

    assert PartitionedSampler(family_of(cfg), device="cpu").inference == "cpu"


def test_unknown_key_in_file_names_the_file(tmp_path):
    path = _write(tmp_path, "sampler:\n  episodes_per_tsk: 3\n")
    with pytest.raises(ConfigError, match=r"sampler\.episodes_per_tsk: unknown key; did you mean "
                                          r"'episodes_per_task'\?.*cfg\.yaml"):
        load_config(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "algo: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping with sections"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"^algo: expected a mapping"):
        load_config(_write(tmp_path, "algo: 3\n"))


@pytest.mark.parametrize("algo", ["maml_trpo", "trpo", "promp", "pearl", "rl2"])
def test_every_key_has_a_doc(algo):
    for key, _, doc in describe_fields(algo):
        assert doc, f"{key} has no doc"


def test_config_reference_is_current():
    """docs/config-reference.md is generated from the dataclasses' docs."""
    from metarl.config import config_reference

    current = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert current == config_reference(), \
        "regenerate it: metarl config-reference --out docs/config-reference.md"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_load_and_comment_every_key(path):
    cfg = load_config(path)
    data = yaml.safe_load(path.read_text())
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"^\s+[a-z_]+:", line):  # keys inside sections
            assert "#" in line, f"{path.name}:{lineno} has no comment: {line!r}"
    # every section the algorithm reads, and every key of its algo section
    assert set(data) == set(cfg.to_dict()), "shipped configs spell out every section"
    assert set(data["algo"]) == set(cfg.to_dict()["algo"]), "and every algo key"


def test_train_threads_is_auto_or_a_positive_number(tmp_path):
    assert load_config(None).train.threads == "auto"
    assert load_config(None, ["train.threads=auto"]).train.threads == "auto"
    assert load_config(None, ["train.threads=3"]).train.threads == 3
    with pytest.raises(ConfigError, match=r"train\.threads: 'autoo' is not allowed.*did you "
                                          r"mean 'auto'\?.*or an integer"):
        load_config(None, ["train.threads=autoo"])
    for bad, why in (("0", "must be >= 1"), ("1.5", "expected an integer"),
                     ("true", "expected an integer")):
        with pytest.raises(ConfigError, match=rf"train\.threads: .*{why}"):
            load_config(None, [f"train.threads={bad}"])


def test_auto_threads_follow_the_algorithm_and_the_cpus_this_process_may_use(monkeypatch):
    import torch

    from metarl import runtime

    assert 1 <= runtime.usable_cpus() <= (os.cpu_count() or 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert runtime.resolve_threads("auto", get_algorithm("maml_trpo").torch_threads) == min(3, runtime.usable_cpus())
    assert runtime.resolve_threads("auto", get_algorithm("pearl").torch_threads) == 1
    assert runtime.resolve_threads(2, get_algorithm("pearl").torch_threads) == 2
    before = torch.get_num_threads()
    try:
        assert runtime.apply_threads("auto", get_algorithm("pearl").torch_threads) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_the_command_line_asks_openmp_threads_to_sleep_when_idle(tmp_path):
    import subprocess
    import sys

    script = ("import os, metarl.cli, sys; sys.argv = ['metarl', 'envs']\n"
              "try:\n    metarl.cli.run()\nexcept SystemExit:\n"
              "    print('policy', os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60).stdout
    assert "policy PASSIVE" in out
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # the user's choice wins
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60).stdout
    assert "policy ACTIVE" in out


@pytest.mark.parametrize("source", ["train.device", "--device"])
def test_cuda_without_a_gpu_names_where_the_device_came_from(source, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=rf"^{re.escape(source)}: 'cuda' requested but torch sees no CUDA"):
        resolve_device("cuda", source)
    assert resolve_device("auto", source).type == "cpu"


def test_eval_names_its_device_flag_when_cuda_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^--device: 'cuda' requested"):
        evaluate_run(tmp_path, device="cuda")
