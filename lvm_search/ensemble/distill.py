"""A teacher for distillation: an ensemble's predictions on the training windows.

An ensemble beats its best member because its members' errors partly cancel; serving it costs
every member. Training one model towards the ensemble's predictions (mixed with the true targets,
``TrainConfig.distill``) buys part of that gain back at one model's cost (reports/quality.md).

The teacher must have been built on exactly this split: its members trained on this run's
training documents only, and its weights were fitted on this run's validation documents. A teacher
from another split would carry the held-out documents into training, so it is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..data.windows import LVMData
from ..errors import UserError
from ..scoring.metrics import predict
from ..store.runs import ENSEMBLE_MEMBERS, ENSEMBLE_RECORD, EnsembleRecord, files_digest, read_ensemble
from ..teacher import Teacher
from .build import load_ensemble


def _ensemble_at(path: str | Path) -> tuple[Path, EnsembleRecord]:
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise UserError(f"{path}: no such ensemble folder")
    return path, read_ensemble(path)


def check_outside_teacher(path: str | Path, teacher: str | Path, what: str) -> None:
    """Refuse, before any work, to write ``path`` (``what``: --out, the storage) into the teacher."""
    folder, _ = _ensemble_at(teacher)
    if Path(path).expanduser().resolve().is_relative_to(folder):
        raise UserError(f"{what} {path}: lies inside the teacher {folder}; choose another folder")


def load_teacher(path: str | Path, data: LVMData) -> Teacher:
    """The predictions on ``data``'s training windows of the ensemble folder at ``path``. The
    student may read fewer or more passages than its teacher: the windows are what must match."""
    path, record = _ensemble_at(path)
    k, min_context = record.data.k, record.data.min_context
    if min_context != data.min_context:
        raise UserError(
            f"{path}: the teacher was built on data loaded at k={k} with min_context={min_context}, "
            f"this data has min_context={data.min_context}: other windows; load it with min_context "
            f"{min_context} (--min-context, or the space's data section)"
        )
    if record.data.horizon != data.horizon:
        raise UserError(
            f"{path}: the teacher predicts {record.data.horizon} passage(s) ahead, this data "
            f"{data.horizon}: other targets; use --horizon {record.data.horizon} "
            "(or the space's data section)"
        )
    if k < min_context:  # only a hand-edited record says so; with_k would blame the data file
        raise UserError(f"{path / ENSEMBLE_RECORD}: data: k={k} is below its min_context={min_context}")
    data_k = data.with_k(k)
    if record.fingerprint != data_k.fingerprint:
        raise UserError(
            f"{path}: the teacher was built on other data or another split (fingerprint "
            f"{record.fingerprint}, this data at k={k}: {data_k.fingerprint}); its members may have "
            "trained on this run's validation or test documents"
        )
    for (
        member
    ) in record.members:  # each member on its own windows: the record's fingerprint alone may be edited
        if member.baseline is None and data.with_k(member.k).fingerprint != member.fingerprint:
            raise UserError(
                f"{path / ENSEMBLE_RECORD}: member {member.name} was trained on other data or another split "
                f"(fingerprint {member.fingerprint}) than the data the teacher says it was built on"
            )
    digest = hashlib.sha256((path / ENSEMBLE_RECORD).read_bytes()).hexdigest()[:16]
    files = files_digest(path, (ENSEMBLE_RECORD, ENSEMBLE_MEMBERS))
    model, _ = load_ensemble(path, data.device)  # checks each member's files against the record
    return Teacher(str(path), record.fingerprint, digest, predict(model, data_k, "train"), files)
