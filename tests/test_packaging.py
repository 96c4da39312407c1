"""How the package installs and starts: what the wheel carries, the start-up cost of the command
line, and the library internals the package relies on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFINED, FALSE_REFUSALS

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
    from lvm_search.data.windows import load_data

    assert lvm_search.load_data is load_data
    with pytest.raises(AttributeError):
        lvm_search.no_such_name  # noqa: B018


# --- the packaged spaces and recipes ----------------------------------------------------------------


@pytest.mark.hostile(FALSE_REFUSALS)
def test_a_name_or_the_checkouts_path_finds_the_packaged_space_and_a_real_file_wins(
    tmp_path, monkeypatch, caplog
):
    import logging

    from lvm_search import presets
    from lvm_search.errors import UserError

    monkeypatch.chdir(tmp_path)  # no spaces/ folder here
    with caplog.at_level(logging.INFO, logger="lvm_search"):
        for given in ("lstm", "lstm.yaml", "spaces/lstm.yaml"):
            assert presets.resolve("space", given) == presets.folder("space") / "lstm.yaml"
    assert caplog.text.count("no such file here; using the packaged space 'lstm'") == 3
    assert presets.resolve("recipe", "wide") == presets.folder("recipe") / "wide.yaml"
    (tmp_path / "lstm").write_text("mine")
    assert presets.resolve("space", "lstm") == Path("lstm")  # the user's file, never shadowed
    with pytest.raises(
        UserError, match=r"elsewhere/lstm.yaml: no such space file \(packaged spaces: amn, gru"
    ):
        presets.resolve("space", "elsewhere/lstm.yaml")
    with pytest.raises(UserError, match="no such recipe file"):
        presets.resolve("recipe", "../spaces/lstm")


@pytest.mark.hostile(CONFINED)
def test_presets_lists_them_and_copies_them_without_replacing_anything(tmp_path, cli):
    code, out, _ = cli("presets")
    assert code == 0 and "amn gru lstm transformer" in out and "best-of-each default wide" in out
    code, out, _ = cli("presets", "--copy", tmp_path / "mine")
    assert code == 0 and len(out.splitlines()) == 7
    assert (tmp_path / "mine" / "spaces" / "lstm.yaml").read_text().startswith("# Search space for the LSTM")
    (tmp_path / "mine" / "spaces" / "lstm.yaml").write_text("edited")
    code, _, err = cli("presets", "--copy", tmp_path / "mine")
    assert code == 2 and "spaces/amn.yaml: already exists" in err  # the first file it would replace
    assert (tmp_path / "mine" / "spaces" / "lstm.yaml").read_text() == "edited"


@pytest.mark.hostile(CONFINED)
def test_a_copy_that_cannot_finish_copies_nothing(tmp_path, cli):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "ensembles").write_text("a file where a folder must go")
    code, _, err = cli("presets", "--copy", target)
    assert code == 2 and f"{target / 'ensembles'}: is a file where presets --copy needs a folder" in err
    assert sorted(p.name for p in target.iterdir()) == ["ensembles"]


def test_ensemble_without_a_recipe_means_ensembles_default_yaml(tmp_path, monkeypatch, cli):
    """Not a file or folder that happens to be called 'default'; a copied and edited recipe wins."""
    from lvm_search import presets

    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    code, _, err = cli("ensemble", "--storage", tmp_path / "runs")
    assert code == 2 and "no finished search" in err  # the packaged recipe was read, then the runs looked for
    assert presets.resolve("recipe", "ensembles/default.yaml") == presets.folder("recipe") / "default.yaml"
    presets.copy_to(tmp_path)
    assert presets.resolve("recipe", "ensembles/default.yaml") == Path("ensembles/default.yaml")


def test_the_checkout_folders_are_the_packaged_ones():
    from lvm_search import presets

    root = Path(__file__).parent.parent
    for kind, name in presets.KINDS.items():
        assert (root / name).resolve() == presets.folder(kind).resolve()


@pytest.mark.hostile(FALSE_REFUSALS)
def test_the_wheel_installed_in_a_fresh_venv_runs_the_main_job_and_ensemble_from_an_empty_folder(tmp_path):
    """Build the wheel, install it alone into a new virtual environment (its dependencies from this
    machine's site-packages: no network), and run `lvm-search run lstm` (tiny) and `lvm-search
    ensemble` where there is no checkout."""
    import zipfile

    root = Path(__file__).parent.parent
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    work.mkdir()
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(root),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(dist),
    ]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    [wheel] = dist.glob("lvm_search-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("lvm_search/presets/spaces/lstm.yaml", "lvm_search/presets/ensembles/wide.yaml"):
        assert expected in names
    assert any(n.startswith("lvm_search/samples/") and n.endswith(".npz") for n in names)
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)

    def run(*argv):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [venv / "bin" / "lvm-search", *argv],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    where = subprocess.run(
        [python, "-c", "import lvm_search; print(lvm_search.__file__)"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel, not this checkout
    done = run("run", "lstm", "--samples", "1", "--max-epochs", "1")
    assert "using the packaged space 'lstm'" in done.stderr and "best trial" in done.stdout
    done = run("ensemble")
    assert "ensemble default" in done.stdout
    assert (work / "runs" / "ensembles" / "default" / "ensemble.json").is_file()
