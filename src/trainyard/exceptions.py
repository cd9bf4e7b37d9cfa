"""One exception hierarchy for everything trainyard raises.

Every public error derives from :class:`TrainyardError`. Each class carries a stable ``code`` (used on
the wire by the server and mapped back to the same class by the REST client) and the HTTP status the
server answers with. The Azure ML SDK v1 names that user code catches are kept::

    TrainyardError                         code             http
    ├── UserErrorException                 USER_ERROR        400
    │   ├── ValidationError                INVALID_VALUE     400
    │   │   ├── MetricValueError           INVALID_METRIC    400
    │   │   ├── InvalidNameError           INVALID_NAME      400
    │   │   ├── PathSafetyError            UNSAFE_PATH       400
    │   │   └── RequestTooLarge            TOO_LARGE         413
    │   ├── ConfigError                    BAD_CONFIG        400
    │   ├── WorkspaceException             WORKSPACE_ERROR   400
    │   ├── SnapshotException              SNAPSHOT_ERROR    400
    │   ├── HyperDriveConfigException      HYPERDRIVE_CONFIG 400
    │   ├── RunEnvironmentException        RUN_ENVIRONMENT   400
    │   ├── ImmutablePropertyError         IMMUTABLE         409
    │   ├── RunFinishedError               RUN_FINISHED      409
    │   ├── AlreadyExistsError             ALREADY_EXISTS    409
    │   ├── UploadConflict                 UPLOAD_CONFLICT   409
    │   ├── MethodNotAllowed               METHOD_NOT_ALLOWED 405
    │   └── ModelPathNotFoundException     MODEL_PATH        404
    ├── NotFoundError                      NOT_FOUND         404
    │   ├── WorkspaceNotFound              WORKSPACE_NOT_FOUND
    │   ├── ExperimentNotFound             EXPERIMENT_NOT_FOUND
    │   ├── RunNotFound                    RUN_NOT_FOUND
    │   ├── ArtifactNotFound               ARTIFACT_NOT_FOUND
    │   ├── EnvironmentNotFound            ENVIRONMENT_NOT_FOUND
    │   ├── ModelNotFoundException         MODEL_NOT_FOUND
    │   ├── ComputeTargetNotFound          COMPUTE_TARGET_NOT_FOUND  (also a ComputeTargetException)
    │   ├── WebserviceNotFound             WEBSERVICE_NOT_FOUND      (also a WebserviceException)
    │   ├── UserNotFound                   USER_NOT_FOUND
    │   └── TokenNotFound                  TOKEN_NOT_FOUND
    ├── InvalidStatusTransition            BAD_TRANSITION    409
    ├── ComputeTargetException             COMPUTE_TARGET    400
    │   └── MpiRuntimeNotFound             MPI_RUNTIME_MISSING 400
    ├── ExperimentExecutionException       EXECUTION         500
    │   ├── ActivityFailedException        ACTIVITY_FAILED   500
    │   └── EnvironmentBuildError          ENV_BUILD         500
    ├── WebserviceException                WEBSERVICE        400
    ├── AuthenticationError                UNAUTHENTICATED   401
    ├── PermissionDenied                   PERMISSION_DENIED 403
    ├── RateLimited                        RATE_LIMITED      429
    ├── StoreError                         STORE_ERROR       503
    │   └── ServerUnreachable              SERVER_UNREACHABLE 503
    ├── MissingExtraError                  MISSING_EXTRA     501
    └── UnsupportedPlatform                UNSUPPORTED_PLATFORM 501  (also an ImportError)

Example::

    from trainyard.exceptions import RunNotFound, TrainyardError
    try:
        Run(experiment, "nope")
    except RunNotFound as err:
        print(err.code)   # RUN_NOT_FOUND
"""

from __future__ import annotations

from typing import Any, ClassVar


class TrainyardError(Exception):
    """Root of every error trainyard raises on purpose.

    ``message`` says what went wrong and what to do next; ``details`` holds structured context that
    scripts (and the REST layer) can read without parsing the text.
    """

    code: ClassVar[str] = "TRAINYARD_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """Wire form: ``{"code", "message", "details"}``."""
        return {"code": self.code, "message": self.message, "details": self.details}

    @staticmethod
    def from_dict(payload: dict[str, Any]) -> TrainyardError:
        """Rebuild the most specific known class from its wire form."""
        cls = _BY_CODE.get(str(payload.get("code")), TrainyardError)
        return cls(str(payload.get("message", "")), **dict(payload.get("details") or {}))


class UserErrorException(TrainyardError):
    """The caller asked for something that cannot be done as asked (v1 name)."""

    code = "USER_ERROR"
    http_status = 400


class ValidationError(UserErrorException):
    """An argument has the wrong type or value."""

    code = "INVALID_VALUE"


class MetricValueError(ValidationError):
    """A metric name or value that cannot be logged; the message names the metric and the type."""

    code = "INVALID_METRIC"


class InvalidNameError(ValidationError):
    """A name (experiment, model, service, environment …) that breaks its naming rule."""

    code = "INVALID_NAME"


class PathSafetyError(ValidationError):
    """A user-supplied path that could escape its folder (``..``, absolute, encoded traversal …)."""

    code = "UNSAFE_PATH"


class RequestTooLarge(ValidationError):
    """A request body is over the server's limit (counted on the bytes read, not a header)."""

    code = "TOO_LARGE"
    http_status = 413


class ConfigError(UserErrorException):
    """A configuration file is missing, unreadable or malformed; the message names the file."""

    code = "BAD_CONFIG"


class WorkspaceException(UserErrorException):
    """A workspace cannot be created or opened as asked."""

    code = "WORKSPACE_ERROR"


class SchemaTooNew(WorkspaceException):
    """The workspace's database was written by a newer trainyard (a schema revision this one does
    not know): upgrade trainyard to open it. Nothing was changed in the database."""

    code = "SCHEMA_TOO_NEW"
    http_status = 409


class SnapshotException(UserErrorException):
    """The source directory cannot be snapshotted (too big, too many files, unreadable)."""

    code = "SNAPSHOT_ERROR"


class HyperDriveConfigException(UserErrorException):
    """A HyperDrive configuration breaks one of v1's validation rules."""

    code = "HYPERDRIVE_CONFIG"


class RunEnvironmentException(UserErrorException):
    """``Run.get_context(allow_offline=False)`` outside a submitted run, or a broken run environment."""

    code = "RUN_ENVIRONMENT"


class ImmutablePropertyError(UserErrorException):
    """Properties are add-only: an existing key cannot change."""

    code = "IMMUTABLE"
    http_status = 409


class RunFinishedError(UserErrorException):
    """The run has already reached a terminal status and takes no more metrics or files."""

    code = "RUN_FINISHED"
    http_status = 409


class AlreadyExistsError(UserErrorException):
    """Something with that name or id already exists."""

    code = "ALREADY_EXISTS"
    http_status = 409


class UploadConflict(UserErrorException):
    """A resumable upload's part does not fit what the server holds (``details['offset']`` says
    where to resume), or its session belongs to another file or caller."""

    code = "UPLOAD_CONFLICT"
    http_status = 409


class MethodNotAllowed(UserErrorException):
    """The server has this route, but not for this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405


class ModelPathNotFoundException(UserErrorException):
    """``register_model`` was given a path that matches none of the run's files (v1 name)."""

    code = "MODEL_PATH"
    http_status = 404


class NotFoundError(TrainyardError):
    """Something looked up by name or id does not exist."""

    code = "NOT_FOUND"
    http_status = 404


class WorkspaceNotFound(NotFoundError):
    code = "WORKSPACE_NOT_FOUND"


class ExperimentNotFound(NotFoundError):
    code = "EXPERIMENT_NOT_FOUND"


class RunNotFound(NotFoundError):
    code = "RUN_NOT_FOUND"


class ArtifactNotFound(NotFoundError):
    code = "ARTIFACT_NOT_FOUND"


class EnvironmentNotFound(NotFoundError):
    code = "ENVIRONMENT_NOT_FOUND"


class ModelNotFoundException(NotFoundError):
    """No registered model matches (v1 name)."""

    code = "MODEL_NOT_FOUND"


class InvalidStatusTransition(TrainyardError):
    """A run status change that the lifecycle does not allow (e.g. Completed → Running)."""

    code = "BAD_TRANSITION"
    http_status = 409


class ComputeTargetException(TrainyardError):
    """A compute target is missing, misconfigured or cannot run what was asked (v1 name)."""

    code = "COMPUTE_TARGET"
    http_status = 400


class MpiRuntimeNotFound(ComputeTargetException):
    """An MPI job was asked for on a machine without an MPI runtime (``mpirun``); the message
    says what to install."""

    code = "MPI_RUNTIME_MISSING"


class ExperimentExecutionException(TrainyardError):
    """Running an experiment failed (v1 name)."""

    code = "EXECUTION"


class ActivityFailedException(ExperimentExecutionException):
    """Raised by ``wait_for_completion`` when the run ended Failed (v1 name)."""

    code = "ACTIVITY_FAILED"

    def __init__(self, message: str = "", error_details: Any = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.error_details = error_details


class EnvironmentBuildError(ExperimentExecutionException):
    """An environment could not be built; the message carries the resolver's output."""

    code = "ENV_BUILD"


class WebserviceException(TrainyardError):
    """A web service cannot be deployed, found, called or deleted as asked (v1 name)."""

    code = "WEBSERVICE"
    http_status = 400


class ComputeConfigurationError(ValidationError, ComputeTargetException):
    """A compute target's configuration has a bad value (node range, VM size, backend …); v1 code
    catching ``ComputeTargetException`` still does."""

    code = "INVALID_COMPUTE"


class ComputeTargetNotFound(NotFoundError, ComputeTargetException):
    """No compute target by that name; v1 code catching ``ComputeTargetException`` still does."""

    code = "COMPUTE_TARGET_NOT_FOUND"
    http_status = 404


class WebserviceNotFound(NotFoundError, WebserviceException):
    """No web service by that name; v1 code catching ``WebserviceException`` still does."""

    code = "WEBSERVICE_NOT_FOUND"
    http_status = 404


class UserNotFound(NotFoundError):
    """No user by that name or id (team server accounts)."""

    code = "USER_NOT_FOUND"


class TokenNotFound(NotFoundError):
    """No API token by that id."""

    code = "TOKEN_NOT_FOUND"


class AuthenticationError(TrainyardError):
    """No valid credential: the token is missing, unknown, expired, revoked or its user disabled."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(TrainyardError):
    """The caller's role does not allow this (reader, contributor, admin; run tokens: their run)."""

    code = "PERMISSION_DENIED"
    http_status = 403


class RateLimited(TrainyardError):
    """Too many attempts (logins with a bad token); wait and try again."""

    code = "RATE_LIMITED"
    http_status = 429


class StoreError(TrainyardError):
    """The metadata store failed in a way a retry may fix (database down, locked for too long)."""

    code = "STORE_ERROR"
    http_status = 503


class ServerUnreachable(StoreError):
    """The team server did not answer (down, restarting, network cut); the call was retried first.

    Records a run logs meanwhile are kept in its local spool and sent when the server is back
    (or by ``trainyard sync``)."""

    code = "SERVER_UNREACHABLE"


class MissingExtraError(TrainyardError):
    """An optional dependency is not installed; the message gives the ``pip install`` to run.

    Build it with :meth:`for_extra`, which names the packages of the extra (from trainyard's
    installed metadata) and how to reinstall trainyard with it from where it was installed.
    """

    code = "MISSING_EXTRA"
    http_status = 501

    @classmethod
    def for_extra(cls, extra: str, feature: str, module: str | None = None) -> MissingExtraError:
        """``feature`` needs ``extra``'s packages (``module`` is the one that failed to import).

        Example::

            raise MissingExtraError.for_extra("hyperdrive", "Bayesian sampling", "optuna")
            # Bayesian sampling needs optuna, which is not installed. Install it with:
            #   pip install 'optuna>=4.0' 'numpy>=1.24'
            # or reinstall trainyard with its 'hyperdrive' extra: pip install '/src/trainyard[hyperdrive]'
        """
        packages = extra_requirements(extra)
        missing = module or (packages[0] if packages else extra)
        wanted = " ".join(f"'{p}'" for p in packages) or f"'{missing}'"
        message = (
            f"{feature} needs {missing}, which is not installed. Install it with:\n"
            f"  pip install {wanted}\n"
            f"or reinstall trainyard with its '{extra}' extra: pip install {install_target(extra)}"
        )
        return cls(message, extra=extra, module=missing, requirements=packages)


class UnsupportedPlatform(TrainyardError, ImportError):
    """This system lacks something trainyard cannot run without (``details["missing"]`` names
    each); raised when trainyard is imported. It is also an ``ImportError``, so code that imports
    trainyard optionally (``try: import trainyard except ImportError``) still works.
    """

    code = "UNSUPPORTED_PLATFORM"
    http_status = 501


def extra_requirements(extra: str) -> list[str]:
    """The requirements of trainyard's ``extra`` that apply here, as installed (``[]`` when
    unknown), without their markers.

    Example::

        extra_requirements("hyperdrive")   # ['numpy>=1.24', 'optuna>=4.0']
    """
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requires = importlib.metadata.requires("trainyard") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    out = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or not req.marker.evaluate({"extra": extra}):
            continue
        if req.marker.evaluate({"extra": ""}):
            continue  # a core requirement, not the extra's
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        out.append(f"{req.name}{extras}{req.specifier}")
    return out


def install_target(extra: str) -> str:
    """What to ``pip install`` for trainyard with ``extra``, from where it was installed: its
    source folder (``-e`` for an editable install), else ``'trainyard[extra]'``.

    Example::

        install_target("serving")   # "-e '/home/me/trainyard[serving]'"
    """
    import importlib.metadata
    import json
    from urllib.parse import unquote, urlparse

    try:
        raw = importlib.metadata.distribution("trainyard").read_text("direct_url.json")
        info = json.loads(raw) if raw else {}
    except (importlib.metadata.PackageNotFoundError, ValueError):
        info = {}
    url = str(info.get("url", ""))
    if url.startswith("file://") and "dir_info" in info:
        folder = unquote(urlparse(url).path)
        editable = bool(info["dir_info"].get("editable"))
        return ("-e " if editable else "") + f"'{folder}[{extra}]'"
    return f"'trainyard[{extra}]'"


def _all_subclasses(cls: type[TrainyardError]) -> list[type[TrainyardError]]:
    out: list[type[TrainyardError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(c for c in _all_subclasses(sub) if c not in out)
    return list(dict.fromkeys(out))


_ALL: list[type[TrainyardError]] = [TrainyardError, *_all_subclasses(TrainyardError)]
_BY_CODE: dict[str, type[TrainyardError]] = {c.code: c for c in _ALL}

__all__ = sorted(c.__name__ for c in _ALL)
