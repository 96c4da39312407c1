"""Library code logs, the command line prints: the CLI shows the package's messages on stderr as
before (warnings as ``lvm-search: warning: ...``), ``-q`` keeps only warnings and errors, and the
Python API prints nothing unless the caller configures logging."""

from __future__ import annotations

import subprocess
import sys

import pytest

API_SCRIPT = """
import logging, sys
if sys.argv[3] == "configured":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
import lvm_search
from lvm_search.report.evaluate import evaluate
lvm_search.load_data(sys.argv[1])          # a windows-format file: a warning about leakage
evaluate(sys.argv[2], None)                # progress lines
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from lvm_search.cli import main

    out = tmp_path_factory.mktemp("ckpt") / "amn"
    assert main(["-q", "train", "--arch", "amn", "--epochs", "1", "--set", "width=8", "--out", str(out)]) == 0
    return out


def _api(windows, checkpoint, how: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", API_SCRIPT, str(windows), str(checkpoint), how]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_python_api_prints_nothing_unless_the_caller_configures_logging(write_windows, checkpoint):
    windows, _, _ = write_windows(m=100, k=3, dim=8)
    silent = _api(windows, checkpoint, "silent")
    assert silent.stdout == "" and silent.stderr == ""
    shown = _api(windows, checkpoint, "configured").stderr
    assert "WARNING lvm_search.data.windows: " in shown and "no document ids" in shown
    assert "INFO lvm_search.report.evaluate: eval: checkpoint" in shown


def test_the_cli_prints_progress_and_one_line_warnings_and_quiet_keeps_only_warnings(
    cli, write_windows, checkpoint
):
    code, out, err = cli("eval", checkpoint)
    assert code == 0 and out
    assert err.startswith(f"eval: checkpoint {checkpoint} on ") and "fitting the classical baselines" in err
    code, quiet_out, quiet_err = cli("eval", checkpoint, "-q")
    assert code == 0 and quiet_out == out and quiet_err == ""
    windows, _, _ = write_windows(m=100, k=3, dim=8)
    for argv in (("-q", "baselines", "--data", windows), ("baselines", "--data", windows, "--quiet")):
        code, _, err = cli(*argv)
        assert code == 0
        [line] = err.splitlines()
        assert line.startswith(f"lvm-search: warning: {windows}: windows format has no document ids")


def test_an_error_is_printed_under_quiet_too(cli, tmp_path):
    code, _, err = cli("-q", "baselines", "--data", tmp_path / "nowhere.npz")
    assert code == 2 and err == f"lvm-search: error: {tmp_path / 'nowhere.npz'}: no such data file\n"
