"""Every algorithm goes through one contract and one registry: a meta-learner defined
outside the package trains, resumes and evaluates through the command line, and no part
of metarl outside the algorithms names an algorithm."""

import csv
import re
import shutil
from pathlib import Path

import pytest
import yaml

from metarl.algos import MetaLearner, get_algorithm, list_algorithms
from metarl.config import ConfigError, config_from_dict

from cli_helpers import ROOT, metarl

PLUGIN = Path(__file__).resolve().parent / "plugins" / "toy_metarl_algo.py"
TOY_CONFIG = {
    "env": {"id": "Navigation2D-v0", "horizon": 10},
    "policy": {"hidden_sizes": [8]},
    "sampler": {"episodes_per_task": 3, "eval_episodes_per_task": 3},
    "algo": {"name": "toy_metarl_algo:toy", "meta_batch_size": 3, "lr": 0.01},
    "train": {"iterations": 2, "checkpoint_every": 1, "device": "cpu"},
    "logging": {"tensorboard": False},
}


def test_a_meta_learner_from_outside_trains_resumes_and_evaluates(tmp_path):
    shutil.copy(PLUGIN, tmp_path / PLUGIN.name)  # a user's module next to their config
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(TOY_CONFIG))
    run = tmp_path / "run"
    trained = metarl("train", "toy.yaml", "--run-dir", run, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "training toy on Navigation2D-v0" in trained.stdout
    assert len(re.findall(r"^iter +\d/2 \| env steps", trained.stdout, re.M)) == 2
    with open(run / "progress.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2] and "losses/toy" in rows[0]
    assert yaml.safe_load((run / "config.yaml").read_text())["algo"]["lr"] == 0.01

    resumed = metarl("train", "--resume", run, "--set", "train.iterations=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at iteration 3" in resumed.stdout

    evaluated = metarl("eval", run, "--tasks", 3, "--steps", 2, "--checkpoint", "best",
                       cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    with open(run / "eval" / "adaptation.csv", newline="") as handle:
        curve = [(r["method"], int(r["step"]), int(r["n_tasks"])) for r in csv.DictReader(handle)]
    assert curve == [("toy", k, 3) for k in range(3)]
    info = yaml.safe_load((run / "eval" / "eval_info.yaml").read_text())
    assert info["algorithm"] == "toy" and info["adaptation_units"] == "episodes"
    assert "eval toy step 2/2: 3/3 tasks" in evaluated.stdout

    # its keys are checked like any algorithm's
    typo = metarl("train", "toy.yaml", "--set", "algo.lrr=0.1", cwd=tmp_path)
    assert typo.returncode == 2 and "algo.lrr: unknown key; did you mean 'lr'?" in typo.stderr


def test_unknown_algorithms_and_modules_are_config_errors():
    with pytest.raises(ConfigError, match=r"^algo\.name: 'maml' is not a registered "
                                          r"algorithm; did you mean 'maml_trpo'\?"):
        config_from_dict({"algo": {"name": "maml"}})
    with pytest.raises(ConfigError, match=r"algo\.name: 'no_such_module:x': cannot import"):
        config_from_dict({"algo": {"name": "no_such_module:x"}})


def test_builtin_algorithms_build_meta_learners():
    assert [s.name for s in list_algorithms()] == ["maml_trpo", "pearl", "promp", "rl2", "trpo"]
    for spec in list_algorithms():
        assert callable(spec.builder())
        assert spec.config().name == spec.name


def test_no_module_outside_the_algorithms_names_one():
    """cli, experiment, training, evaluation and logger dispatch through the registry."""
    names = [s.name for s in list_algorithms()] + ["MAMLTRPO", "PEARL", "ProMP", "RL2", "TRPO"]
    for module in ("cli", "experiment", "training", "evaluation", "logger", "runs"):
        text = (ROOT / "metarl" / f"{module}.py").read_text()
        code = re.sub(r'""".*?"""|#[^\n]*', "", text, flags=re.S)  # docs may mention them
        # `metarl bench maml|pearl` are benchmarks named after what they time, not dispatch
        code = "\n".join(line for line in code.splitlines() if "bench" not in line)
        for name in names:
            assert not re.search(rf"[\"']{name}[\"']|\b{name}\(", code), (module, name)


def test_the_contract_is_what_the_builtins_implement():
    from metarl.algos.maml.learner import MAMLTRPO, TRPO
    from metarl.algos.pearl.learner import PEARL
    from metarl.algos.promp.learner import ProMP
    from metarl.algos.rl2.learner import RL2

    for cls in (MAMLTRPO, TRPO, PEARL, ProMP, RL2):
        assert issubclass(cls, MetaLearner) and not cls.__abstractmethods__
    assert (MAMLTRPO.label, TRPO.label, PEARL.label, ProMP.label, RL2.label) == (
        "maml", "trpo", "pearl", "promp", "rl2")
    assert get_algorithm("pearl").unused and not get_algorithm("maml_trpo").unused
    assert set(get_algorithm("rl2").unused) == {"policy", "sampler.episodes_per_task"}
