"""The architecture registry and the four reference models."""

import pytest
import torch
from torch.nn.functional import normalize

from lvm_search.errors import UserError
from lvm_search.models import ARCHITECTURES, build_model, config_fields, get_architecture

ARCHS = ["lstm", "gru", "transformer", "amn"]

# Parameter counts of the reference sizes at D=768, k=5 (the numbers in each module's docstring).
SEED_PARAMS = {"lstm": 5_120_768, "gru": 7_095_552, "transformer": 17_867_520, "amn": 1_510_912}


@pytest.fixture(scope="module")
def seed_models():
    """The seed-default model of every architecture at D=768, k=5, built once for this module."""
    torch.manual_seed(0)
    return {arch: build_model(arch, 768, 5).eval() for arch in ARCHS}


def test_the_four_reference_architectures_are_registered():
    assert set(ARCHS) <= set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHS)
def test_seed_defaults_have_the_documented_parameter_count(seed_models, arch):
    assert sum(p.numel() for p in seed_models[arch].parameters()) == SEED_PARAMS[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_seed_model_maps_contexts_to_one_unit_vector_per_window(seed_models, arch):
    x = normalize(torch.randn(3, 5, 768), dim=-1)
    with torch.no_grad():
        y = seed_models[arch](x)
    assert y.shape == (3, 768)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dim,k,batch", [(16, 1, 1), (24, 4, 7)])
def test_small_models_map_any_batch_k_and_dim_to_unit_vectors(arch, dim, k, batch):
    model = build_model(arch, dim, k, depth=1, width=16).eval()
    with torch.no_grad():
        y = model(normalize(torch.randn(batch, k, dim), dim=-1))
    assert y.shape == (batch, dim)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(batch))


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_residual_model_predicts_exactly_the_normalised_context_mean(arch):
    model = build_model(arch, 32, 5, depth=1, width=16, residual=True, base_decay=1.0).eval()
    x = normalize(torch.randn(6, 5, 32), dim=-1)
    with torch.no_grad():
        y = model(x)
    torch.testing.assert_close(y, normalize(x.mean(dim=1), dim=-1))


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_residual_model_predicts_the_mean_also_in_training_mode(arch):
    # Dropout is active in training mode, but the zero last layer still contributes nothing.
    model = build_model(arch, 32, 5, depth=2, width=16, dropout=0.5, residual=True, base_decay=1.0).train()
    x = normalize(torch.randn(6, 5, 32), dim=-1)
    torch.testing.assert_close(model(x).detach(), normalize(x.mean(dim=1), dim=-1))


@pytest.mark.parametrize("arch", ARCHS)
def test_non_residual_model_does_not_predict_the_mean(arch):
    model = build_model(arch, 32, 5, depth=1, width=16, residual=False, base_decay=1.0).eval()
    x = normalize(torch.randn(6, 5, 32), dim=-1)
    with torch.no_grad():
        y = model(x)
    assert not torch.allclose(y, normalize(x.mean(dim=1), dim=-1), atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_means_base_plus_network_output_for_every_architecture(arch):
    # One meaning of `residual` for all four (models/residual.py): with the same weights, residual
    # adds the recency-weighted context mean to the network's output before normalising.
    from lvm_search.models import context_mean

    torch.manual_seed(1)
    off = build_model(arch, 32, 5, depth=1, width=16, residual=False, base_decay=0.5).eval()
    on = build_model(arch, 32, 5, depth=1, width=16, residual=True, base_decay=0.5).eval()
    on.load_state_dict(off.state_dict())  # the same (non-zero) last layer
    x = normalize(torch.randn(6, 5, 32), dim=-1)
    with torch.no_grad():
        out = off.network(x)
        torch.testing.assert_close(on.network(x), out)
        torch.testing.assert_close(off(x), normalize(out, dim=-1))
        torch.testing.assert_close(on(x), normalize(context_mean(x, 0.5) + out, dim=-1))


def test_unknown_architecture_is_a_user_error_naming_it():
    with pytest.raises(UserError, match="unknown architecture 'mamba'"):
        build_model("mamba", 768, 5)
    with pytest.raises(UserError):
        get_architecture("LSTM")


def test_unknown_model_setting_is_a_user_error_naming_it():
    with pytest.raises(UserError, match="heads"):
        build_model("lstm", 768, 5, heads=4)


@pytest.mark.parametrize(
    "arch,bad",
    [
        ("lstm", {"depth": 0}),
        ("gru", {"dropout": 1.0}),
        ("transformer", {"width": 30, "heads": 8}),
        ("amn", {"depth": 12, "width": 8}),
    ],
)
def test_invalid_model_settings_are_user_errors(arch, bad):
    with pytest.raises(UserError, match=arch):
        build_model(arch, 16, 5, **bad)


@pytest.mark.parametrize("arch", ARCHS)
def test_defaults_are_the_winning_recipe_and_every_arch_has_residual(arch):
    # reports/quality.md: every architecture's best trial was residual, with base decays 0.67-0.79.
    fields = config_fields(arch)
    assert fields["residual"] is True and fields["base_decay"] == 0.75
    assert {"depth", "width", "dropout"} <= set(fields)
    assert build_model(arch, 16, 5).cfg == get_architecture(arch).config_cls()


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_residual_model_with_base_decay_predicts_the_recency_weighted_mean(arch):
    from lvm_search.scoring.metrics import recency_weighted_baseline

    model = build_model(arch, 32, 5, depth=1, width=16, residual=True, base_decay=0.6).eval()
    x = normalize(torch.randn(6, 5, 32), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), recency_weighted_baseline(x, 0.6))


@pytest.mark.parametrize("arch", ARCHS)
def test_fresh_residual_model_ignores_zero_pad_rows(arch):
    # Contexts padded at the document start (min_context < k): the base is the mean of real rows.
    model = build_model(arch, 32, 8, depth=1, width=16, residual=True, base_decay=1.0).eval()
    real = normalize(torch.randn(6, 5, 32), dim=-1)
    x = torch.cat([torch.zeros(6, 3, 32), real], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), normalize(real.mean(dim=1), dim=-1))


@pytest.mark.parametrize("arch", ARCHS)
def test_base_decay_outside_0_to_1_is_a_user_error(arch):
    with pytest.raises(UserError, match="base_decay"):
        build_model(arch, 32, 5, depth=1, width=16, base_decay=1.5)


def test_models_do_not_import_the_data_layer():
    # The padding convention lives in models/residual.py; models must not reach into data loading.
    import ast
    from pathlib import Path

    import lvm_search.models

    for path in Path(lvm_search.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.level == 2 and node.module == "data"), path
                assert node.module != "lvm_search.data.windows", path


@pytest.mark.parametrize("arch", ARCHS)
def test_a_context_with_no_passage_gives_a_finite_prediction(arch):
    # Context dropout can zero every position of a window in training.
    model = build_model(arch, 32, 5, depth=1, width=16).train()
    assert torch.isfinite(model(torch.zeros(3, 5, 32))).all()


def test_amn_attention_is_a_distribution_over_real_positions_and_is_what_the_network_reads():
    torch.manual_seed(1)
    model = build_model("amn", 16, 6, depth=1, width=16, key_dim=8, residual=False, base_decay=1.0).eval()
    x = normalize(torch.randn(4, 6, 16), dim=-1)
    x[0, :3] = 0  # a document with three earlier passages: the three oldest positions are padding
    x[1, :5] = 0
    with torch.no_grad():
        weights = model.attention(x)
        attended = torch.einsum("bk,bkd->bd", weights, x)
        mean = x.sum(1) / (x.abs().sum(-1) > 0).sum(1, keepdim=True)  # base_decay 1: the plain mean
        by_hand = model.mlp(torch.cat([mean, attended], -1))
        out = model.network(x)
    assert weights.shape == (4, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    assert (weights[0, :3] == 0).all() and (weights[1, :5] == 0).all() and weights[1, 5] == 1
    assert (weights[2:] > 0).all()  # no padding: every position has some weight
    torch.testing.assert_close(out, by_hand)
