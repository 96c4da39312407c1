"""The reference work's training recipe, re-implemented faithfully, for comparison only.

* data: a ``TensorDataset`` over CPU float32 tensors of materialised windows (contexts [M, k, D],
  targets [M, D]), read by ``DataLoader(batch_size=32, shuffle=True)``; each batch is moved with
  ``.to(device)``;
* AdamW at lr 5e-4 (PyTorch's other defaults), float32, no gradient clipping;
* loss: MSE between the L2-normalised output and the target;
* ``optimizer.zero_grad(); loss.backward(); optimizer.step()`` and ``loss.item()`` every batch
  (the reference logged the loss of every batch);
* ``ReduceLROnPlateau`` stepped once per epoch on the validation score;
* PyTorch's default float32 matmul precision (TF32 off): ``lvm_search.train`` turns TF32 on for the
  whole process on CUDA, so reference code runs inside ``pytorch_defaults()``.

The models are the project's own architectures at their seed defaults (the reference
architectures), so the only difference measured is the recipe.
"""

from __future__ import annotations

import contextlib
import itertools

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

BATCH_SIZE = 32
LR = 5e-4


@contextlib.contextmanager
def pytorch_defaults():
    """Float32 matmuls in full precision, PyTorch's default, while the reference runs."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32 = before


def reference_loader(contexts: torch.Tensor, targets: torch.Tensor, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(contexts, targets), batch_size=BATCH_SIZE, shuffle=True, generator=g)


def reference_optimizer(model: torch.nn.Module) -> tuple[torch.optim.Optimizer, object]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    # The schedule the project's ``schedule: plateau`` uses, stepped on val cosine once per epoch.
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=2)
    return optimizer, plateau


def reference_step(model, optimizer, x, y, device) -> float:
    """One batch of the reference loop; returns the batch loss (a host sync, as the reference did)."""
    x, y = x.to(device), y.to(device)
    pred = F.normalize(model(x), dim=-1)
    loss = F.mse_loss(pred, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_epoch(model, optimizer, loader, device) -> float:
    """One epoch; returns the mean batch loss."""
    model.train()
    losses = [reference_step(model, optimizer, x, y, device) for x, y in loader]
    return sum(losses) / len(losses)


def endless_batches(loader):
    """The loader's batches epoch after epoch, for timing a fixed number of batches."""
    return itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
