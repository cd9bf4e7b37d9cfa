"""Metric logging and reading for :class:`~trainyard.core.run.Run` (v1 names and shapes)."""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainyard._store.entities import MetricPoint
from trainyard._store.limits import check_step
from trainyard._tracking.buffer import MetricBuffer
from trainyard._tracking.codec import decode, decode_values, shape_metrics
from trainyard.core._names import validate_metric_name
from trainyard.exceptions import MetricValueError, RunFinishedError

_B63 = 1 << 63  # steps outside ±2^63 take the slow path, which refuses them


def _seconds(name: str, timestamp: Any) -> float | None:
    """A metric's ``timestamp`` argument as seconds since the epoch (``None`` stays ``None``)."""
    if timestamp is None:
        return None
    stamp = getattr(timestamp, "timestamp", None)
    value = stamp() if callable(stamp) else timestamp
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MetricValueError(
            f"Metric {name!r}: timestamp must be seconds since the epoch (a finite number) or a "
            f"datetime, not {timestamp!r}.",
            metric=name,
        )
    return float(value)


if TYPE_CHECKING:
    from trainyard._store.base import TrackingStore
    from trainyard.settings import Settings

_SCALARS = (int, float, str, bool)


def _to_plain(name: str, value: Any) -> Any:
    """A loggable cell value: numbers, strings, booleans (numpy scalars converted), or raise."""
    if value is None or isinstance(value, _SCALARS):
        return value
    item = getattr(value, "item", None)  # numpy scalar → Python scalar
    if callable(item) and getattr(value, "ndim", 0) == 0:
        plain = item()
        if isinstance(plain, _SCALARS):
            return plain
    raise MetricValueError(
        f"Metric {name!r}: cannot log a value of type {type(value).__name__}; log numbers, "
        "strings, booleans, or lists of them (use log_list / log_table for collections).",
        metric=name,
        type=type(value).__name__,
    )


def _to_list(name: str, value: Any) -> list[Any]:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        value = tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise MetricValueError(
            f"Metric {name!r}: expected a list, got {type(value).__name__}.",
            metric=name,
            type=type(value).__name__,
        )
    return [_to_plain(name, v) for v in value]


class RunMetricsMixin:
    """``log*`` and ``get_metrics``; needs ``_store``, ``_run_id``, ``_settings``, ``_finished``."""

    _store: TrackingStore
    _run_id: str
    _settings: Settings
    _finished: bool
    _buffer_obj: MetricBuffer | None
    _known_names: set[str]

    def _buffer(self) -> MetricBuffer:
        buf = self._buffer_obj
        if buf is None:
            store, run_id = self._store, self._run_id
            buf = MetricBuffer(
                lambda chunks: store.log_metric_chunks(run_id, chunks),
                capacity=self._settings.log_buffer_points,
                flush_interval=self._settings.log_flush_interval,
                label=f"-{run_id}",
            )
            self._buffer_obj = buf
        return buf

    def _check_open(self) -> None:
        if self._finished:
            raise RunFinishedError(
                f"Run {self._run_id!r} has finished; it takes no more metrics or files. "
                "Start a new run to log more.",
                run_id=self._run_id,
            )

    def log(
        self,
        name: str,
        value: Any,
        description: str = "",
        step: int | None = None,
        *,
        timestamp: float | None = None,
    ) -> None:
        """Log a number, string or boolean; logging a name again makes it a series.

        If ``step`` is given for a name it must be given for every value of that name.
        ``timestamp`` (keyword only; seconds since the epoch, or a ``datetime``) records when the
        value was measured, for numbers logged after the fact (MLflow clients send their own);
        by default it is now.
        """
        t = type(value)
        if (
            timestamp is None
            and (t is float or t is int)
            and name in self._known_names
            and not self._finished
        ):
            buf = self._buffer_obj
            if buf is not None and (step is None or (type(step) is int and -_B63 <= step < _B63)):
                buf.log_number(name, value, step)
                return
        self._log_slow(name, value, description, step, _seconds(name, timestamp))

    def _log_slow(
        self,
        name: str,
        value: Any,
        description: str,
        step: int | None,
        timestamp: float | None = None,
    ) -> None:
        self._check_open()
        validate_metric_name(name)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            step_item = getattr(step, "item", None)
            if callable(step_item) and isinstance(step_item(), int):
                step = int(step_item())
            else:
                raise MetricValueError(
                    f"Metric {name!r}: step must be an integer, not {type(step).__name__}.",
                    metric=name,
                )
        if step is not None:
            check_step(name, step)
        if isinstance(value, (list, tuple)) or (
            hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0
        ):
            self.log_list(name, value, description)
            return
        plain = _to_plain(name, value)
        desc = description or None
        if type(plain) in (int, float):
            self._buffer().log_number(name, plain, step, desc, timestamp)
            self._known_names.add(name)
        else:
            self._buffer().log_json(name, "scalar", plain, step, desc)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a whole list of numbers, strings or booleans at once."""
        self._check_open()
        validate_metric_name(name)
        self._buffer().log_json(name, "list", _to_list(name, value), None, description or None)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Append one row (columns as keyword arguments) to a table metric."""
        self._check_open()
        validate_metric_name(name)
        row = {str(k): _to_plain(name, v) for k, v in kwargs.items()}
        self._buffer().log_json(name, "row", row, None, description or None)

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        """Log a table as a dict of column name → list of values."""
        self._check_open()
        validate_metric_name(name)
        if not isinstance(value, Mapping):
            raise MetricValueError(
                f"Metric {name!r}: log_table expects a dict of column → list, got {type(value).__name__}.",
                metric=name,
                type=type(value).__name__,
            )
        table = {str(k): _to_list(name, v) for k, v in value.items()}
        self._buffer().log_json(name, "table", table, None, description or None)

    def _log_artifact_metric(
        self, name: str, kind: str, payload: dict[str, Any], description: str
    ) -> None:
        self._check_open()
        validate_metric_name(name)
        path = f"metrics/{kind}/{name}_{int(time.time() * 1000)}.json"
        self.upload_file(path, io.BytesIO(json.dumps(payload).encode()))  # type: ignore[attr-defined]
        self._buffer().log_json(
            name, kind, {"artifact": path, **payload}, None, description or None
        )

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        """Log a confusion matrix: ``{"schema_type": "confusion_matrix", "data": {"class_labels",
        "matrix"}}`` or just the ``data`` part."""
        self._log_artifact_metric(
            name, "confusion_matrix", _schema(name, "confusion_matrix", value), description
        )

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        """Log an accuracy table (v1 artifact-backed JSON)."""
        self._log_artifact_metric(
            name, "accuracy_table", _schema(name, "accuracy_table", value), description
        )

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        """Log residuals (v1 artifact-backed JSON)."""
        self._log_artifact_metric(name, "residuals", _schema(name, "residuals", value), description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        """Log predictions (v1 artifact-backed JSON)."""
        self._log_artifact_metric(
            name, "predictions", _schema(name, "predictions", value), description
        )

    def log_image(
        self,
        name: str,
        path: str | os.PathLike[str] | None = None,
        plot: Any = None,
        description: str = "",
    ) -> None:
        """Log a PNG file (``path``) or a matplotlib figure (``plot``); stored as a run file."""
        self._check_open()
        validate_metric_name(name)
        if (path is None) == (plot is None):
            raise MetricValueError(
                f"log_image({name!r}): give exactly one of path= or plot=.", metric=name
            )
        if plot is not None:
            buf = io.BytesIO()
            savefig = getattr(plot, "savefig", None)
            if not callable(savefig):
                raise MetricValueError(
                    f"log_image({name!r}): plot must be a matplotlib figure or pyplot, not "
                    f"{type(plot).__name__}.",
                    metric=name,
                )
            savefig(buf, format="png")
            buf.seek(0)
            source: Any = buf
        else:
            p = os.fspath(path)  # type: ignore[arg-type]
            if not os.path.isfile(p):
                raise MetricValueError(f"log_image({name!r}): no file at {p}.", metric=name)
            source = p
        artifact = f"images/{name}_{int(time.time() * 1000)}.png"
        self.upload_file(artifact, source)  # type: ignore[attr-defined]
        self._buffer().log_json(name, "image", artifact, None, description or None)

    def flush(self, timeout_seconds: int = 300) -> None:
        """Write every buffered metric now."""
        if self._buffer_obj is not None:
            self._buffer_obj.flush()

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """Metrics with v1's shape rules: a value logged once is bare, logged N times a list.

        ``recursive=True`` returns ``{run_id: {…}}`` for this run and all its descendants.
        """
        if recursive:
            out = {self._run_id: self.get_metrics(name)}
            for child in self.get_children(recursive=True, type=run_type):  # type: ignore[attr-defined]
                out[child.id] = child.get_metrics(name)
            return out
        self.flush()
        chunks = self._store.get_metric_chunks(self._run_id, [name] if name is not None else None)
        return shape_metrics(decode_values(chunks))

    def get_metric_points(self, name: str) -> list[MetricPoint]:
        """Every point of metric ``name`` with its step and timestamp (trainyard extension)."""
        self.flush()
        decoded = decode(self._store.get_metric_chunks(self._run_id, [name]))
        return decoded.get(name, ("scalar", []))[1]


def _schema(name: str, schema_type: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise MetricValueError(
                f"Metric {name!r}: value is not valid JSON.", metric=name
            ) from None
    if not isinstance(value, dict):
        raise MetricValueError(
            f"Metric {name!r}: expected a dict for {schema_type}, got {type(value).__name__}.",
            metric=name,
        )
    if "schema_type" in value:
        return value
    return {"schema_type": schema_type, "schema_version": "1.0.0", "data": value}


def is_finite_number(value: Any) -> bool:
    """True for ints and finite floats (helper for callers that rank metrics)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
