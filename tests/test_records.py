"""The one validator of what lvm-search reads (store/records.py): each rule, and the message it gives
(one line naming the file and the field)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field, replace
from typing import Literal

import pytest

from lvm_search.ensemble.build import load_recipe
from lvm_search.errors import UserError
from lvm_search.search.spaces import parse_space
from lvm_search.store import records
from lvm_search.store.runs import from_json
from lvm_search.store.yaml_files import parse_yaml


@dataclass
class Inner:
    depth: int
    ratio: float = 0.5


@dataclass
class Outer:
    name: str
    inner: Inner
    mode: Literal["fast", "slow"] = "fast"
    tags: tuple[str, ...] = ()
    limit: int | None = field(default=None, metadata={"range": (1, 1000)})
    top: int | Literal["all"] = field(default="all", metadata={"range": (1, None)})
    flag: bool = False
    source: str = field(default="", metadata=records.NOT_READ)


GOOD = {"name": "a", "inner": {"depth": 2}}


def error(raw, **rules) -> str:
    with pytest.raises(UserError) as e:
        records.parse(Outer, raw, "f.yaml", **rules)
    message = str(e.value)
    assert "\n" not in message and message.startswith("f.yaml: ")
    return message


def test_a_valid_record_is_built_with_its_defaults():
    parsed = records.parse(Outer, {**GOOD, "tags": ["x", "y"], "top": 3}, "f.yaml")
    assert parsed == Outer("a", Inner(2, 0.5), tags=("x", "y"), top=3)


def test_an_unknown_key_is_refused_naming_the_allowed_ones_or_ignored_in_json():
    message = error({**GOOD, "colour": 1})
    assert message == (
        "f.yaml: unknown key(s) ['colour'] (allowed: flag, inner, limit, mode, name, tags, top)"
    )
    assert records.parse(Outer, {**GOOD, "colour": 1}, "f.json", unknown="ignore").name == "a"


def test_a_field_the_program_fills_in_is_no_key_a_file_may_give():
    assert "unknown key(s) ['source']" in error({**GOOD, "source": "x"})


def test_a_missing_field_is_named():
    assert error({"name": "a"}) == "f.yaml: missing field 'inner'"


def test_a_nested_field_is_named_by_its_path_in_the_format_of_the_file():
    assert error({**GOOD, "inner": {"depth": "2"}}) == "f.yaml: inner.depth: expected an integer, got '2'"
    with pytest.raises(UserError, match="^f.json: inner: depth: expected an integer, got '2'$"):
        from_json(Outer, {**GOOD, "inner": {"depth": "2"}}, "f.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": 5}, "name: expected text, got 5"),
        ({"flag": "yes"}, "flag: expected true or false, got 'yes'"),
        ({"inner": [1]}, "inner: expected a mapping, got [1]"),
        ({"tags": "x"}, "tags: expected a list, got 'x'"),
        ({"tags": ["x", 3]}, "tags[1]: expected text, got 3"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_was_expected_and_quotes_it(change, message):
    assert error({**GOOD, **change}) == f"f.yaml: {message}"


def test_a_bool_is_not_an_integer():
    assert error({**GOOD, "inner": {"depth": True}}) == "f.yaml: inner.depth: expected an integer, got True"


def test_a_float_must_be_finite_in_yaml_and_may_be_anything_json_holds():
    assert error({**GOOD, "inner": {"depth": 1, "ratio": float("nan")}}).endswith(
        "inner.ratio: expected a finite number, got nan"
    )
    parsed = from_json(Outer, {**GOOD, "inner": {"depth": 1, "ratio": float("inf")}}, "f.json")
    assert parsed.inner.ratio == float("inf")


@pytest.mark.parametrize(
    "limit, message",
    [
        (0, "limit: expected an integer >= 1, got 0"),
        (1001, "limit: expected an integer from 1 to 1,000, got 1001"),
        (2.5, "limit: expected an integer >= 1, got 2.5"),
    ],
)
def test_a_number_out_of_its_declared_range_names_the_bound_it_broke(limit, message):
    assert error({**GOOD, "limit": limit}) == f"f.yaml: {message}"


def test_a_range_given_alone_bounds_a_number_too():
    with pytest.raises(UserError, match=r"^cli: --n: expected an integer from 1 to 9, got 10$"):
        records.parse(int, 10, "cli", "--n", bounds=(1, 9))


def test_a_literal_is_one_of_its_choices_and_nothing_else():
    assert error({**GOOD, "mode": "medium"}) == "f.yaml: mode: expected one of ('fast', 'slow'), got 'medium'"
    assert records.parse(Outer, {**GOOD, "mode": "slow"}, "f.yaml").mode == "slow"


def test_a_number_or_a_word_names_the_word_beside_the_field():
    assert error({**GOOD, "top": 0}) == "f.yaml: top (or all): expected an integer >= 1, got 0"
    assert error({**GOOD, "top": "some"}) == "f.yaml: top (or all): expected an integer >= 1, got 'some'"


def test_a_tuple_is_read_from_a_list():
    assert records.parse(Outer, {**GOOD, "tags": ["x"]}, "f.yaml").tags == ("x",)


def test_optional_takes_none_and_otherwise_the_type():
    assert records.parse(Outer, {**GOOD, "limit": None}, "f.yaml").limit is None
    assert error({**GOOD, "limit": "x"}) == "f.yaml: limit: expected an integer >= 1, got 'x'"


def test_a_long_value_is_quoted_short():
    message = error({**GOOD, "limit": 10**400})
    assert message.startswith("f.yaml: limit: expected an integer from 1 to 1,000, got 1000")
    assert len(message) < 120


def test_yaml_1e_minus_4_read_as_text_is_a_number_where_space_files_take_it():
    assert parse_yaml("x: 1e-4\n", "f.yaml") == {"x": "1e-4"}  # the YAML 1.1 quirk itself
    assert records.parse(float, "1e-4", "f.yaml", "x", float_text=True) == 1e-4
    with pytest.raises(UserError, match="^f.yaml: x: expected a finite number, got '1e-4'$"):
        records.parse(float, "1e-4", "f.yaml", "x")
    text = "arch: amn\nspace: {lr: {type: float, low: 1e-4, high: 1e-2, log: true}}\n"
    space = parse_space(parse_yaml(text, "s.yaml"), "s.yaml", check_data=False)
    assert (space.space["lr"].low, space.space["lr"].high) == (1e-4, 1e-2)


def test_the_trainer_words_the_validators_check_its_own_way():
    from lvm_search.train import TrainConfig

    with pytest.raises(UserError, match=r"^batch_size expects an integer, got 2\.5$"):
        TrainConfig(batch_size=2.5).validate()
    with pytest.raises(UserError, match=r"^lr expects a finite number, got '1e-4'$"):
        TrainConfig(lr="1e-4").validate()


def test_a_mismatch_survives_pickling_as_a_ray_worker_sends_it():
    with pytest.raises(records.Mismatch) as e:
        records.parse(int, "x", "f.yaml", "n")
    again = pickle.loads(pickle.dumps(e.value))
    assert str(again) == str(e.value) and again.expected == "an integer"


def test_a_recipe_file_that_leaves_baselines_out_gets_the_default_of_no_recipe(tmp_path):
    recipe = tmp_path / "default.yaml"
    recipe.write_text("top_k: all\n")
    assert load_recipe(recipe).baselines is load_recipe(None).baselines is True
    assert replace(load_recipe(recipe), source="") == replace(load_recipe(None), source="")
