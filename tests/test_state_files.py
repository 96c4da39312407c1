"""Every state file the package reads is validated as it is read: garbage is one UserError naming
the file (or a valid record), never a traceback; the same for ``--set``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import one_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm_search.checkpoint import read_meta
from lvm_search.cli import parse_sets
from lvm_search.errors import UserError
from lvm_search.runs import (
    ENSEMBLE_RECORD,
    RUN_INFO,
    SUMMARY,
    TRIALS_LOG,
    read_ensemble,
    read_run_info,
    read_summary,
    read_trial_log,
)
from lvm_search.spaces import trial_settings

FIELDS = [
    "name",
    "arch",
    "space_file",
    "complete",
    "data",
    "splits",
    "baseline_val",
    "counts",
    "wall_s",
    "trials",
    "best",
    "provenance",
    "source",
    "format",
    "fingerprint",
    "D",
    "k",
    "min_context",
    "passages",
    "attempt",
    "tag",
    "trial_id",
    "dir",
    "status",
    "config",
    "history",
    "epoch",
    "val_cosine",
    "members",
    "weight",
    "checkpoint",
    "recipe",
    "method",
    "metrics",
    "baseline",
    "candidates",
    "best_single",
    "gain_pct",
    "model_config",
    "dim",
    "space",
    "samples",
    "ok",
    "stopped_early",
    "diverged",
    "errored",
    "number",
    "epochs_run",
    "docs",
    "windows",
    "mean",
    "cosine",
    "x",
]
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**9), 10**9),
        st.floats(allow_nan=False),
        st.text(max_size=10),
        st.sampled_from(["ok", "error", "amn", "lstm", "../../etc", "/abs"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(FIELDS), children, max_size=8)
    ),
    max_leaves=40,
)
texts = st.one_of(json_values.map(json.dumps), st.text(max_size=300), st.binary(max_size=300))

READERS = {
    "run.json": (RUN_INFO, read_run_info),
    "summary.json": (SUMMARY, read_summary),
    "trials.jsonl": (TRIALS_LOG, read_trial_log),
    "ensemble.json": (ENSEMBLE_RECORD, read_ensemble),
    "config.json": ("config.json", read_meta),
}


def _write(path: Path, content) -> None:
    path.write_bytes(
        content if isinstance(content, bytes) else content.encode("utf-8", errors="surrogatepass")
    )


@pytest.mark.parametrize("reader", list(READERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=texts)
def test_garbage_in_a_state_file_is_a_user_error_naming_it_or_a_valid_record(tmp_path, reader, content):
    name, read = READERS[reader]
    folder = tmp_path / "state"
    folder.mkdir(exist_ok=True)
    _write(folder / name, content)
    try:
        read(folder)
    except UserError as e:
        assert str(folder / name) in str(e) and "\n" not in str(e)


@pytest.mark.parametrize("reader", ["summary.json", "trials.jsonl", "ensemble.json", "run.json"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999))
def test_a_real_state_file_cut_short_is_a_user_error(tiny_storage, tmp_path, reader, cut):
    name, read = READERS[reader]
    source = tiny_storage / ("ensembles/default" if reader == "ensemble.json" else "amn") / name
    raw = source.read_bytes()
    folder = tmp_path / "cut"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(raw[: int(len(raw) * cut)])
    if reader == "trials.jsonl":
        read(folder)  # a last line cut short by a kill is skipped: that trial runs again
        return
    with pytest.raises(UserError, match="cut short|missing field|expected"):
        read(folder)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                [
                    "width=256",
                    "lr=1e-3",
                    "residual=yes",
                    "batch_size=2.5",
                    "depth=[1,2]",
                    "x=&a [*a]",
                    "epochs=0",
                    "k=5",
                    "dropout=.nan",
                    "lr=-1",
                    "=3",
                    "ema=0.99",
                    "schedule=linear",
                    "heads=7",
                ]
            ),
        ),
        max_size=4,
    ),
    arch=st.sampled_from(["lstm", "gru", "transformer", "amn"]),
)
def test_set_values_are_a_user_error_or_a_valid_configuration(pairs, arch):
    try:
        trial_settings(arch, {}, parse_sets(pairs), where="--set")
    except UserError as e:
        assert "\n" not in str(e)


# --- the commands that read them -------------------------------------------------------------------


def test_a_truncated_summary_is_one_line_for_ensemble_and_report(tiny_storage, tmp_path, cli):
    import shutil

    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    summary = storage / "amn" / SUMMARY
    summary.write_bytes(summary.read_bytes()[:500])
    for argv in (
        ["ensemble", "--storage", storage],
        ["report", "--storage", storage, "--out", tmp_path / "r.md"],
    ):
        code, _, err = cli(*argv)
        assert code == 2 and str(summary) in one_error(err) and "cut short" in err


def test_a_trial_log_line_that_is_not_a_trial_is_one_line_for_run(tiny_storage, tmp_path, cli):
    import shutil

    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    log = storage / "amn" / TRIALS_LOG
    log.write_text('{"hello": "world"}\n' + log.read_text())
    space = tmp_path / "amn.yaml"
    space.write_text(
        "arch: amn\nsamples: 3\nmax_concurrent: 2\nfixed: {epochs: 1}\n"
        "space: {width: {type: choice, values: [32, 512]}}\n"
    )
    code, _, err = cli("run", space, "--storage", storage)
    assert code == 2 and f"{log}: line 1: missing field" in one_error(err)


def test_an_ensemble_without_members_is_one_line_for_eval_and_report(tiny_storage, tmp_path, cli):
    import shutil

    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    record = storage / "ensembles" / "default" / ENSEMBLE_RECORD
    raw = json.loads(record.read_text())
    raw["members"] = []
    record.write_text(json.dumps(raw))
    for argv in (["eval", record.parent], ["report", "--storage", storage, "--out", tmp_path / "r.md"]):
        code, _, err = cli(*argv)
        assert code == 2 and "members: an ensemble needs at least one member" in one_error(err)


def test_a_changed_fixed_section_or_epoch_cap_refuses_to_resume(tiny_storage, tmp_path, cli):
    import shutil

    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    space = tmp_path / "amn.yaml"
    space.write_text(
        "arch: amn\nsamples: 3\nmax_concurrent: 2\nfixed: {epochs: 1, dropout: 0.2}\n"
        "space: {width: {type: choice, values: [32, 512]}}\n"
    )
    code, _, err = cli("run", space, "--storage", storage)
    assert code == 2 and "another fixed section" in one_error(err)
    space.write_text(
        "arch: amn\nsamples: 3\nmax_concurrent: 2\nfixed: {epochs: 3}\n"
        "space: {width: {type: choice, values: [32, 512]}}\n"
    )
    code, _, err = cli("run", space, "--storage", storage, "--max-epochs", "2")
    assert code == 2 and "another fixed section" in one_error(err)
    assert len((storage / "amn" / TRIALS_LOG).read_text().splitlines()) == 2  # nothing was run or lost
