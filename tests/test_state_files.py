"""Every state file the package reads is validated as it is read: garbage is one UserError naming
the file (or a valid record), never a traceback; the same for ``--set``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CORRUPT, FALSE_REFUSALS, LATE, RESUME, TRIAL_LOSS, copy_of, one_error, tiny_space
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm_search.cli import parse_sets
from lvm_search.errors import UserError
from lvm_search.models.checkpoint import read_meta
from lvm_search.search.spaces import trial_settings
from lvm_search.store.runs import (
    ENSEMBLE_RECORD,
    RUN_INFO,
    SUMMARY,
    TRIALS_LOG,
    read_ensemble,
    read_run_info,
    read_summary,
    read_trial_log,
)

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


@pytest.mark.hostile(CORRUPT)
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


@pytest.mark.hostile(CORRUPT)
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


@pytest.mark.hostile(LATE)
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


@pytest.mark.hostile(CORRUPT)
def test_a_truncated_summary_is_one_line_for_ensemble_and_report(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    summary = storage / "amn" / SUMMARY
    summary.write_bytes(summary.read_bytes()[:500])
    for argv in (
        ["ensemble", "--storage", storage],
        ["report", "--storage", storage, "--out", tmp_path / "r.md"],
    ):
        code, _, err = cli(*argv)
        assert code == 2 and str(summary) in one_error(err) and "cut short" in err


@pytest.mark.hostile(CORRUPT)
def test_a_trial_log_line_that_is_not_a_trial_is_one_line_for_run(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    log = storage / "amn" / TRIALS_LOG
    log.write_text('{"hello": "world"}\n' + log.read_text())
    space = tiny_space(tmp_path, samples=3)
    code, _, err = cli("run", space, "--storage", storage)
    assert code == 2 and f"{log}: line 1: missing field" in one_error(err)


@pytest.mark.hostile(CORRUPT)
def test_an_ensemble_without_members_is_one_line_for_eval_and_report(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    record = storage / "ensembles" / "default" / ENSEMBLE_RECORD
    raw = json.loads(record.read_text())
    raw["members"] = []
    record.write_text(json.dumps(raw))
    for argv in (["eval", record.parent], ["report", "--storage", storage, "--out", tmp_path / "r.md"]):
        code, _, err = cli(*argv)
        assert code == 2 and "members: an ensemble needs at least one member" in one_error(err)


@pytest.mark.hostile(RESUME)
def test_a_changed_fixed_section_or_epoch_cap_refuses_to_resume(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    space = tiny_space(tmp_path, samples=3, fixed="{epochs: 1, dropout: 0.2}")
    code, _, err = cli("run", space, "--storage", storage)
    assert code == 2 and "another fixed section" in one_error(err)
    space.write_text(
        "arch: amn\nsamples: 3\nmax_concurrent: 2\nfixed: {epochs: 3}\n"
        "space: {width: {type: choice, values: [32, 512]}}\n"
    )
    code, _, err = cli("run", space, "--storage", storage, "--max-epochs", "2")
    assert code == 2 and "another fixed section" in one_error(err)
    assert len((storage / "amn" / TRIALS_LOG).read_text().splitlines()) == 2  # nothing was run or lost


@pytest.mark.hostile(RESUME)
@pytest.mark.parametrize(
    "change, section",
    [
        ("scheduler", "scheduler section"),
        ("other width choices", "space section"),
        ("another architecture", "arch section"),
    ],
)
def test_a_changed_scheduler_space_or_architecture_refuses_to_resume(
    tiny_storage, tmp_path, cli, change, section
):
    storage = copy_of(tiny_storage, tmp_path)
    space = tiny_space(tmp_path, samples=3)  # run "amn", named after its space file
    text = space.read_text()
    space.write_text(
        {
            "scheduler": text + "scheduler: {type: none}\n",
            "other width choices": text.replace("[32, 512]", "[64, 512]"),
            "another architecture": text.replace("arch: amn", "arch: gru"),
        }[change]
    )
    log = (storage / "amn" / TRIALS_LOG).read_bytes()
    code, _, err = cli("run", space, "--storage", storage)
    assert code == 2 and f"this run was started with another {section}" in one_error(err)
    assert (storage / "amn" / TRIALS_LOG).read_bytes() == log


def _sample_copy(folder: Path, vectors=lambda v: v) -> Path:
    """The packaged sample saved again under ``folder``, its vectors passed through ``vectors``."""
    from lvm_search.data.windows import sample_path

    with np.load(sample_path()) as z:
        arrays = dict(z)
    arrays["vectors"] = vectors(arrays["vectors"].copy())
    path = folder / "sample-copy.npz"
    np.savez(path, **arrays)
    return path


def _one_vector_changed(vectors):
    vectors[100] = vectors[101]
    return vectors


@pytest.mark.hostile(RESUME)
@pytest.mark.parametrize(
    "data",
    ["one vector changed", "its passages in reverse order", "--split-seed 1", "--k 6", "--extra-train"],
)
def test_a_resume_on_other_data_or_windows_is_refused(tiny_storage, tmp_path, cli, write_native, data):
    storage = copy_of(tiny_storage, tmp_path)  # searched on the packaged sample, k=5
    if data == "one vector changed":
        argv = ["--data", _sample_copy(tmp_path, _one_vector_changed)]
    elif data == "its passages in reverse order":
        argv = ["--data", _sample_copy(tmp_path, lambda v: v[::-1])]
    elif data == "--extra-train":
        argv = ["--extra-train", write_native(lengths=(12,) * 10, dim=384)]
    else:
        argv = data.split()
    log = (storage / "amn" / TRIALS_LOG).read_bytes()
    code, _, err = cli("run", tiny_space(tmp_path, samples=3), "--storage", storage, *argv)
    assert code == 2 and "this run was started on data with fingerprint" in one_error(err)
    assert (storage / "amn" / TRIALS_LOG).read_bytes() == log


@pytest.mark.hostile(FALSE_REFUSALS)
@pytest.mark.parametrize(
    "argv",
    [["--seed", "7"], ["--samples", "1"], ["--max-concurrent", "1"], ["--data", "{copy}"]],
    ids=["another seed", "fewer samples than done", "another max-concurrent", "the same data elsewhere"],
)
def test_a_resume_with_what_does_not_change_the_trials_goes_through(tiny_storage, tmp_path, cli, argv):
    storage = copy_of(tiny_storage, tmp_path)
    argv = [_sample_copy(tmp_path) if a == "{copy}" else a for a in argv]
    log = (storage / "amn" / TRIALS_LOG).read_bytes()
    code, out, err = cli("run", tiny_space(tmp_path, samples=2), "--storage", storage, "--json", *argv)
    assert code == 0, err[-2000:]
    assert json.loads(out)["counts"]["trials"] == 2 and (storage / "amn" / TRIALS_LOG).read_bytes() == log


@pytest.mark.hostile(CORRUPT)
def test_a_run_folder_that_lost_its_run_json_is_never_taken_over(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    run = storage / "amn"
    (run / RUN_INFO).unlink()  # what its trials mean is gone: they cannot be resumed, nor replaced
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for extra in ([], ["--fresh"]):
        code, _, err = cli("run", tiny_space(tmp_path, samples=3), "--storage", storage, *extra)
        assert code == 2 and f"{run}: exists and is not a run folder" in one_error(err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in storage.iterdir()) == sorted(p.name for p in tiny_storage.iterdir())


@pytest.mark.hostile(CORRUPT)
@pytest.mark.parametrize("where", ["../../outside", "/etc", ""])
def test_a_checkpoint_path_that_leaves_the_run_folder_is_one_line(tiny_storage, tmp_path, cli, where):
    storage = copy_of(tiny_storage, tmp_path)
    summary = storage / "amn" / SUMMARY
    raw = json.loads(summary.read_text())
    raw["best"]["checkpoint"] = where
    summary.write_text(json.dumps(raw))
    code, _, err = cli("eval", storage / "amn")
    assert code == 2 and f"{summary}: best: checkpoint: expected a path inside its folder" in one_error(err)
    log = storage / "amn" / TRIALS_LOG
    lines = log.read_text().splitlines()
    log.write_text("\n".join([json.dumps(dict(json.loads(lines[0]), checkpoint=where)), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="line 1: checkpoint: expected a path inside its folder"):
        read_trial_log(storage / "amn")


@pytest.mark.hostile(CORRUPT)
def test_an_ensemble_weight_that_is_not_a_finite_number_is_one_line(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    record = storage / "ensembles" / "default" / ENSEMBLE_RECORD
    raw = json.loads(record.read_text())
    raw["members"][0]["weight"] = float("nan")
    record.write_text(json.dumps(raw))
    code, _, err = cli("eval", record.parent)
    assert code == 2 and "weight: expected a finite weight >= 0, got nan" in one_error(err)


@pytest.mark.hostile(CORRUPT)
@pytest.mark.parametrize("edit", ["halved", "one negative"])
def test_ensemble_weights_that_are_not_a_distribution_are_one_line(tiny_storage, tmp_path, cli, edit):
    storage = copy_of(tiny_storage, tmp_path)
    record = storage / "ensembles" / "default" / ENSEMBLE_RECORD
    raw = json.loads(record.read_text())
    if edit == "halved":
        for member in raw["members"]:
            member["weight"] /= 2
        message = "members: weights must sum to 1"
    else:
        raw["members"][0]["weight"] = -1.0
        message = "members[0]: weight: expected a finite weight >= 0, got -1.0"
    record.write_text(json.dumps(raw))
    code, _, err = cli("eval", record.parent)
    assert code == 2 and f"{record}: {message}" in one_error(err)


@pytest.mark.hostile(CORRUPT)
def test_a_study_file_that_is_not_a_database_leaves_the_importances_out(tiny_storage, tmp_path, cli):
    storage = copy_of(tiny_storage, tmp_path)
    (storage / "amn" / "study.db").write_bytes(b"not a database" * 100)
    code, _, err = cli("report", "--storage", storage, "--out", tmp_path / "r.md")
    assert code == 0 and "not a readable Optuna study; importances left out" in err
    assert (tmp_path / "r.md").exists()


@pytest.mark.hostile(CORRUPT)
def test_a_trial_log_cut_by_a_kill_is_whole_again_after_the_next_append(tmp_path):
    from lvm_search.store.runs import append_line

    log = tmp_path / TRIALS_LOG
    whole = {"a": 1}
    log.write_text(json.dumps(whole) + "\n" + json.dumps({"b": 2})[:5])
    append_line(log, {"c": 3})
    append_line(log, {"d": 4})
    assert [json.loads(line) for line in log.read_text().splitlines()] == [whole, {"c": 3}, {"d": 4}]


# --- every shape a state file can be left in: resume keeping every finished trial, or one line ------


def _entry(number: int, attempt: int = 1) -> dict:
    """A trial log record as the search writes it (trial ids as Tune makes them)."""
    return {
        "attempt": attempt,
        "tag": number + 1,
        "trial_id": f"abc{attempt}_{number:05d}",
        "dir": f"attempt-{attempt}/trial_{number + 1:03d}",
        "status": "ok",
        "config": {"width": 32},
        "history": [{"epoch": 1, "val_cosine": 0.5 + number / 100, "at": 1.0}],
        "checkpoint": f"attempt-{attempt}/trial_{number + 1:03d}/checkpoint_000000",
    }


@pytest.mark.hostile(TRIAL_LOSS)
@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(0, 6),
    order=st.randoms(use_true_random=False),
    duplicates=st.lists(st.integers(0, 5), max_size=3),
    blank_lines=st.lists(st.integers(0, 8), max_size=3),
    crlf=st.booleans(),
    end=st.sampled_from(["newline", "no newline", "cut"]),
    cut_at=st.floats(0.01, 0.99),
)
def test_a_trial_log_in_any_shape_keeps_every_whole_record_through_the_next_append(
    tmp_path_factory, count, order, duplicates, blank_lines, crlf, end, cut_at
):
    """Out of order, duplicated, with blank or CRLF lines, unterminated or cut by a kill: reading
    counts every whole record once, and appending the next trial drops none of them."""
    from lvm_search.store.runs import append_line

    folder = tmp_path_factory.mktemp("run")
    records = [_entry(n, attempt=1 + n % 2) for n in range(count)]
    lines = [json.dumps(r) for r in records] + [json.dumps(records[i]) for i in duplicates if i < count]
    order.shuffle(lines)
    for position in blank_lines:
        lines.insert(min(position, len(lines)), "")
    whole = {r["trial_id"] for r in records}
    if end == "cut" and lines and lines[-1]:
        last = lines[-1]
        lines[-1] = last[: max(1, int(cut_at * len(last)))]
        if lines.count(last) == 0:  # its only copy was cut: that trial was never logged whole
            whole.discard(json.loads(last)["trial_id"])
    text = ("\r\n" if crlf else "\n").join(lines) + ("\n" if end == "newline" else "")
    (folder / TRIALS_LOG).write_text(text)

    read = read_trial_log(folder)
    assert {e.trial_id for e in read} == whole and len(read) == len(whole)
    assert [(e.attempt, e.tag) for e in read] == sorted((e.attempt, e.tag) for e in read)
    append_line(folder / TRIALS_LOG, _entry(99, attempt=3))
    after = read_trial_log(folder)
    assert {e.trial_id for e in after} == whole | {"abc3_00099"}
    assert (folder / TRIALS_LOG).read_bytes().endswith(b"\n")


@pytest.mark.hostile(TRIAL_LOSS)
def test_a_resume_keeps_a_last_trial_logged_without_its_newline(tiny_storage, tmp_path, cli):
    """The data loss of issue 28: a whole last record without its newline was counted as done, then
    erased by the next trial's append, and the search said 'interrupted'."""
    storage = copy_of(tiny_storage, tmp_path)
    log = storage / "amn" / TRIALS_LOG
    before = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text(log.read_text().rstrip("\n"))
    space = tiny_space(tmp_path, samples=3)
    code, out, err = cli("run", space, "--storage", storage, "--json")
    assert code == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["complete"] and summary["counts"]["trials"] == 3
    after = [json.loads(line) for line in log.read_text().splitlines()]
    assert after[:2] == before and len(after) == 3


STATE_SHAPES = {
    "cut short": lambda path: path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)]),
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(b"\x00\xff not a record \x89PNG"),
    "a folder": lambda path: (path.unlink(), path.mkdir(), (path / "x").write_text("user data")),
}
# What a resume does with each state file in each shape: the records the run rebuilds from its trial
# log are written again (with a warning); run.json, what the trials mean, is never guessed.
REBUILT = {SUMMARY, "resources.json", "study.db"}


@pytest.mark.hostile(TRIAL_LOSS)
@pytest.mark.parametrize("shape", list(STATE_SHAPES))
@pytest.mark.parametrize("name", [RUN_INFO, SUMMARY, "study.db", "resources.json"])
def test_a_damaged_state_file_resumes_keeping_every_trial_or_stops_in_one_line(
    tiny_storage, tmp_path, cli, name, shape
):
    storage = copy_of(tiny_storage, tmp_path)
    run = storage / "amn"
    log = (run / TRIALS_LOG).read_bytes()
    STATE_SHAPES[shape](run / name)
    space = tiny_space(tmp_path, samples=2)  # every trial is done: no Ray is started
    code, out, err = cli("run", space, "--storage", storage, "--json")
    assert (run / TRIALS_LOG).read_bytes() == log
    if name in REBUILT and shape != "a folder":
        assert code == 0, err[-2000:]
        assert json.loads(out)["counts"]["trials"] == 2
        assert read_summary(run).counts.trials == 2
    else:
        assert code == 2 and str(run / name) in one_error(err)
        if shape == "a folder":
            assert (run / name / "x").read_text() == "user data"


@pytest.mark.hostile(CORRUPT)
def test_an_integer_no_float_can_hold_in_a_state_file_is_one_line(tiny_storage, tmp_path):
    storage = copy_of(tiny_storage, tmp_path)
    summary = storage / "amn" / SUMMARY
    raw = json.loads(summary.read_text())
    raw["wall_s"] = 10**400  # valid JSON; float() of it raises OverflowError
    summary.write_text(json.dumps(raw))
    with pytest.raises(
        UserError, match=r"wall_s: expected a number a float can hold, got an integer of 401 digits"
    ):
        read_summary(storage / "amn")
