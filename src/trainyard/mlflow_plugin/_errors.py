"""trainyard's typed errors → MLflow's ``MlflowException`` with MLflow's error codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode

from trainyard.exceptions import (
    AlreadyExistsError,
    ImmutablePropertyError,
    InvalidStatusTransition,
    NotFoundError,
    RunFinishedError,
    StoreError,
    TrainyardError,
    UserErrorException,
)

# Most specific first: the first matching class decides the code.
_CODES: tuple[tuple[type[TrainyardError], str], ...] = (
    (NotFoundError, "RESOURCE_DOES_NOT_EXIST"),
    (AlreadyExistsError, "RESOURCE_ALREADY_EXISTS"),
    (ImmutablePropertyError, "INVALID_PARAMETER_VALUE"),
    (RunFinishedError, "INVALID_STATE"),
    (InvalidStatusTransition, "INVALID_STATE"),
    (UserErrorException, "INVALID_PARAMETER_VALUE"),
    (StoreError, "TEMPORARILY_UNAVAILABLE"),
)


def error_code(err: TrainyardError) -> str:
    """MLflow's error code name for a trainyard error."""
    for klass, code in _CODES:
        if isinstance(err, klass):
            return code
    return "INTERNAL_ERROR"


def mlflow_error(message: str, code: str) -> MlflowException:
    """An ``MlflowException`` with error code ``code`` (a name such as ``INVALID_STATE``)."""
    return MlflowException(message, error_code=ErrorCode.Value(code))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise any ``TrainyardError`` inside the block as an ``MlflowException``."""
    try:
        yield
    except TrainyardError as err:
        raise mlflow_error(str(err), error_code(err)) from err


def not_found(message: str) -> MlflowException:
    """``RESOURCE_DOES_NOT_EXIST``."""
    return mlflow_error(message, "RESOURCE_DOES_NOT_EXIST")


def invalid(message: str) -> MlflowException:
    """``INVALID_PARAMETER_VALUE``."""
    return mlflow_error(message, "INVALID_PARAMETER_VALUE")


def unsupported(what: str, why: str) -> MlflowException:
    """``NOT_IMPLEMENTED``: an MLflow operation an embedded trainyard workspace cannot do (yet)."""
    return mlflow_error(
        f"{what} is not supported by the trainyard MLflow plugin: {why}", "NOT_IMPLEMENTED"
    )
