"""YAML is bounded: alias bombs, node counts, nesting and duplicate keys are refused with one
line naming the file (or ``--set KEY``), in configs, overrides and run directories."""

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metarl.cli import main
from metarl.config import ConfigError, load_config
from metarl.yaml_io import MAX_ALIASES, MAX_DEPTH, MAX_NODES, YAMLLimitError, load_yaml

ROOT = Path(__file__).resolve().parents[1]
NAV = ROOT / "configs" / "maml_trpo" / "navigation_2d.yaml"
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
_FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _one_line(err: Exception) -> str:
    message = str(err)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def _expanded_nodes(node: yaml.Node, memo: dict) -> int:
    """Reference count: nodes of the document with every alias written out."""
    if id(node) not in memo:
        if isinstance(node, yaml.ScalarNode):
            children = []
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = [n for pair in node.value for n in pair]
        memo[id(node)] = 1 + sum(_expanded_nodes(child, memo) for child in children)
    return memo[id(node)]


def _bomb(depth: int, fan: int, leaf: str) -> list[str]:
    """``a0: &a0 [leaf]`` then ``aN: &aN [*aN-1, ...]`` (``fan`` aliases) up to ``depth``."""
    lines = [f"a0: &a0 [{leaf}]"]
    for level in range(1, depth + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fan) + "]")
    return lines


def _config_with_kwargs(lines: list[str]) -> str:
    return "env:\n  id: Navigation2D-v0\n  kwargs:\n" + "".join(f"    {ln}\n" for ln in lines)


_leaves = st.sampled_from(["lol", "1", "2.5", "null", "'a b'", "true"])


# -- alias/anchor bombs -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=_FIXTURES)
@given(st.integers(1, 9), st.integers(1, 12), _leaves)
@example(8, 9, "lol")  # the billion laughs
def test_alias_bombs_in_a_config_file_are_refused_naming_the_file(tmp_path, depth, fan, leaf):
    text = _config_with_kwargs(_bomb(depth, fan, leaf))
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    too_big = (_expanded_nodes(yaml.compose(text), {}) > MAX_NODES
               or depth * fan > MAX_ALIASES)
    if too_big:
        with pytest.raises(ConfigError) as info:
            load_config(path)
        message = _one_line(info.value)
        assert message.startswith(f"{path}: YAML ") and "alias" in message
        assert re.search(r"at line \d+, column \d+", message)
    else:
        assert load_config(path).env.kwargs == yaml.safe_load(text)["env"]["kwargs"]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(5, 9), st.integers(7, 12), _leaves)
@example(8, 9, "lol")
def test_alias_bombs_in_a_set_override_are_refused_naming_the_key(depth, fan, leaf):
    bomb = "{" + ", ".join(_bomb(depth, fan, leaf)) + "}"  # one line, as on a command line
    assert _expanded_nodes(yaml.compose(bomb), {}) > MAX_NODES
    with pytest.raises(ConfigError) as info:
        load_config(NAV, [f"env.kwargs.x={bomb}"])
    message = _one_line(info.value)
    assert message.startswith("--set env.kwargs.x: YAML ") and "alias" in message


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=_FIXTURES)
@given(st.integers(6, 9), st.integers(8, 12))
@example(8, 9)
def test_run_directory_with_a_bomb_config_is_refused_by_resume(tmp_path, capsys, depth, fan):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(_config_with_kwargs(_bomb(depth, fan, "lol")))
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'config.yaml'}: YAML " in err and "alias" in err


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n"])
def test_recursive_aliases_are_refused(text):
    with pytest.raises(YAMLLimitError, match=r"^c\.yaml: YAML alias \*a refers to a node that "
                                             r"contains it at line 1"):
        load_yaml(text, "c.yaml")


# -- node counts and nesting --------------------------------------------------------------------

def _flow_list(n: int, pattern: list[str]) -> str:
    return "[" + ", ".join((pattern * (n // len(pattern) + 1))[:n]) + "]"


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.one_of(st.integers(MAX_NODES - 5, MAX_NODES + 5), st.integers(MAX_NODES, 10 * MAX_NODES)),
       st.lists(_leaves, min_size=1, max_size=4), st.booleans())
@example(MAX_NODES - 1, ["0"], False)  # the list node plus its items: exactly MAX_NODES
def test_documents_with_too_many_nodes_are_refused(n_items, pattern, block_style):
    if block_style:
        text = "".join(f"- {item}\n" for item in (pattern * (n_items // len(pattern) + 1))[:n_items])
    else:
        text = _flow_list(n_items, pattern)
    if n_items + 1 > MAX_NODES:
        with pytest.raises(YAMLLimitError) as info:
            load_yaml(text, "big.yaml")
        assert _one_line(info.value).startswith(f"big.yaml: YAML document has more than "
                                                f"{MAX_NODES} nodes at line ")
    else:
        assert load_yaml(text, "big.yaml") == yaml.safe_load(text)


def test_a_million_node_list_in_a_config_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(_config_with_kwargs([f"x: {_flow_list(10**6, ['0'])}"]))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: YAML document has more "
                                          rf"than {MAX_NODES} nodes"):
        load_config(path)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 3 * MAX_DEPTH), st.booleans())
@example(MAX_DEPTH, False)
@example(MAX_DEPTH + 1, True)
@example(10**5, False)
def test_nesting_deeper_than_the_limit_is_refused(depth, mappings):
    text = ("{a: " * depth + "1" + "}" * depth) if mappings else ("[" * depth + "]" * depth)
    levels = depth + 1 if mappings else depth  # a mapping's values sit one level below it
    if levels > MAX_DEPTH:
        with pytest.raises(YAMLLimitError, match=rf"^d\.yaml: YAML nesting deeper than "
                                                 rf"{MAX_DEPTH} levels"):
            load_yaml(text, "d.yaml")
    else:
        assert load_yaml(text, "d.yaml") == yaml.safe_load(text)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_loads_as_safe_load_reads_it(path):
    text = path.read_text()
    assert load_yaml(text, str(path)) == yaml.safe_load(text)
    load_config(path)


# -- duplicate keys -----------------------------------------------------------------------------

_keys = st.sampled_from(["env", "kwargs", "lr", "seed", "goal", "x"])
_scalars = st.one_of(st.integers(-3, 3), st.sampled_from(["a", "b c", "true", "null", ""]))
# A mapping is a list of (key, value) pairs, so that a key can be generated twice.
_mappings = st.recursive(st.lists(st.tuples(_keys, _scalars), min_size=1, max_size=4),
                         lambda inner: st.lists(st.tuples(_keys, st.one_of(_scalars, inner)),
                                                min_size=1, max_size=4), max_leaves=12)


def _render(pairs: list, indent: int = 0) -> list[str]:
    lines = []
    for key, value in pairs:
        if isinstance(value, list):
            lines += [" " * indent + f"{key}:", *_render(value, indent + 2)]
        else:
            lines.append(" " * indent + f"{key}: {json.dumps(value)}")
    return lines


def _duplicated(pairs: list) -> set[str]:
    keys = [key for key, _ in pairs]
    found = {key for key in keys if keys.count(key) > 1}
    for _, value in pairs:
        if isinstance(value, list):
            found |= _duplicated(value)
    return found


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=_FIXTURES)
@given(_mappings)
def test_duplicate_keys_at_any_depth_are_refused_naming_the_key(tmp_path, pairs):
    lines = _render(pairs)
    text = "\n".join(lines) + "\n"
    duplicated = _duplicated(pairs)
    if not duplicated:
        assert load_yaml(text, "k.yaml") == yaml.safe_load(text)
        return
    path = tmp_path / "k.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = re.fullmatch(rf"{re.escape(str(path))}: duplicate key '(\w+)' at line (\d+), "
                         r"column \d+ \(first at line (\d+); .*\)", _one_line(info.value))
    assert found, str(info.value)
    key, line, first = found.group(1), int(found.group(2)), int(found.group(3))
    assert key in duplicated and first < line
    assert lines[line - 1].strip().startswith(f"{key}:")
    assert lines[first - 1].strip().startswith(f"{key}:")


@pytest.mark.parametrize("value", ["{a: 1, a: 2}", "{a: 1, b: {c: 2, c: 3}}", "{1: a, 0x1: b}",
                                   "{true: a, yes: b}"])
def test_duplicate_keys_in_a_set_override_are_refused(value):
    with pytest.raises(ConfigError, match=r"^--set env\.kwargs: duplicate key '.+' at line 1"):
        load_config(NAV, [f"env.kwargs={value}"])


def test_merge_keys_may_be_overridden():
    text = "base: &b {x: 1, y: 2}\nm: {<<: *b, x: 3}\no:\n  i: &m {<<: *b, x: 4}\nt: {<<: *m}\n"
    assert load_yaml(text, "m.yaml") == yaml.safe_load(text)


# -- ordinary YAML errors stay one line ---------------------------------------------------------

@pytest.mark.parametrize("text", ["env: [\n", "env:\n  id: 2001-13-45\n", "env: {id: 0x_}\n",
                                  "env: !!int abc\n", "a: 1\n---\nb: 2\n"])
def test_invalid_yaml_is_one_line_naming_the_file(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert _one_line(info.value).startswith(f"{path}: not valid YAML: ")


def test_invalid_set_value_is_one_line():
    with pytest.raises(ConfigError) as info:
        load_config(NAV, ["env.kwargs.x=[1, 2"])
    assert _one_line(info.value).startswith("--set env.kwargs.x: cannot parse value '[1, 2': ")
