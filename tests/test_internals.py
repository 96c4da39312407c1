"""Each private Ray or Optuna interface in ``lvm_search/search/internals.py`` still exists and behaves as
used, on the installed versions. A failure names what moved: bound the version in pyproject.toml or
update internals.py (and its docstring's reason)."""

from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from pathlib import Path

import optuna
import pytest
import ray

from lvm_search.search import internals


def moved(what: str, used_by: str) -> str:
    return (
        f"Ray {ray.__version__} / Optuna {optuna.__version__}: {what} moved or changed; "
        f"lvm_search.search.internals.{used_by} relies on it (pyproject.toml bounds the tested versions)"
    )


def test_the_single_machine_switch_is_what_ray_reads_to_keep_loopback():
    constants = importlib.import_module("ray._private.ray_constants")
    services = importlib.import_module("ray._private.services")
    assert hasattr(constants, "ENABLE_RAY_CLUSTER"), moved(
        "ray_constants.ENABLE_RAY_CLUSTER", "single_machine_mode"
    )
    source = inspect.getsource(services.resolve_ip_for_localhost) + inspect.getsource(
        services.get_node_ip_address
    )
    assert "get_node_ip_address" in source and "ENABLE_RAY_CLUSTER" in source, moved(
        "services.resolve_ip_for_localhost / get_node_ip_address", "single_machine_mode"
    )
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" in inspect.getsource(constants), moved(
        "the RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER variable", "SINGLE_MACHINE_ENV"
    )
    saved = constants.ENABLE_RAY_CLUSTER
    with internals.single_machine_mode():
        assert constants.ENABLE_RAY_CLUSTER is False
    assert constants.ENABLE_RAY_CLUSTER == saved


def test_token_auth_can_be_turned_on_for_an_explicit_address():
    try:
        module = importlib.import_module("ray._private.authentication.authentication_token_setup")
        function = module.maybe_enable_token_auth_if_token_available
    except (ImportError, AttributeError):
        pytest.fail(
            moved("maybe_enable_token_auth_if_token_available", "enable_token_auth_if_token_available")
        )
    assert "warn_if_disabled" in inspect.signature(function).parameters, moved(
        "maybe_enable_token_auth_if_token_available(warn_if_disabled)", "enable_token_auth_if_token_available"
    )


def test_the_logger_that_announces_token_auth_is_the_one_quieted():
    module = importlib.import_module("ray._private.authentication.authentication_token_setup")
    assert module.logger.name == internals.TOKEN_AUTH_LOGGER[0], moved(
        "the token auth logger", "TOKEN_AUTH_LOGGER"
    )
    assert "Token authentication is enabled" in inspect.getsource(module), moved(
        "the token auth warning", "TOKEN_AUTH_LOGGER"
    )


def test_the_address_ray_start_records_is_readable(tmp_path, monkeypatch):
    try:
        utils = importlib.import_module("ray._private.utils")
        assert callable(utils.read_ray_address)
    except (ImportError, AttributeError, AssertionError):
        pytest.fail(moved("ray._private.utils.read_ray_address", "recorded_cluster_address"))
    value = internals.recorded_cluster_address()
    assert value is None or isinstance(value, str)


def test_the_gcs_probe_names_a_client_that_exists():
    raylet = importlib.import_module("ray._raylet")
    assert hasattr(raylet, "GcsClient"), moved("ray._raylet.GcsClient", "gcs_probe")
    with pytest.raises(TypeError, match="unexpected keyword"):  # keywords are checked: address is one
        raylet.GcsClient(address="127.0.0.1:1", no_such_keyword=1)
    compile(internals.gcs_probe("127.0.0.1:6379"), "probe", "exec")


def test_ray_s_optuna_adapter_keeps_the_records_the_searcher_reads(tmp_path):
    """TruthfulOptunaSearch reads _ot_trials, _ot_study and _completed_trials: propose one trial,
    report two epochs, end it early, and find it PRUNED with both values in the study."""
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    searcher = internals.TruthfulOptunaSearch(
        space=space,
        metric="val_cosine",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        planned_epochs=lambda params: 3,
        finished=lambda: False,
    )
    config = searcher.suggest("t1")
    assert set(config) == {"x"}
    for attribute in ("_ot_trials", "_ot_study", "_completed_trials"):
        assert hasattr(searcher, attribute), moved(f"OptunaSearch.{attribute}", "TruthfulOptunaSearch")
    searcher.on_trial_result("t1", {"val_cosine": 0.4, "training_iteration": 1})
    searcher.on_trial_complete("t1", {"val_cosine": 0.5, "training_iteration": 2})
    [trial] = searcher._ot_study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED, moved(
        "OptunaSearch's trial records", "TruthfulOptunaSearch"
    )
    assert trial.intermediate_values == {1: 0.4, 2: 0.5}


@pytest.mark.parametrize("name", internals.environment_names())
def test_tune_still_reads_each_environment_variable_we_set(name):
    tune_root = Path(ray.__file__).parent
    readers = [p for p in tune_root.rglob("*.py") if name in p.read_text(errors="replace")]
    assert readers, moved(f"the {name} variable", "the environment it sets")


def test_the_versions_installed_are_the_tested_ones():
    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    pins = {d.split(">=")[0].split("[")[0]: d for d in project["project"]["dependencies"]}
    for package in ("ray", "optuna"):
        low, high = pins[package].split(">=")[1].split(",<")
        installed = tuple(int(p) for p in metadata.version(package).split(".")[:2])
        assert tuple(map(int, low.split(".")[:2])) <= installed < tuple(map(int, high.split("."))), (
            f"{package} {metadata.version(package)} is outside the tested range {pins[package]}"
        )


def test_the_cpu_count_is_what_ray_will_count():
    try:
        utils = importlib.import_module("ray._private.utils")
        counted = utils.get_num_cpus()
    except (ImportError, AttributeError):
        pytest.fail(moved("ray._private.utils.get_num_cpus", "cpus_ray_counts"))
    assert internals.cpus_ray_counts() == counted >= 1
