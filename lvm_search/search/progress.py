"""Progress a person can read: one short line per trial event on stderr, instead of Ray's tables.

    trial 3 started: depth=2 width=256 lr=0.0012 ...
    trial 3 epoch 6/30: val 0.5712
    trial 3 stopped early at epoch 9/30: val 0.5730 | best 0.5812 (trial 1) | 5/8 done, about 2 min left

Where several spaces are searched at once, each line starts with its run's name (``lstm: trial 3 ...``).

Epoch lines are throttled (``EPOCH_LINE_EVERY_S`` per trial); the estimate of time left is the
trials left times the wall time so far per finished trial (trials run at once share that time).
"""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

from ray import tune

from ..errors import reason
from .spaces import METRIC, SearchSpace

EPOCH_LINE_EVERY_S = 10.0

logger = logging.getLogger(__name__)


def proposal_number(trial) -> int:
    """1, 2, ...: the order in which this start's searcher proposed the trial (Tune's experiment tag)."""
    return int(trial.experiment_tag.split("_")[0])


class Progress(tune.Callback):
    def __init__(
        self,
        space: SearchSpace,
        done: int,
        concurrency: int,
        best: tuple[float, str] | None = None,
        label: str = "",
    ):
        """``best``: (val cosine, trial number) of the best trial of earlier starts, if any; ``label``:
        the run's name, where several searches share the terminal."""
        self.space, self.done, self.concurrency = space, done, concurrency
        self.prefix = f"{label}: " if label else ""
        # with an epoch budget, about the trials it holds, not samples: the budget ends the search first
        self.total = space.expected_trials()
        self.start = time.time()
        self.finished_here = 0
        self.best = best
        self.last_line: dict[str, float] = {}

    def _say(self, text: str) -> None:
        logger.info(self.prefix + text)

    def _number(self, trial) -> int:
        """The trial's number in the run's summary (trials start in any order; trial 0 is the reference)."""
        return self.done + proposal_number(trial) - 1

    def on_trial_start(self, iteration, trials, trial, **info):
        settings = " ".join(f"{k}={_short(v)}" for k, v in trial.config.items())
        self._say(f"trial {self._number(trial)} started: {settings}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        now = time.time()
        if result.get("diverged") == 1 or now - self.last_line.get(trial.trial_id, 0) < EPOCH_LINE_EVERY_S:
            return
        self.last_line[trial.trial_id] = now
        planned = self.space.planned_epochs(trial.config)
        self._say(
            f"trial {self._number(trial)} epoch {result['training_iteration']}/{planned}: "
            f"val {result[METRIC]:.4f}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        number = self._number(trial)
        if result.get("diverged") == 1:
            self._end(f"trial {number} diverged ({result.get('error', '')})")
            return
        epochs, planned = result.get("training_iteration", 0), self.space.planned_epochs(trial.config)
        best = max(
            (r for r in [trial.metric_analysis.get(METRIC, {}).get("max")] if r is not None),
            default=result.get(METRIC),
        )
        if best is not None and (self.best is None or best > self.best[0]):
            self.best = (best, str(number))
        how = f"stopped early at epoch {epochs}/{planned}" if epochs < planned else "finished"
        self._end(f"trial {number} {how}: val {best:.4f}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(
            f"trial {self._number(trial)} failed: {error_summary(trial.error_file) or 'see its error file'}"
        )

    def _end(self, text: str) -> None:
        self.finished_here += 1
        done = self.done + self.finished_here
        parts = [text]
        if self.best:
            parts.append(f"best {self.best[0]:.4f} (trial {self.best[1]})")
        total = max(self.total, done)  # an epoch budget's total is an estimate
        approximately = (
            "~" if self.space.budget_epochs is not None and self.total < self.space.samples else ""
        )
        per_trial = (time.time() - self.start) / self.finished_here
        left = total - done
        eta = f", about {_duration(per_trial * left)} left" if left > 0 else ""
        parts.append(f"{done}/{approximately}{total} done{eta}")
        self._say(" | ".join(parts))


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "an unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 1000 * 86400:
        return f"{seconds / 86400:.0f} days"
    return "more than 1,000 days"


def error_summary(path) -> str | None:
    """The line of a trial's error file that names the exception (Ray writes the whole traceback)."""
    try:
        lines = Path(path).read_text().strip().splitlines() if path else []
    except OSError:
        return None
    named = [line.strip() for line in lines if re.match(r"\s*[\w.]*(Error|Exception|Interrupt)\b.*:", line)]
    candidates = named or lines
    return reason(candidates[-1], 300) if candidates else None
