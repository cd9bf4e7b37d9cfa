"""How MLflow's records map onto trainyard's (pure functions: no MLflow import).

See ``ARCHITECTURE.md`` (section "MLflow plugin") for the reasoning; in short:

* run ids are identical; MLflow experiment ids are trainyard's integer ids as strings, and MLflow's
  default experiment ``"0"`` is the trainyard experiment named ``Default``;
* params are run *properties* (both are write-once: the same value again is fine, a different value
  is an error); MLflow tags, ``mlflow.*`` system tags included, are run tags, except
  ``mlflow.runName`` (the run's display name) and ``mlflow.parentRunId`` (the run's parent), which
  are derived from the run itself so the two views cannot disagree;
* tags under :data:`INTERNAL_PREFIX` are the plugin's own bookkeeping and hidden from MLflow.
"""

from __future__ import annotations

#: MLflow's default experiment id, and the trainyard experiment it stands for.
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"

#: Tags the plugin keeps for itself; never shown to MLflow as tags.
INTERNAL_PREFIX = "trainyard.mlflow."
#: Tag holding one logged model's record (JSON), suffixed with the model id.
LOGGED_MODEL_TAG = INTERNAL_PREFIX + "logged_model."
#: Tag marking a run that exists only to hold a logged model (hidden from ``search_runs``).
HOLDER_TAG = INTERNAL_PREFIX + "kind"
#: Tag marking a run deleted through MLflow (kept by trainyard; MLflow's lifecycle "deleted").
DELETED_TAG = INTERNAL_PREFIX + "deleted"

RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
USER_TAG = "mlflow.user"
LOGGED_MODELS_HISTORY_TAG = "mlflow.log-model.history"

#: Tags MLflow shows that are derived from the run, not stored as tags.
DERIVED_TAGS = frozenset({RUN_NAME_TAG, PARENT_RUN_TAG})

# v1's status strings (public API values) → MLflow's RunStatus names.
STATUS_TO_MLFLOW = {
    "NotStarted": "SCHEDULED",
    "Queued": "SCHEDULED",
    "Preparing": "SCHEDULED",
    "Provisioning": "SCHEDULED",
    "Starting": "SCHEDULED",
    "Running": "RUNNING",
    "Finalizing": "RUNNING",
    "CancelRequested": "RUNNING",
    "NotResponding": "RUNNING",
    "Completed": "FINISHED",
    "Failed": "FAILED",
    "Canceled": "KILLED",
}
#: v1's terminal statuses: a run in one of them takes no more metrics and never changes status.
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled"})


def mlflow_status(trainyard_status: str) -> str:
    """MLflow's run status name for a trainyard (v1) status string.

    Example::

        mlflow_status("Completed")   # 'FINISHED'
    """
    return STATUS_TO_MLFLOW.get(trainyard_status, "RUNNING")


def to_trainyard_experiment_id(experiment_id: str) -> int | None:
    """The trainyard id for an MLflow experiment id; ``None`` for the default ``"0"``.

    Raises ``ValueError`` for anything that is not a non-negative decimal integer.
    """
    text = str(experiment_id)
    if not text.isdigit():
        raise ValueError(f"not a trainyard experiment id: {experiment_id!r}")
    value = int(text)
    return None if text == DEFAULT_EXPERIMENT_ID else value


def visible_tag(key: str) -> bool:
    """Whether a stored trainyard tag is shown to MLflow as a tag."""
    return not key.startswith(INTERNAL_PREFIX) and key not in DERIVED_TAGS


def ms(seconds: float | None) -> int | None:
    """Seconds since the epoch (trainyard) → integer milliseconds (MLflow)."""
    return None if seconds is None else round(seconds * 1000)
