"""The offline run ``Run.get_context()`` returns outside a submitted run.

As in v1, it records nothing: each call prints what it would have recorded, so a training script
runs unchanged on a laptop. Its id is ``OfflineRun_<uuid4>``. (v1 also printed only; uploading an
offline buffer into a real run later is a planned extension.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from trainyard.core.run import Run


class OfflineRun(Run):
    """A run that prints instead of recording."""

    def __init__(self) -> None:  # no store, no experiment
        self._run_id = f"OfflineRun_{uuid.uuid4()}"
        self._tags: dict[str, str] = {}
        self._props: dict[str, str] = {}
        self._finished = False
        self._in_job = False
        self._metrics: dict[str, list[Any]] = {}

    @property
    def id(self) -> str:
        return self._run_id

    @property
    def number(self) -> int:
        return 0

    @property
    def type(self) -> str:
        return "offline"

    @property
    def experiment(self) -> Any:
        return None

    @property
    def parent(self) -> None:
        return None

    @property
    def display_name(self) -> str:
        return self._run_id

    @display_name.setter
    def display_name(self, value: str) -> None:
        print(f"Attempted to set display name {value}")

    def __repr__(self) -> str:
        return f"Run(Id: {self._run_id}, Offline)"

    def _say(self, kind: str, name: str, value: Any) -> None:
        print(f"Attempted to log {kind} metric {name}:\n{value}")
        self._metrics.setdefault(name, []).append(value)

    def log(
        self,
        name: str,
        value: Any,
        description: str = "",
        step: int | None = None,
        *,
        timestamp: float | None = None,
    ) -> None:
        self._say("scalar", name, value)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._say("list", name, value)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._say("row", name, kwargs)

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        self._say("table", name, value)

    def log_image(
        self, name: str, path: Any = None, plot: Any = None, description: str = ""
    ) -> None:
        self._say("image", name, path if path is not None else plot)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._say("confusion_matrix", name, value)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._say("accuracy_table", name, value)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._say("residuals", name, value)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._say("predictions", name, value)

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        out = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self._metrics.items()}
        return out if name is None else {k: v for k, v in out.items() if k == name}

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> dict[str, Any]:
        print(f"Attempted to track file {name} at {path_or_stream}")
        return {"name": name}

    def upload_files(
        self,
        names: Sequence[str],
        paths: Sequence[Any],
        return_artifacts: bool = False,
        timeout_seconds: int | None = None,
        datastore_name: str | None = None,
    ) -> None:
        for n, p in zip(names, paths, strict=False):
            self.upload_file(n, p)

    def upload_folder(self, name: str, path: Any, datastore_name: str | None = None) -> list[str]:
        print(f"Attempted to track folder {name} at {path}")
        return []

    def get_file_names(self) -> list[str]:
        return []

    def tag(self, key: str, value: Any = None) -> None:
        print(f"Attempted to set tag {key}:\n{value}")
        self._tags[key] = "" if value is None else str(value)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.tag(k, v)

    def get_tags(self) -> dict[str, str]:
        return dict(self._tags)

    def remove_tags(self, tags: Sequence[str]) -> None:
        for t in tags:
            self._tags.pop(t, None)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        print(f"Attempted to add properties {dict(properties)}")
        self._props.update({k: str(v) for k, v in properties.items()})

    def get_properties(self) -> dict[str, str]:
        return dict(self._props)

    def child_run(
        self, name: str | None = None, run_id: str | None = None, outputs: str | None = None
    ) -> Run:
        return OfflineRun()

    def get_children(self, *args: Any, **kwargs: Any) -> Iterator[Run]:
        return iter(())

    def get_status(self) -> str:
        return "Running" if not self._finished else "Completed"

    def get_details(self) -> dict[str, Any]:
        return {"runId": self._run_id, "status": self.get_status(), "target": "offline"}

    def flush(self, timeout_seconds: int = 300) -> None:
        return None

    def complete(self, _set_status: bool = True) -> None:
        self._finished = True

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        print(f"Attempted to fail the run with error: {error_details}")
        self._finished = True

    def cancel(self) -> bool:
        self._finished = True
        return True

    def __enter__(self) -> Run:
        print("[START]")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        print("[STOP]")
        self._finished = True
