"""The fitted baselines are kept under the storage folder: the second `ensemble` or `report` on the
same data reads them, gets the same predictions, and refits whatever does not match or read back."""

from __future__ import annotations

import torch

from lvm_search.data.windows import load_data
from lvm_search.scoring import baseline_cache
from lvm_search.scoring.baseline_cache import CACHE, fitted_baselines


def _predictions(predictors, data):
    contexts, _ = data.batch("test", slice(None))
    return {name: fn(contexts) for name, fn in predictors.items()}


def test_a_fit_is_kept_and_read_back_the_same(write_native, tmp_path, monkeypatch):
    data = load_data(write_native([9] * 12, dim=4), k=5)
    fitted, record = fitted_baselines(data, tmp_path)
    assert len(list((tmp_path / CACHE).glob("*.safetensors"))) == 1

    def no_fit(_):
        raise AssertionError("fitted again")

    monkeypatch.setattr(baseline_cache, "fit_baselines", no_fit)
    kept, kept_record = fitted_baselines(data, tmp_path)
    assert kept_record == record and kept["ridge"].lam == fitted["ridge"].lam
    before, after = _predictions(fitted, data), _predictions(kept, data)
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_other_data_another_grid_or_a_broken_file_is_fitted_again(write_native, tmp_path, monkeypatch):
    data = load_data(write_native([9] * 12, dim=4), k=5, min_context=3)
    fitted_baselines(data, tmp_path)
    calls = []
    real = baseline_cache.fit_baselines
    monkeypatch.setattr(baseline_cache, "fit_baselines", lambda d: calls.append(d.k) or real(d))
    fitted_baselines(data.with_k(4), tmp_path)  # another k: another fingerprint, another file
    assert calls == [4] and len(list((tmp_path / CACHE).glob("*.safetensors"))) == 2
    monkeypatch.setattr(baseline_cache, "RIDGE_LAMBDAS", [1.0])  # the fit would try other lambdas
    fitted_baselines(data, tmp_path)
    assert calls == [4, 5]
    for path in (tmp_path / CACHE).glob("*.safetensors"):
        path.write_bytes(b"not safetensors")
    fitted_baselines(data, tmp_path)
    assert calls == [4, 5, 5]


def test_a_storage_that_cannot_be_written_still_gets_its_baselines(write_native, tmp_path, monkeypatch):
    data = load_data(write_native([9] * 12, dim=4), k=5)

    def read_only(path, content):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(baseline_cache, "write_file", read_only)
    predictors, _ = fitted_baselines(data, tmp_path)
    assert set(predictors) == {"mean", "last", "recency", "ridge"}
