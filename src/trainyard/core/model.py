"""The model registry (v1: ``azureml.core.model.Model``).

Versions count up from 1 per name and are never reused. Registering from a run references the
run's files (hard links in the artifact store: no byte is copied); ``Model.register`` uploads local
files. Files keep their layout below the model root: ``outputs/model.npz`` downloads as
``<target_dir>/model.npz``.

Example::

    model = run.register_model(model_name="chainer-dnn-mnist", model_path="outputs/model.npz")
    print(model.id)                                   # chainer-dnn-mnist:1
    path = Model(ws, "chainer-dnn-mnist").download("./model", exist_ok=True)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainyard._store.artifacts import safe_relpath
from trainyard._store.entities import ModelInfo
from trainyard.core._names import validate_model_name
from trainyard.exceptions import (
    AlreadyExistsError,
    ModelNotFoundException,
    ModelPathNotFoundException,
    UserErrorException,
    ValidationError,
)

if TYPE_CHECKING:
    from trainyard.core.run import Run
    from trainyard.core.workspace import Workspace

MODEL_DIR_NAMES = ("trainyard-models", "azureml-models")


class Framework:
    """v1's framework names (plus the deep-learning ones trainyard's estimators record)."""

    TENSORFLOW = "TensorFlow"
    SCIKITLEARN = "ScikitLearn"
    ONNX = "Onnx"
    CUSTOM = "Custom"
    MULTI = "Multi"
    CHAINER = "Chainer"
    PYTORCH = "PyTorch"


def _str_dict(d: Mapping[str, Any] | None, what: str) -> dict[str, str]:
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ValidationError(f"{what} must be a dict, not {type(d).__name__}.")
    return {str(k): str(v) for k, v in d.items()}


def _matches(values: Mapping[str, str], filters: Sequence[Any] | None) -> bool:
    """v1 filter items: ``'key'`` or ``['key', 'value']``."""
    for item in filters or []:
        if isinstance(item, str):
            if item not in values:
                return False
        else:
            key, value = item[0], item[1]
            if values.get(str(key)) != str(value):
                return False
    return True


class Model:
    """A registered model version. ``Model(ws, name)`` gives the latest version."""

    Framework = Framework

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: Sequence[Any] | None = None,
        properties: Sequence[Any] | None = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        **kwargs: Any,
    ) -> None:
        if id is not None:
            name, _, v = id.partition(":")
            version = int(v) if v else version
        if name is None:
            if run_id is None and not tags and not properties:
                raise UserErrorException(
                    "Model(ws, ...) needs a name, an id ('name:version') or filters."
                )
            found = Model.list(
                workspace,
                tags=tags,
                properties=properties,
                run_id=run_id,
                model_framework=model_framework,
            )
            if not found:
                raise ModelNotFoundException("No registered model matches those filters.")
            self._set(workspace, max(found, key=lambda m: m.created_time)._info)
            return
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            try:
                version = int(version)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"Model version must be an integer, not {version!r}."
                ) from None
        info = workspace.context.store.get_model(workspace.context.workspace_id, name, version)
        self._set(workspace, info)

    def _set(self, workspace: Workspace, info: ModelInfo) -> None:
        self._workspace = workspace
        self._info = info

    @classmethod
    def _wrap(cls, workspace: Workspace, info: ModelInfo) -> Model:
        m = cls.__new__(cls)
        m._set(workspace, info)
        return m

    # -- attributes ---------------------------------------------------------------------------
    workspace = property(lambda self: self._workspace)
    name = property(lambda self: self._info.name)
    version = property(lambda self: self._info.version)
    id = property(lambda self: f"{self._info.name}:{self._info.version}")
    tags = property(lambda self: dict(self._info.tags))
    properties = property(lambda self: dict(self._info.properties))
    description = property(lambda self: self._info.description)
    run_id = property(lambda self: self._info.run_id)
    experiment_name = property(lambda self: self._info.experiment_name)

    def get_info(self) -> ModelInfo:
        """The model version's record as a typed, frozen value (its files included)."""
        return self._info

    model_framework = property(lambda self: self._info.framework)
    model_framework_version = property(lambda self: self._info.framework_version)
    created_time = property(lambda self: self._info.created_at)

    @property
    def url(self) -> str:
        return self._workspace.context.artifacts.uri(
            f"{self._info.storage_prefix}/{self._info.model_root}"
        )

    @property
    def run(self) -> Run | None:
        """The run this model came from (lineage), or ``None``."""
        if self._info.run_id is None:
            return None
        from trainyard.core.run import Run

        return Run.get(self._workspace, self._info.run_id)

    def __repr__(self) -> str:
        return f"Model(workspace={self._workspace.name!r}, name={self.name!r}, id={self.id!r}, version={self.version})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Model) and other.id == self.id and other._workspace == self._workspace
        )

    def __hash__(self) -> int:
        return hash(self.id)

    # -- registration -------------------------------------------------------------------------
    @staticmethod
    def _store_new(
        workspace: Workspace,
        name: str,
        *,
        staged_prefix: str,
        model_root: str,
        files: list[str],
        tags: Mapping[str, Any] | None,
        properties: Mapping[str, Any] | None,
        description: str | None,
        run_id: str | None,
        experiment_name: str | None,
        model_framework: str | None,
        model_framework_version: str | None,
    ) -> Model:
        try:
            info = workspace.context.store.create_model(
                ModelInfo(
                    workspace_id=workspace.context.workspace_id,
                    name=name,
                    version=0,
                    description=description,
                    tags=_str_dict(tags, "tags"),
                    properties=_str_dict(properties, "properties"),
                    run_id=run_id,
                    experiment_name=experiment_name,
                    framework=model_framework,
                    framework_version=model_framework_version,
                    created_at=time.time(),
                    storage_prefix=staged_prefix,
                    model_root=model_root,
                    files=tuple(files),
                )
            )
        except Exception:
            workspace.context.artifacts.delete_prefix(staged_prefix)
            raise
        return Model._wrap(workspace, info)

    @staticmethod
    def _register_from_run(
        run: Run,
        model_name: str,
        model_path: str | None,
        tags: Mapping[str, Any] | None,
        properties: Mapping[str, Any] | None,
        model_framework: str | None,
        model_framework_version: str | None,
        description: str | None,
    ) -> Model:
        validate_model_name(model_name)
        tags, properties = _str_dict(tags, "tags"), _str_dict(properties, "properties")
        rel = safe_relpath((model_path or model_name).replace("\\", "/").rstrip("/"))
        names = run.get_file_names()
        matched = [n for n in names if n == rel or n.startswith(rel + "/")]
        if not matched:
            raise ModelPathNotFoundException(
                f"Could not locate the provided model_path {rel} in the set of files uploaded to the "
                f"run: {names}",
                model_path=rel,
                run_id=run.id,
            )
        ws = run.experiment.workspace
        root = rel.rsplit("/", 1)[-1]
        staged = f"models/{model_name}/{uuid.uuid4().hex}"
        files: list[str] = []
        for n in matched:
            dst = f"{root}{n[len(rel) :]}"
            ws.context.artifacts.link(
                f"runs/{run.id}/{n}", f"{staged}/{dst}"
            )  # same bytes, no copy
            files.append(dst)
        return Model._store_new(
            ws,
            model_name,
            staged_prefix=staged,
            model_root=root,
            files=files,
            tags=tags,
            properties=properties,
            description=description,
            run_id=run.id,
            experiment_name=run.experiment.name,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
        )

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        description: str | None = None,
        datasets: Any = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: Sequence[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> Model:
        """Register a local file or folder (``child_paths`` picks files inside a folder)."""
        validate_model_name(model_name)
        tags, properties = _str_dict(tags, "tags"), _str_dict(properties, "properties")
        src = Path(model_path)
        if not src.exists():
            raise ModelPathNotFoundException(
                f"No file or folder at model_path {str(src)!r}.", model_path=str(src)
            )
        root = src.resolve().name
        pairs: list[tuple[Path, str]] = []
        if src.is_file():
            pairs.append((src, root))
        elif not src.is_dir():
            raise ModelPathNotFoundException(
                f"model_path {str(src)!r} is neither a regular file nor a folder (a FIFO, socket "
                "or device); register a file or a folder of files.",
                model_path=str(src),
            )
        else:
            wanted = {safe_relpath(c) for c in child_paths} if child_paths else None
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames.sort()
                for f in sorted(filenames):
                    full = Path(dirpath) / f
                    rel = full.relative_to(src).as_posix()
                    if wanted is not None and rel not in wanted:
                        continue
                    if full.is_symlink() and not full.resolve().is_relative_to(src.resolve()):
                        continue
                    if not full.is_file():  # reading a FIFO or a device would hang or never end
                        raise ModelPathNotFoundException(
                            f"{str(full)!r} in model_path is not a regular file (a FIFO, socket "
                            "or device); remove it, or pass child_paths naming the files to "
                            "register.",
                            model_path=str(src),
                        )
                    pairs.append((full, f"{root}/{rel}"))
            if wanted is not None:
                missing = wanted - {p[1][len(root) + 1 :] for p in pairs}
                if missing:
                    raise ModelPathNotFoundException(
                        f"child_paths not found under {str(src)!r}: {sorted(missing)}",
                        model_path=str(src),
                    )
            if not pairs:
                raise ModelPathNotFoundException(
                    f"The folder {str(src)!r} holds no files.", model_path=str(src)
                )
        staged = f"models/{model_name}/{uuid.uuid4().hex}"
        for local, dst in pairs:
            workspace.context.artifacts.write_file(f"{staged}/{dst}", local)
        return Model._store_new(
            workspace,
            model_name,
            staged_prefix=staged,
            model_root=root,
            files=[p[1] for p in pairs],
            tags=tags,
            properties=properties,
            description=description,
            run_id=None,
            experiment_name=None,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
        )

    # -- queries ------------------------------------------------------------------------------
    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: Sequence[Any] | None = None,
        properties: Sequence[Any] | None = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        expand: bool = True,
        page_count: int = 255,
        model_framework: str | None = None,
    ) -> list[Model]:
        """Registered models; filters are ANDed (tag/property items: ``'key'`` or ``['key', 'value']``)."""
        infos = workspace.context.store.list_models(
            workspace.context.workspace_id, name=name, run_id=run_id, latest=False
        )
        infos = [
            i
            for i in infos
            if _matches(i.tags, tags)
            and _matches(i.properties, properties)
            and (model_framework is None or i.framework == model_framework)
        ]
        if latest:
            seen: set[str] = set()
            infos = [i for i in infos if not (i.name in seen or seen.add(i.name))]  # type: ignore[func-returns-value]
        return [Model._wrap(workspace, i) for i in infos]

    # -- files --------------------------------------------------------------------------------
    def download(
        self,
        target_dir: str | os.PathLike[str] = ".",
        exist_ok: bool = False,
        exists_ok: bool | None = None,
    ) -> str:
        """Download into ``target_dir`` keeping the layout below the model root; returns the root's
        local path. An existing file raises unless ``exist_ok``."""
        if exists_ok is not None:
            exist_ok = exists_ok
        target = Path(target_dir)
        if target.exists() and not target.is_dir():
            raise UserErrorException(f"target_dir {str(target)!r} is a file, not a folder.")
        clashes = [f for f in self._info.files if (target / f).exists()]
        if clashes and not exist_ok:
            raise AlreadyExistsError(
                f"{str(target / clashes[0])!r} already exists; pass exist_ok=True to overwrite.",
                path=str(target / clashes[0]),
            )
        for f in self._info.files:
            dest = target / safe_relpath(f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._workspace.context.artifacts.download(f"{self._info.storage_prefix}/{f}", dest)
        return str(target / self._info.model_root)

    def get_sas_urls(self) -> dict[str, str]:
        """file → URL (``file://`` URLs in embedded mode)."""
        return {
            f: self._workspace.context.artifacts.uri(f"{self._info.storage_prefix}/{f}")
            for f in self._info.files
        }

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """Where a model's files are: ``trainyard-models/<name>/<version>/`` (then v1's
        ``azureml-models/``) under the model directory or the cwd, then ``./<name>``, then a download
        from ``_workspace`` into ``trainyard-models/``."""
        bases: list[Path] = []
        for var in ("TRAINYARD_MODEL_DIR", "AZUREML_MODEL_DIR"):
            if os.environ.get(var):
                base = Path(os.environ[var])
                # A service of one model points the variable at <models root>/<name>/<version>:
                # search that root as well, so any of its models resolves by name.
                bases += [base, base.parent.parent] if base.name.isdigit() else [base]
        bases.append(Path.cwd())
        for base in bases:
            for dirname in (*MODEL_DIR_NAMES, ""):  # the caches before ./<name>, as v1
                folder = base / dirname / model_name if dirname else base / model_name
                if not folder.is_dir():
                    continue
                versions = sorted(
                    (int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True
                )
                chosen = version if version is not None else (versions[0] if versions else None)
                if chosen is not None and (folder / str(chosen)).is_dir():
                    entries = list((folder / str(chosen)).iterdir())
                    return str(entries[0]) if len(entries) == 1 else str(folder / str(chosen))
                if dirname == "" and not versions:
                    return str(folder)
        if _workspace is not None:
            m = Model(_workspace, model_name, version=version)
            return m.download(
                Path.cwd() / MODEL_DIR_NAMES[0] / model_name / str(m.version), exist_ok=True
            )
        raise ModelNotFoundException(
            f"Model {model_name!r} (version {version or 'latest'}) is not in trainyard-models/, azureml-models/ "
            "or the current folder; pass _workspace= to download it.",
            name=model_name,
        )

    # -- updates ------------------------------------------------------------------------------
    def add_tags(self, tags: Mapping[str, Any]) -> None:
        merged = {**self._info.tags, **_str_dict(tags, "tags")}
        self._info = self._workspace.context.store.update_model(
            self._workspace.context.workspace_id, self.name, self.version, tags=merged
        )

    def remove_tags(self, tags: Sequence[str]) -> None:
        kept = {k: v for k, v in self._info.tags.items() if k not in set(tags)}
        self._info = self._workspace.context.store.update_model(
            self._workspace.context.workspace_id, self.name, self.version, tags=kept
        )

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        self._info = self._workspace.context.store.update_model(
            self._workspace.context.workspace_id,
            self.name,
            self.version,
            add_properties=_str_dict(properties, "properties"),
        )

    def update(
        self, tags: Mapping[str, Any] | None = None, description: str | None = None, **kwargs: Any
    ) -> None:
        """``tags=`` replaces all tags; ``description=`` replaces the description."""
        self._info = self._workspace.context.store.update_model(
            self._workspace.context.workspace_id,
            self.name,
            self.version,
            tags=None if tags is None else _str_dict(tags, "tags"),
            description=description,
        )

    def delete(self) -> None:
        """Delete this version (its number is never reused). Shared bytes stay for other references."""
        self._workspace.context.store.delete_model(
            self._workspace.context.workspace_id, self.name, self.version
        )
        self._workspace.context.artifacts.delete_prefix(self._info.storage_prefix)

    # -- deployment (implemented in trainyard.core.webservice) ---------------------------------
    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: Sequence[Model] | None,
        inference_config: Any = None,
        deployment_config: Any = None,
        deployment_target: Any = None,
        overwrite: bool = False,
        show_output: bool = False,
    ) -> Any:
        """Deploy ``models`` as web service ``name``; returns it while ``Transitioning``
        (see :func:`trainyard.core.webservice._deploy.deploy`)."""
        from trainyard.core.webservice._deploy import deploy

        return deploy(workspace, name, models, inference_config, deployment_config,
                      deployment_target, overwrite, show_output)  # fmt: skip

    @staticmethod
    def package(
        workspace: Workspace,
        models: Sequence[Model] | None,
        inference_config: Any = None,
        generate_dockerfile: bool = False,
        image_name: str | None = None,
        image_label: str | None = None,
    ) -> Any:
        """Write a self-contained service folder (see :mod:`trainyard.core.webservice._package`)."""
        from trainyard.core.webservice._package import package

        return package(
            workspace, models, inference_config, generate_dockerfile, image_name, image_label
        )

    def serialize(self) -> dict[str, Any]:
        i = self._info
        return {
            "id": self.id,
            "name": i.name,
            "version": i.version,
            "description": i.description,
            "tags": dict(i.tags),
            "properties": dict(i.properties),
            "runId": i.run_id,
            "experimentName": i.experiment_name,
            "modelFramework": i.framework,
            "modelFrameworkVersion": i.framework_version,
            "createdTime": i.created_at,
            "url": self.url,
            "files": list(i.files),
        }


from trainyard.core.inference_config import InferenceConfig  # noqa: E402, F401 - v1 import path


def latest_models_by_name(workspace: Workspace) -> dict[str, Model]:
    """name → the latest version of every registered model (what ``ws.models`` returns)."""
    return {m.name: m for m in Model.list(workspace, latest=True)}


def register_model_from_run(
    run: Run,
    model_name: str,
    model_path: str | None,
    tags: Mapping[str, Any] | None,
    properties: Mapping[str, Any] | None,
    model_framework: str | None,
    model_framework_version: str | None,
    description: str | None,
) -> Model:
    """``run.register_model(...)``: register the run's file or folder ``model_path``."""
    return Model._register_from_run(
        run,
        model_name,
        model_path,
        tags,
        properties,
        model_framework,
        model_framework_version,
        description,
    )
