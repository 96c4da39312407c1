"""Bounds on the numbers a user gives, where nothing natural bounds them (README, "Bounds").

Every number in a flag, a space file, a recipe or a ``--set`` is checked against these before
anything starts: before data is loaded where the number alone decides, before Ray starts and before
a run folder is written where the data must judge it (a context length against the longest
document, a batch of contexts against memory). Each bound is far above what this project's
models and corpora use (k 5 to 16, batches of 128 to 512, about a million parameters), and below
what would fail late in a library or take hours to say nothing.
"""

from __future__ import annotations

# Seeds: the sampler seeds Optuna with numpy's RandomState (below 2**32), and a resumed search adds
# the trials already done to its seed; 2**31 - 1 keeps every seed and seed + samples below that.
MAX_SEED = 2**31 - 1
MAX_SAMPLES = 100_000  # trials in one search
MAX_EPOCHS = 10_000  # of one trial (also warmup_epochs)
MAX_BUDGET_EPOCHS = MAX_SAMPLES * MAX_EPOCHS
MAX_K = 1024  # context length; the data bounds it further (data.check_context_length)
MAX_BATCH_SIZE = 2**20
MAX_LAYER_SIZE = 65_536  # width, ff, key_dim and heads of a model
MAX_DEPTH = 64  # layers of a model
MAX_THREADS = 1024  # torch threads of a CPU trial
MAX_PARAMS = 2**30  # parameters of one model (4 GiB as float32, about 16 GiB with AdamW and EMA)
MAX_BATCH_BYTES = 4 * 2**30  # the float32 contexts of one training batch: batch_size x k x D x 4
MAX_RIDGE_BYTES = 8 * 2**30  # the ridge baseline's normal equations (or its dual), float64
MAX_ENSEMBLE_SIZE = 1000  # greedy selections of an ensemble recipe
MIN_RESOURCE = 0.0001  # Ray's smallest fraction of a CPU or GPU
MAX_RESOURCE = 10_000  # CPUs or GPUs of one trial (Ray keeps quantities as fixed-point integers)
SCORING_CHUNK_BYTES = 2**28  # contexts gathered at once when predicting or scoring a split


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.1f} GiB"
