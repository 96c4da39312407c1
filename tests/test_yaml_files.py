"""The user's YAML (space files, recipes, --set values) and the command line say one thing each: a key
given twice is refused in one line naming it and both lines, never silently decided by the last."""

from __future__ import annotations

import pytest
from conftest import TWO_THINGS, one_error
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_search.errors import UserError
from lvm_search.store.yaml_files import parse_yaml

SPACE = """\
arch: amn
samples: 1
fixed: {epochs: 1}
space:
  width: {type: choice, values: [8, 16]}
"""


@pytest.mark.hostile(TWO_THINGS)
@pytest.mark.parametrize(
    "text, key, lines",
    [
        (SPACE + "samples: 5\n", "'samples'", "on lines 2 and 6"),  # the top level
        (SPACE.replace("{epochs: 1}", "{epochs: 1, epochs: 9}"), "'epochs'", "twice on line 3"),  # flow style
        (SPACE + "  width: {type: choice, values: [32]}\n", "'width'", "on lines 5 and 6"),  # nested
        (SPACE.replace("values: [8, 16]}", "values: [8, 16], type: int}"), "'type'", "twice on line 5"),
        (SPACE.replace("samples: 1", "samples: 1\n1: 2\ntrue: 3"), "True", "on lines 3 and 4"),  # 1 == true
    ],
    ids=["at the top level", "in a flow mapping", "nested", "in a dimension", "1 and true"],
)
def test_a_space_file_that_gives_a_key_twice_is_one_line_naming_it_and_both_lines(
    cli, tmp_path, text, key, lines
):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    code, out, err = cli("run", space, "--storage", tmp_path / "runs")
    assert code == 2 and out == ""
    assert f"{space}: key {key} is given {lines}" in one_error(err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(TWO_THINGS)
def test_a_recipe_that_gives_a_key_twice_is_one_line(cli, tmp_path):
    recipe = tmp_path / "wide.yaml"
    recipe.write_text("top_k: all\nmethod: greedy\ntop_k: 1\n")
    code, _, err = cli("ensemble", recipe, "--storage", tmp_path / "runs")
    assert code == 2 and f"{recipe}: key 'top_k' is given on lines 1 and 3" in one_error(err)
    assert not (tmp_path / "runs").exists()


@pytest.mark.hostile(TWO_THINGS)
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--set", "width=8", "--set", "width=16"], "--set width: given twice (8 and 16)"),
        (["--set", "epochs=2", "--epochs", "3"], "--epochs 3: epochs is also given by --set epochs=2"),
        (["--set", "x={a: 1, a: 2}"], "--set x: key 'a' is given twice on line 1"),
        (["--extra-train", "{data}", "--extra-train", "{data}"], "given twice as extra training data"),
    ],
)
def test_a_train_command_line_that_says_two_things_is_one_line(cli, tmp_path, write_native, argv, message):
    data = write_native(lengths=(12,) * 10, name="extra.npz")
    argv = [str(data) if a == "{data}" else a for a in argv]
    out = tmp_path / "ck"
    code, _, err = cli("train", "--arch", "amn", *argv, "--out", out)
    assert code == 2 and message in one_error(err)
    assert not out.exists()


def test_keys_merged_with_an_alias_may_be_overridden():
    text = "base: &base {epochs: 1, lr: 0.001}\nfixed:\n  <<: *base\n  epochs: 3\n"
    assert parse_yaml(text, "x.yaml")["fixed"] == {"epochs": 3, "lr": 0.001}


@pytest.mark.hostile(TWO_THINGS)
@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(
        st.sampled_from(["a", "b", "width", "1", "true", "1.0", "null", "~"]), min_size=2, max_size=6
    ),
    flow=st.booleans(),
)
def test_any_mapping_with_a_repeated_key_is_refused_and_any_other_is_read_as_safe_load_reads_it(keys, flow):
    import yaml

    body = (
        "{" + ", ".join(f"{k}: {i}" for i, k in enumerate(keys)) + "}"
        if flow
        else "".join(f"{k}: {i}\n" for i, k in enumerate(keys))
    )
    parsed = [yaml.safe_load(f"{k}: 0") for k in keys]
    distinct = len({next(iter(p)) for p in parsed}) == len(keys)
    if distinct:
        assert parse_yaml(body, "x.yaml") == yaml.safe_load(body)
    else:
        with pytest.raises(UserError, match=r"^x\.yaml: key .* is given (on lines|twice on line)"):
            parse_yaml(body, "x.yaml")
