"""The trainer: every option changes what it does, and it leaves torch's global settings alone."""

from __future__ import annotations

import dataclasses
import logging
import math

import pytest
import torch

from lvm_search.data.windows import load_data
from lvm_search.errors import UserError
from lvm_search.train import TrainConfig, lr_factor, torch_settings, train

SMALL = {"width": 32, "key_dim": 16}  # an AMN that trains in well under a second per epoch


@pytest.fixture(scope="module")
def data():
    return load_data()


def config(**changes) -> TrainConfig:
    return dataclasses.replace(
        TrainConfig(arch="amn", model=SMALL, epochs=1, batch_size=512, device="cpu"), **changes
    )


def captured_inputs(cfg: TrainConfig, data) -> list[torch.Tensor]:
    """The context batches the model saw in training (a forward pre-hook on the built model)."""
    seen = []
    original = torch.nn.Module.__call__

    def spy(module, *args, **kwargs):
        if module.training and type(module).__name__ == "AMNModel":
            seen.append(args[0].detach().clone())
        return original(module, *args, **kwargs)

    torch.nn.Module.__call__ = spy
    try:
        train(cfg, data)
    finally:
        torch.nn.Module.__call__ = original
    return seen


def final_weights(cfg: TrainConfig, data) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in train(cfg, data).model.parameters()])


# --- every option does something ----------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("lr", 3e-3),
        ("batch_size", 128),
        ("weight_decay", 0.5),
        ("grad_clip", 1e-4),
        ("warmup_epochs", 0.0),
        ("seed", 1),
        ("schedule", "constant"),
        ("context_dropout", 0.3),
        ("input_noise", 0.05),
        ("infonce_weight", 0.5),
        ("ema", 0.0),
        ("bf16", True),
        ("data_dtype", "float16"),
    ],
)
def test_changing_an_option_changes_the_trained_weights(data, option, value):
    base = config(epochs=2)
    assert getattr(base, option) != value
    assert not torch.equal(
        final_weights(base, data), final_weights(dataclasses.replace(base, **{option: value}), data)
    )


def test_the_same_configuration_trains_the_same_weights(data):
    assert torch.equal(final_weights(config(), data), final_weights(config(), data))


# --- what each one does ---------------------------------------------------------------------------


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero(data):
    cfg = config(epochs=4, warmup_epochs=1.0, schedule="cosine", lr=1e-3)
    steps = math.ceil(len(data.splits["train"]) / cfg.batch_size)
    lrs = [h["lr"] for h in train(cfg, data).history]
    expected = [1e-3 * lr_factor(e * steps, steps, 4 * steps) for e in (1, 2, 3, 4)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(0.0) and lr_factor(0, steps, 4 * steps) == pytest.approx(1 / steps)


def test_constant_schedule_keeps_the_learning_rate(data):
    assert [h["lr"] for h in train(config(epochs=3, schedule="constant"), data).history] == [1e-3] * 3


def test_plateau_schedule_halves_the_rate_after_two_epochs_without_improvement(data):
    # A learning rate too small to move val cosine: epoch 1 sets the best, 2-3 do not beat it, 4 halves.
    cfg = config(epochs=5, schedule="plateau", lr=1e-12, ema=0.0)
    assert [h["lr"] for h in train(cfg, data).history] == pytest.approx([1e-12, 1e-12, 1e-12, 5e-13, 5e-13])


def test_context_dropout_zeroes_whole_context_positions_in_training(data):
    none = torch.cat(captured_inputs(config(context_dropout=0.0), data))
    some = torch.cat(captured_inputs(config(context_dropout=0.5), data))
    zero_rows = lambda x: (x.abs().sum(-1) == 0).float().mean().item()  # noqa: E731
    assert zero_rows(none) == 0.0
    assert 0.45 < zero_rows(some) < 0.55


def test_input_noise_perturbs_contexts_and_keeps_them_unit_vectors(data):
    clean = captured_inputs(config(input_noise=0.0), data)[0]
    noisy = captured_inputs(config(input_noise=0.05), data)[0]
    assert not torch.allclose(clean, noisy)
    torch.testing.assert_close(noisy.norm(dim=-1), torch.ones(noisy.shape[:2]))
    # Noise of std 0.05 in each of D=384 dimensions has norm about 0.05 * sqrt(384) ~ 0.98.
    expected = 1 / math.sqrt(1 + 0.05**2 * 384)
    assert (clean * noisy).sum(-1).mean().item() == pytest.approx(expected, abs=0.02)


def test_infonce_changes_the_loss_it_reports(data):
    mse = train(config(infonce_weight=0.0), data).history[0]["train_loss"]
    mixed = train(config(infonce_weight=0.5), data).history[0]["train_loss"]
    # Half of an in-batch cross-entropy of about ln(512) / D joins the MSE of about 2(1 - cos) / D.
    assert mixed > mse * 1.5


@pytest.fixture
def linear_dtypes(monkeypatch) -> list:
    """The dtype of every Linear layer's output while the test runs: what autocast computed in."""
    dtypes = []
    original = torch.nn.Linear.forward

    def spy(self, x):
        out = original(self, x)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    return dtypes


def test_bf16_runs_the_forward_pass_in_bfloat16(data, linear_dtypes):
    train(config(bf16=True), data)
    with_bf16 = set(linear_dtypes)
    linear_dtypes.clear()
    train(config(bf16=False), data)
    assert torch.bfloat16 in with_bf16 and set(linear_dtypes) == {torch.float32}


@pytest.mark.parametrize("units", [True, False], ids=["AVX-512 BF16 or AMX", "AVX2 only"])
def test_bf16_auto_follows_the_cpus_bf16_units(data, monkeypatch, linear_dtypes, units):
    """bf16: auto autocasts where the CPU has bf16 units (patched here: this CPU has none) and
    trains in float32 where bf16 would be emulated; the checkpoint says which."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: units, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    result = train(config(bf16="auto", device="cpu"), data)
    assert (torch.bfloat16 in linear_dtypes) is units
    assert result.meta["bf16_autocast"] is units and result.meta["train_config"]["bf16"] == "auto"


def test_bf16_true_on_a_cpu_without_bf16_units_refuses_lstm_and_warns_for_the_rest(data, monkeypatch, caplog):
    """oneDNN has no bf16 LSTM on such a CPU (an AVX2 one failed with "could not create a primitive
    descriptor"): one clear line instead; the other architectures run, emulated, with a warning."""
    import lvm_search.train as trainer

    monkeypatch.setattr(trainer, "computes_bf16", lambda device: False)
    with pytest.raises(UserError, match="bf16: true: this CPU has no bf16 units .* use bf16: auto or false"):
        train(dataclasses.replace(config(bf16=True), arch="lstm", model={"width": 8}), data)
    with caplog.at_level(logging.WARNING, logger="lvm_search.train"):
        result = train(config(bf16=True), data)
    assert result.meta["bf16_autocast"] is True
    assert "emulated, several times slower" in caplog.text


@pytest.mark.parametrize(
    "capability, expected", [((8, 0), True), ((9, 0), True), ((7, 5), False)], ids=["A100", "H100", "T4"]
)
def test_computes_bf16_on_a_cuda_gpu_reads_that_gpus_capability(monkeypatch, capability, expected):
    from lvm_search.devices import computes_bf16

    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: asked.append(d) or capability)
    assert computes_bf16(torch.device("cuda:1")) is expected
    assert asked == [torch.device("cuda:1")]  # the GPU that trains, not the current one
    assert computes_bf16(torch.device("mps")) is False  # MPS trains in float32


def test_a_torch_without_cpu_probes_trains_auto_in_float32_and_lets_true_through(monkeypatch):
    """Where this torch cannot tell (probes renamed or absent), auto keeps float32 and true is taken
    at its word: no false refusal of LSTM on a CPU that may have bf16 units."""
    import lvm_search.train as trainer
    from lvm_search.devices import computes_bf16

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(torch._C, "_cpu", None, raising=False)
    cpu = torch.device("cpu")
    assert computes_bf16(cpu) is None
    assert trainer._bf16(config(bf16="auto"), cpu) is False
    assert trainer._bf16(dataclasses.replace(config(bf16=True), arch="lstm"), cpu) is True


def test_float16_storage_rounds_the_vectors_the_model_reads(data):
    full = captured_inputs(config(data_dtype="float32"), data)[0]
    half = captured_inputs(config(data_dtype="float16"), data)[0]
    assert half.dtype == torch.float32  # computed in float32, stored in float16
    torch.testing.assert_close(half, full.half().float())
    assert not torch.equal(half, full)


# --- no side effects ------------------------------------------------------------------------------


def test_train_leaves_torch_threads_as_it_found_them(data):
    before = torch.get_num_threads()
    train(config(threads=1 if before != 1 else 2), data)
    assert torch.get_num_threads() == before


def test_train_leaves_torchs_random_stream_as_it_found_it(data):
    """Seeded inside (the same seed trains the same weights), the caller's stream untouched."""
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    train(config(input_noise=0.05, context_dropout=0.2), data)  # both draw from torch's generator
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize(
    "device, forked", [("cpu", ([], None)), ("cuda:1", ([1], "cuda")), ("mps", (["mps"], "mps"))]
)
def test_the_generators_of_the_training_device_are_put_back_too(monkeypatch, device, forked):
    """On a GPU its own generator is forked as well (patched here: this machine has none)."""
    import contextlib

    from lvm_search.train import seeded

    calls = []
    monkeypatch.setattr(
        torch.random,
        "fork_rng",
        lambda devices, device_type=None: calls.append((devices, device_type)) or contextlib.nullcontext(),
    )
    monkeypatch.setattr(torch, "manual_seed", lambda seed: None)
    with seeded(torch.device(device), 0):
        pass
    assert calls == [forked]


def test_the_settings_of_a_cuda_run_are_restored_afterwards():
    # TF32 is switched on for CUDA runs only; the flags are process-wide and must come back.
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    threads = torch.get_num_threads()
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with torch_settings(torch.device("cuda"), threads=1):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
            assert torch.get_num_threads() == 1
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_num_threads() == threads
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# --- defaults -------------------------------------------------------------------------------------


# the Transformer's case takes 30 s on a 2-core CPU: under -m slow, beside the search tests that train it
@pytest.mark.parametrize("arch", ["lstm", "gru", pytest.param("transformer", marks=pytest.mark.slow), "amn"])
def test_train_with_no_settings_beats_the_mean_baseline_on_the_sample(cli, tmp_path, arch):
    # The trainer's and the architecture's defaults are the recipe that won on validation.
    code, out, err = cli("train", "--arch", arch, "--epochs", "2", "--out", tmp_path / arch)
    assert code == 0, err
    gain = float(out.strip().splitlines()[-1].split("passages, ")[1].split(", ")[1].split("%")[0])
    assert gain > 0, out
