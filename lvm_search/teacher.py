"""What a student learns from besides its data: a teacher's predictions on the training windows.

The record lives apart from the code that computes it (``ensemble/distill.py``, which loads an
ensemble) so that the trainer depends on a tensor, not on ensemble code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Teacher:
    source: str  # the ensemble folder, absolute
    fingerprint: str  # of the data it was built on (this data at the teacher's k)
    digest: str  # of its ensemble.json: an ensemble rebuilt in the same folder is another teacher
    targets: torch.Tensor = field(repr=False)  # [train windows, D] unit rows, in the train split's order
    # of ensemble.json and every member file (weights, config.json, ridge buffers): a member replaced
    # between two starts of a search is another teacher, also for ensembles that record no digests
    files_digest: str | None = None

    def describe(self) -> dict:
        """What a checkpoint and a run record of their teacher."""
        described = {"source": self.source, "fingerprint": self.fingerprint, "digest": self.digest}
        return {**described, "files_digest": self.files_digest} if self.files_digest else described


def same_teacher(recorded: dict | None, teacher: Teacher | None) -> bool:
    """Whether a run's recorded teacher is ``teacher``. Runs started before files digests were
    recorded have none; for them the rest must match."""
    if recorded is None or teacher is None:
        return recorded is None and teacher is None
    now = teacher.describe()
    return all(recorded.get(key) == now.get(key) for key in ("source", "fingerprint", "digest")) and (
        "files_digest" not in recorded or recorded["files_digest"] == now.get("files_digest")
    )
