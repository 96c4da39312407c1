"""Every private Ray and Optuna interface lvm-search relies on, in one place, each with why no public
API serves. ``tests/test_internals.py`` checks each against the installed versions and fails with a
message naming what moved; ``pyproject.toml`` bounds Ray and Optuna to the versions that passed.

Imported only by ``cluster`` and ``search`` (the modules that use Ray).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

# --- Ray's single-machine mode: every server of a private cluster on 127.0.0.1 ----------------------

SINGLE_MACHINE_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@contextmanager
def single_machine_mode():
    """Make ``ray.init(_node_ip_address="127.0.0.1")`` really use 127.0.0.1 (Ray 2.60).

    ray.init passes the address through ``services.resolve_ip_for_localhost()``, whose
    ``get_node_ip_address()`` replaces a loopback address by the machine's network address on Linux
    unless Ray's single-machine mode is on (``ray_constants.ENABLE_RAY_CLUSTER``, env
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; see ray-project/ray#26293, #30770). No public setting
    binds a local cluster to loopback. The variable reaches Ray's child processes (the caller sets
    ``SINGLE_MACHINE_ENV``); the constant is patched because this process read it when Ray was
    imported.
    """
    import ray._private.ray_constants as ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def cpus_ray_counts() -> int:
    """The CPUs a private Ray cluster on this machine will count, checked before it starts: Ray
    reads cgroup quotas and the CPU affinity, which ``os.cpu_count()`` does not, and no public API
    says what ``ray.init`` will count without starting Ray."""
    from ray._private.utils import get_num_cpus

    return get_num_cpus()


# The logger through which Ray says it turned token authentication on for a new local cluster (a
# warning, on every search); ``cluster.private_cluster`` turns it on on purpose and quiets it.
TOKEN_AUTH_LOGGER = ("ray._private.authentication.authentication_token_setup",)


# --- joining a cluster ----------------------------------------------------------------------------


def enable_token_auth_if_token_available() -> None:
    """Ray turns token authentication on by itself only for ``address="auto"``; a cluster started
    with ``ray start`` uses it, so a driver given HOST:PORT must turn it on the same way. Ray has
    no public call for that (``RAY_AUTH_MODE=token`` would also demand a token that may be absent)."""
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def recorded_cluster_address() -> str | None:
    """The address ``ray start --head`` recorded on this machine. ``ray.init(address="auto")`` reads
    it too, but then falls back to any Ray process running here (another user's private search,
    whose token we lack: the join hangs); no public call reads the record alone."""
    from ray._private.utils import read_ray_address

    return read_ray_address()


def gcs_probe(address: str) -> str:
    """Python code that asks the Ray head at ``address`` for its cluster id, to run in a child
    process with a timeout: ``ray.init`` retries for minutes and prints to stderr on its own, and no
    public client asks a GCS anything without connecting a driver."""
    return f"from ray._raylet import GcsClient; GcsClient(address={address!r})"  # it asks for the id


# --- the Optuna searcher ----------------------------------------------------------------------------


class TruthfulOptunaSearch(OptunaSearch):
    """Ray's Optuna adapter, telling Optuna the truth about each trial: COMPLETE with its best
    epoch's value, PRUNED (with its per-epoch values) when the scheduler stopped it early, FAIL when
    it errored, and the worst value when it diverged. Ray's own adapter tells every trial Tune ends
    as COMPLETE with its last value, and offers no hook for the state, so this subclass reads its
    private records of the Optuna trials (``_ot_trials``, ``_ot_study``, ``_completed_trials``).

    ``planned_epochs(params)``: the epochs a trial was to run (fewer means stopped early);
    ``finished()``: whether to propose no more trials (an epoch budget spent).
    """

    def __init__(self, *args, planned_epochs: Callable[[dict], int], finished: Callable[[], bool], **kwargs):
        super().__init__(*args, **kwargs)
        self._planned_epochs, self._finished = planned_epochs, finished
        self._best: dict[str, float] = {}
        self._steps: dict[str, set] = {}

    def suggest(self, trial_id: str):
        if self._finished():
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict):
        step = result.get("training_iteration")
        if result.get("diverged") != 1 and step not in self._steps.setdefault(trial_id, set()):
            self._steps[trial_id].add(step)
            self._best[trial_id] = max(self._best.get(trial_id, -math.inf), result[self.metric])
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        trial = self._ot_trials[trial_id]
        if result and result.get("diverged") != 1 and self.metric in result:
            # Tune may hand the last epoch's result to on_trial_complete only.
            self.on_trial_result(trial_id, result)
        study, state = self._ot_study, optuna.trial.TrialState
        if error or not result:
            study.tell(trial, state=state.FAIL)
        elif result.get("diverged") == 1:
            study.tell(trial, -1.0)
        elif result.get("training_iteration", 0) < self._planned_epochs(trial.params):
            study.tell(trial, state=state.PRUNED)
        else:
            study.tell(trial, self._best.get(trial_id, result[self.metric]))
        self._completed_trials.add(trial_id)


# --- Tune's settings by environment variable --------------------------------------------------------

# Tune reads these when it runs; they are documented knobs, listed here so a test checks Tune still
# reads each of them.
TUNE_QUIET = {
    # Keeping only the best checkpoint forces a small state snapshot per improvement; Tune warns
    # about it on every fast trial, but on our runs it costs milliseconds.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Tune's automatic CSV and TensorBoard loggers (the search adds the JSON one itself, and
    # TensorBoard's only with --log tensorboard, into the run folder).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


def tune_output_env(verbose: int) -> dict[str, str]:
    """Tune's newer console output prints its configuration table even when told to be silent; the
    older one is silent at verbose 0 (``RAY_AIR_NEW_OUTPUT``)."""
    return {"RAY_AIR_NEW_OUTPUT": "1" if verbose else "0"}


def environment_names() -> list[str]:
    return [*TUNE_QUIET, *tune_output_env(0), *SINGLE_MACHINE_ENV]
