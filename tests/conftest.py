"""Shared helpers: tiny data files written into tmp_path, and a CLI runner.

Every data file here is made on the spot from random unit vectors, so no test needs anything outside
the repository. The packaged sample is the only real data set the tests read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lvm_search.data.windows import sample_path


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors of dimension ``dim`` (float64)."""
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def doc_ids_for(lengths, ids=None) -> np.ndarray:
    """Contiguous document ids for documents of the given lengths (ids default to 0, 1, 2, ...)."""
    ids = np.arange(len(lengths)) if ids is None else np.asarray(ids)
    return np.repeat(ids, lengths).astype(np.int32)


# The kinds of hostile input (issues 16 and 28). A test marked ``@pytest.mark.hostile(KIND)`` is one
# attack of that kind; scripts/reliability_report.py runs them and groups reports/reliability.md by kind.
CONFINED = "data loss: paths a user gives are confined"
LEAKAGE = "leakage: --extra-train never brings in held-out passages"
NOT_LOOPBACK = "not on loopback: every socket of the private Ray"
DEGENERATE = "degenerate predictions and data"
LATE = "late validation: bad space files and flags fail before Ray starts"
RESUME = "resume trusts too much"
CORRUPT = "corrupt state files"
HANGS = "hangs and leftovers"
TRIAL_LOSS = "a resume never drops a finished trial"
BOUNDS = "numbers out of range: refused before anything starts"
TWO_THINGS = "a file or command line that says two things"
DIGESTS = "artifacts whose digest misses what they depend on"
FALSE_REFUSALS = "false refusals: what should work works"
SMALL = "small things a user sees"


def pytest_collection_modifyitems(items):
    """Hostile tests carry their kind and their docstring's first line into the JUnit XML."""
    for item in items:
        marker = item.get_closest_marker("hostile")
        if marker is None:
            continue
        item.user_properties.append(("kind", marker.args[0] if marker.args else item.module.__name__))
        doc = (getattr(item, "function", None).__doc__ or "").strip()
        if doc:
            item.user_properties.append(("doc", " ".join(doc.split("\n\n")[0].split())))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same torch seed, so model initialisations are reproducible."""
    torch.manual_seed(0)


@pytest.fixture
def write_native(tmp_path):
    """Factory: write a native-format .npz (``vectors`` [N, D], ``doc_ids`` [N]) and return its path.

    ``write_native(lengths=[12, 12, ...], dim=8, dtype=np.float32, seed=0)``; pass ``vectors`` and/or
    ``doc_ids`` to write given arrays instead, ``drop=("doc_ids",)`` to leave arrays out, and extra
    keyword arrays to add them to the file.
    """

    def write(
        lengths=(12,) * 10,
        dim=8,
        dtype=np.float32,
        seed=0,
        name="native.npz",
        vectors=None,
        doc_ids=None,
        drop=(),
        **extra,
    ):
        rng = np.random.default_rng(seed)
        if vectors is None:
            vectors = unit_rows(rng, int(sum(lengths)), dim)
        if doc_ids is None:
            doc_ids = doc_ids_for(lengths)
        arrays = {"vectors": np.asarray(vectors).astype(dtype), "doc_ids": np.asarray(doc_ids), **extra}
        for key in drop:
            arrays.pop(key)
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


@pytest.fixture
def write_windows(tmp_path):
    """Factory: write a windows-format .npz and return ``(path, context_sequences, target_vectors)``.

    The windows are the sliding windows (stride 1) of one sequence of ``m + k`` distinct random unit
    vectors, as the reference work builds them: window ``i`` has context ``seq[i:i+k]`` and target
    ``seq[i+k]``, so neighbouring windows share vectors.
    """

    def write(m=100, k=3, dim=8, dtype=np.float32, seed=0, name="windows.npz"):
        seq = unit_rows(np.random.default_rng(seed), m + k, dim).astype(dtype)
        ctx = np.stack([seq[i : i + k] for i in range(m)])
        tgt = seq[k : k + m]
        path = tmp_path / name
        np.savez(path, context_sequences=ctx, target_vectors=tgt)
        return path, ctx, tgt

    return write


@pytest.fixture
def sample():
    """Path of the packaged real sample (3554 passages, 64 documents, D=384)."""
    return sample_path()


def one_error(err: str) -> str:
    """The one error line of a command's stderr: no traceback, exactly one ``lvm-search: error:``
    line, and it is the last (progress lines may come before it)."""
    assert "Traceback" not in err, err[-2000:]
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("lvm-search: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err[-2000:]
    return errors[0]


def one_trial_space(**sections) -> dict:
    """The smallest real search: one AMN trial of width 8 for one epoch (``sections`` added)."""
    return {
        "arch": "amn",
        "samples": 1,
        "fixed": {"epochs": 1},
        "reference": {"width": 8},
        "space": {"width": {"type": "choice", "values": [8, 16]}},
        **sections,
    }


@pytest.fixture
def cli(capsys):
    """Run ``lvm_search.cli.main(argv)``; returns ``(exit_code, stdout, stderr)``."""
    from lvm_search.cli import main

    def run(*argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's mistakes exit, as they do for the real command
            code = e.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def copy_of(tiny_storage, tmp_path) -> Path:
    """A copy of the session's ``tiny_storage`` that a test may change."""
    import shutil

    storage = tmp_path / "runs"
    shutil.copytree(tiny_storage, storage)
    return storage


def tiny_space(tmp_path, samples: int, fixed: str = "{epochs: 1}") -> Path:
    """A space file the ``tiny_storage`` run ``amn`` resumes with (``samples`` trials), unless
    ``fixed`` differs from its own."""
    space = tmp_path / "amn.yaml"
    space.write_text(
        f"arch: amn\nsamples: {samples}\nmax_concurrent: 2\nfixed: {fixed}\n"
        "space: {width: {type: choice, values: [32, 512]}}\n"
    )
    return space


@pytest.fixture(scope="session")
def tiny_storage(tmp_path_factory):
    """A real storage folder: a 2-trial search and its ensemble."""
    from lvm_search.ensemble.build import build_ensemble, load_recipe
    from lvm_search.search.spaces import parse_space
    from lvm_search.search.tuner import SearchOptions, run_search

    storage = tmp_path_factory.mktemp("storage")
    raw = {
        "arch": "amn",
        "samples": 2,
        "max_concurrent": 2,
        "fixed": {"epochs": 1},
        "space": {"width": {"type": "choice", "values": [32, 512]}},
    }
    run_search(parse_space(raw, "amn.yaml"), SearchOptions(storage=str(storage)))
    build_ensemble(load_recipe(None), storage)
    return storage
