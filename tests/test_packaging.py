"""How the package installs and starts: what the wheel carries, the start-up cost of the command
line, and the library internals the package relies on."""

from __future__ import annotations

import subprocess
import sys

import pytest

START_UP = """
import sys
from lvm_search.cli import main
try:
    main([sys.argv[1]])
except SystemExit:
    pass
print(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "ray", "optuna", "numpy"}))
"""


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_neither_torch_nor_ray(flag):
    done = subprocess.run([sys.executable, "-c", START_UP, flag], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_public_api_is_there_on_first_use():
    import lvm_search

    api = {"load_data", "load_model", "load_ensemble", "load_predictor", "predict"}
    assert set(lvm_search.__all__) >= api and set(dir(lvm_search)) >= api
    from lvm_search.data import load_data

    assert lvm_search.load_data is load_data
    with pytest.raises(AttributeError):
        lvm_search.no_such_name  # noqa: B018
