"""MLflow's model registry on trainyard's (no MLflow import: the team server uses it too).

The mapping (see ``ARCHITECTURE.md``, "MLflow plugin"):

* an MLflow *registered model* is a trainyard model name; its description, tags and aliases are
  the name's :class:`~trainyard._store.entities.RegisteredModelRecord` (a name registered through
  trainyard has no record until MLflow writes one: it is still listed, from its versions);
* an MLflow *model version* is a trainyard model version (``Model(ws, name, version=…)``):
  versions are integers in trainyard and strings on MLflow's wire; the files are the source run's
  files under the source path, hard-linked into the registry as ``run.register_model`` does; the
  source URI, the MLflow user and the logged-model id are version properties (``mlflow.source``,
  ``mlflow.user``, ``mlflow.model_id``), the stage a hidden tag; the status is always ``READY``.

Every method takes MLflow's request fields as a dict and answers MLflow's JSON.

Example::

    reg = ModelRegistry(store, artifacts, ws_id, user="ana", download_uri=lambda m: "...")
    reg.create_model_version({"name": "clf", "source": "runs:/<run>/model", "run_id": "<run>"})
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from trainyard._store.artifacts import ArtifactStore, safe_relpath
from trainyard._store.base import TrackingStore
from trainyard._store.entities import ModelInfo, RegisteredModelRecord
from trainyard.core._names import validate_model_name
from trainyard.exceptions import ModelNotFoundException, ValidationError
from trainyard.mlflow_plugin import _mapping as m
from trainyard.mlflow_plugin import _sources

SOURCE_PROP = "mlflow.source"
USER_PROP = "mlflow.user"
MODEL_ID_PROP = "mlflow.model_id"
STAGE_TAG = m.INTERNAL_PREFIX + "stage"
STAGES = ("None", "Staging", "Production", "Archived")


def version_path(info: ModelInfo) -> str:
    """``<quoted name>/<version>[/<model root>]``: where a version's files are below a download
    URI's registry segment (its model folder, the one holding ``MLmodel``, or the version's own
    folder when it was registered as one file). The server's proxy and the plugin both use it."""
    name = urllib.parse.quote(info.name, safe="")
    folder = any(f.startswith(info.model_root + "/") for f in info.files)
    return f"{name}/{info.version}/{info.model_root}" if folder else f"{name}/{info.version}"


def _version(raw: Any) -> int:
    text = str(raw if raw is not None else "")
    if not text.isdigit() or int(text) < 1:
        raise ValidationError(f"Invalid model version {raw!r}: versions are positive integers.")
    return int(text)


def _need(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise ValidationError(f"Missing value for required parameter '{key}'.")
    return str(value)


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or []}


class ModelRegistry:
    """MLflow's registry calls over one workspace's store and artifact store (module docstring).

    ``download_uri(info)`` gives the artifact URI MLflow downloads a version's files from (it
    differs between the server's artifact proxy and the embedded plugin).
    """

    def __init__(
        self,
        store: TrackingStore,
        artifacts: ArtifactStore,
        workspace_id: str,
        *,
        user: str | None,
        download_uri: Callable[[ModelInfo], str],
    ) -> None:
        self.store, self.artifacts, self.ws_id = store, artifacts, workspace_id
        self.user, self.download_uri = user, download_uri

    # -- JSON views -------------------------------------------------------------------------------
    def version_json(
        self, info: ModelInfo, aliases: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """An MLflow ``ModelVersion``."""
        created = m.ms(info.created_at)
        out: dict[str, Any] = {
            "name": info.name,
            "version": str(info.version),
            "creation_timestamp": created,
            "last_updated_timestamp": created,
            "user_id": info.properties.get(USER_PROP, ""),
            "current_stage": info.tags.get(STAGE_TAG, "None"),
            "description": info.description or "",
            "source": info.properties.get(SOURCE_PROP) or self.download_uri(info),
            "run_id": info.run_id or "",
            "status": "READY",
            "tags": [
                {"key": k, "value": v} for k, v in sorted(info.tags.items()) if m.visible_tag(k)
            ],
            "aliases": sorted(a for a, ver in (aliases or {}).items() if ver == info.version),
        }
        if info.properties.get(MODEL_ID_PROP):
            out["model_id"] = info.properties[MODEL_ID_PROP]
        return out

    def _record(self, name: str) -> RegisteredModelRecord | None:
        try:
            return self.store.get_registered_model(self.ws_id, name)
        except ModelNotFoundException:
            return None

    def _versions(self, name: str) -> list[ModelInfo]:
        return self.store.list_models(self.ws_id, name=name)

    def model_json(
        self, name: str, record: RegisteredModelRecord | None, versions: list[ModelInfo]
    ) -> dict[str, Any]:
        """An MLflow ``RegisteredModel`` (``latest_versions``: the newest version)."""
        if record is None and not versions:
            raise _missing(name)
        aliases = record.aliases if record else {}
        times = [v.created_at for v in versions] + ([record.created_at] if record else [])
        updated = max(times + ([record.updated_at] if record else []))
        return {
            "name": name,
            "creation_timestamp": m.ms(min(times)),
            "last_updated_timestamp": m.ms(updated),
            "description": (record.description if record else None) or "",
            "latest_versions": [self.version_json(versions[0], aliases)] if versions else [],
            "tags": [
                {"key": k, "value": v} for k, v in sorted((record.tags if record else {}).items())
            ],
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())],
        }

    def _model(self, name: str) -> dict[str, Any]:
        return self.model_json(name, self._record(name), self._versions(name))

    def _get_version(self, args: dict[str, Any]) -> ModelInfo:
        return self.store.get_model(self.ws_id, _need(args, "name"), _version(args.get("version")))

    # -- registered models ------------------------------------------------------------------------
    def create_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name = validate_model_name(_need(args, "name"))
        record = self.store.put_registered_model(
            self.ws_id,
            name,
            description=args.get("description") or None,
            tags=_tags(args.get("tags")),
            create=True,
        )
        return {"registered_model": self.model_json(name, record, [])}

    def get_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"registered_model": self._model(_need(args, "name"))}

    def update_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _need(args, "name")
        self._model(name)
        self.store.put_registered_model(
            self.ws_id, name, description=str(args.get("description") or "")
        )
        return {"registered_model": self._model(name)}

    def rename_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name, new_name = _need(args, "name"), validate_model_name(_need(args, "new_name"))
        self.store.rename_model(self.ws_id, name, new_name)
        return {"registered_model": self._model(new_name)}

    def delete_registered_model(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _need(args, "name")
        versions = self._versions(name)
        self.store.delete_registered_model(self.ws_id, name)
        for info in versions:  # as Model.delete: the files go too (the run keeps its own)
            self.artifacts.delete_prefix(info.storage_prefix)
        return {}

    def search_registered_models(self, args: dict[str, Any]) -> dict[str, Any]:
        records = {r.name: r for r in self.store.list_registered_models(self.ws_id)}
        versions: dict[str, list[ModelInfo]] = {}
        for info in self.store.list_models(self.ws_id):
            versions.setdefault(info.name, []).append(info)
        names = sorted(set(records) | set(versions))
        views = [self.model_json(n, records.get(n), versions.get(n, [])) for n in names]
        views = [x for x in views if _matches_all(x, parse(args.get("filter")))]
        return _page(_ordered(views, args.get("order_by"), "name"), args, "registered_models")

    def set_registered_model_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        name, key = _need(args, "name"), _need(args, "key")
        record = self._record(name)
        self._model(name)
        tags = {**(record.tags if record else {}), key: str(args.get("value", ""))}
        self.store.put_registered_model(self.ws_id, name, tags=tags)
        return {}

    def delete_registered_model_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        name, key = _need(args, "name"), _need(args, "key")
        record = self._record(name)
        if record is None or key not in record.tags:
            self._model(name)
            raise ModelNotFoundException(
                f"Registered model {name!r} has no tag {key!r}.", name=name
            )
        self.store.put_registered_model(
            self.ws_id, name, tags={k: v for k, v in record.tags.items() if k != key}
        )
        return {}

    def get_latest_versions(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _need(args, "name")
        self._model(name)
        stages = args.get("stages") or []
        stages = [stages] if isinstance(stages, str) else list(stages)
        latest: dict[str, ModelInfo] = {}
        for info in self._versions(name):  # newest first
            latest.setdefault(info.tags.get(STAGE_TAG, "None"), info)
        wanted = [s.title() if s.lower() != "none" else "None" for s in stages] or list(latest)
        record = self._record(name)
        aliases = record.aliases if record else {}
        picked = sorted((latest[s] for s in wanted if s in latest), key=lambda i: i.version)
        return {"model_versions": [self.version_json(i, aliases) for i in picked]}

    # -- aliases ----------------------------------------------------------------------------------
    def set_alias(self, args: dict[str, Any]) -> dict[str, Any]:
        name, alias = _need(args, "name"), _need(args, "alias")
        if alias.lower() == "latest" or re.fullmatch(r"v\d+", alias):
            raise ValidationError(f"Alias {alias!r} is reserved; pick another name.")
        version = self.store.get_model(self.ws_id, name, _version(args.get("version"))).version
        record = self._record(name)
        aliases = {**(record.aliases if record else {}), alias: version}
        self.store.put_registered_model(self.ws_id, name, aliases=aliases)
        return {}

    def delete_alias(self, args: dict[str, Any]) -> dict[str, Any]:
        name, alias = _need(args, "name"), _need(args, "alias")
        self._model(name)
        record = self._record(name)
        if record is not None and alias in record.aliases:
            rest = {k: v for k, v in record.aliases.items() if k != alias}
            self.store.put_registered_model(self.ws_id, name, aliases=rest)
        return {}

    def get_model_version_by_alias(self, args: dict[str, Any]) -> dict[str, Any]:
        name, alias = _need(args, "name"), _need(args, "alias")
        record = self._record(name)
        if record is None or alias not in record.aliases:
            self._model(name)
            raise ModelNotFoundException(
                f"Registered model {name!r} has no alias {alias!r}.", name=name
            )
        info = self.store.get_model(self.ws_id, name, record.aliases[alias])
        return {"model_version": self.version_json(info, record.aliases)}

    # -- model versions ---------------------------------------------------------------------------
    def create_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        """A new trainyard version holding the source run's files below the source path."""
        name = validate_model_name(_need(args, "name"))
        source = _need(args, "source")
        where = _sources.resolve(
            source, args.get("run_id") or None, self.store, args.get("model_id")
        )
        run = self.store.get_run(where.run_id)
        if run.workspace_id != self.ws_id:
            raise ValidationError(f"Run {where.run_id!r} is not in this workspace.")
        prefix = f"runs/{run.run_id}/{where.path}".rstrip("/")
        found = [
            p for p in self.artifacts.list(prefix) if p == prefix or p.startswith(prefix + "/")
        ]
        if not found:
            raise ValidationError(
                f"Model source {source!r} has no files in run {run.run_id!r}: log the model "
                "(mlflow.<flavor>.log_model) before registering it."
            )
        root = where.path.rsplit("/", 1)[-1] if where.path else "model"
        staged = f"models/{name}/{uuid.uuid4().hex}"
        props = {SOURCE_PROP: source}
        if self.user:
            props[USER_PROP] = self.user
        if where.model_id:
            props[MODEL_ID_PROP] = where.model_id
        files = []
        try:  # a refused version leaves no staged files behind
            for path in found:
                dst = f"{root}{path[len(prefix) :]}"
                self.artifacts.link(path, f"{staged}/{safe_relpath(dst)}")
                files.append(dst)
            info = self.store.create_model(
                ModelInfo(
                    workspace_id=self.ws_id,
                    name=name,
                    version=0,
                    description=args.get("description") or None,
                    tags=_tags(args.get("tags")),
                    properties=props,
                    run_id=run.run_id,
                    experiment_name=run.experiment_name,
                    framework=None,
                    framework_version=None,
                    created_at=time.time(),
                    storage_prefix=staged,
                    model_root=root,
                    files=tuple(files),
                )
            )
        except Exception:
            self.artifacts.delete_prefix(staged)
            raise
        return {"model_version": self.version_json(info)}

    def get_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        record = self._record(info.name)
        return {"model_version": self.version_json(info, record.aliases if record else None)}

    def update_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        if args.get("description") is not None:
            info = self.store.update_model(
                self.ws_id, info.name, info.version, description=str(args["description"])
            )
        return {"model_version": self.version_json(info)}

    def transition_stage(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        stage = next((s for s in STAGES if s.lower() == str(args.get("stage", "")).lower()), None)
        if stage is None:
            raise ValidationError(f"Invalid stage {args.get('stage')!r}: use one of {STAGES}.")
        if str(args.get("archive_existing_versions")).lower() == "true" and stage != "None":
            for other in self._versions(info.name):
                if other.version != info.version and other.tags.get(STAGE_TAG) == stage:
                    tags = {**other.tags, STAGE_TAG: "Archived"}
                    self.store.update_model(self.ws_id, other.name, other.version, tags=tags)
        tags = {**info.tags, STAGE_TAG: stage}
        info = self.store.update_model(self.ws_id, info.name, info.version, tags=tags)
        return {"model_version": self.version_json(info)}

    def delete_model_version(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        self.store.delete_model(self.ws_id, info.name, info.version)
        self.artifacts.delete_prefix(info.storage_prefix)  # as Model.delete
        record = self._record(info.name)
        if record is not None and info.version in record.aliases.values():
            rest = {k: v for k, v in record.aliases.items() if v != info.version}
            self.store.put_registered_model(self.ws_id, info.name, aliases=rest)
        return {}

    def search_model_versions(self, args: dict[str, Any]) -> dict[str, Any]:
        clauses = parse(args.get("filter"))
        name = next((c.value for c in clauses if c.key == "name" and c.op == "="), None)
        infos = self.store.list_models(self.ws_id, name=str(name) if name else None)
        aliases = {r.name: r.aliases for r in self.store.list_registered_models(self.ws_id)}
        views = [self.version_json(i, aliases.get(i.name)) for i in infos]
        views = [x for x in views if _matches_all(x, clauses)]
        ordered = _ordered(views, args.get("order_by"), "name")
        return _page(ordered, args, "model_versions")

    def set_model_version_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        key = _need(args, "key")
        if not m.visible_tag(key):
            raise ValidationError(f"Tag {key!r} is reserved for trainyard.")
        tags = {**info.tags, key: str(args.get("value", ""))}
        self.store.update_model(self.ws_id, info.name, info.version, tags=tags)
        return {}

    def delete_model_version_tag(self, args: dict[str, Any]) -> dict[str, Any]:
        info = self._get_version(args)
        key = _need(args, "key")
        if key not in info.tags:
            raise ModelNotFoundException(
                f"Model {info.name} version {info.version} has no tag {key!r}.", name=info.name
            )
        tags = {k: v for k, v in info.tags.items() if k != key}
        self.store.update_model(self.ws_id, info.name, info.version, tags=tags)
        return {}

    def get_download_uri(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"artifact_uri": self.download_uri(self._get_version(args))}


def _missing(name: str) -> ModelNotFoundException:
    return ModelNotFoundException(f"Registered Model with name={name} not found", name=name)


# -- the registry's search grammar -------------------------------------------------------------
_CLAUSE = re.compile(
    r"""\s*(?P<key>tags?\.(?:`[^`]+`|"[^"]+"|[\w.\-]+)|[\w.]+)\s*
        (?P<op>!=|=|\bNOT\s+LIKE\b|\bLIKE\b|\bILIKE\b|\bNOT\s+IN\b|\bIN\b)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^)]*\)|[-+\w.]+)\s*""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclasses.dataclass(frozen=True)
class Clause:
    """One comparison of a registry search filter (``key`` is ``name``, ``tags.<k>`` …)."""

    key: str
    op: str
    value: Any


def _literal(text: str) -> Any:
    if text[:1] in "'\"":
        return text[1:-1]
    if text.startswith("("):
        return [_literal(v.strip()) for v in text[1:-1].split(",") if v.strip()]
    return text


def parse(text: Any) -> list[Clause]:
    """``name = 'x' AND tags.k LIKE 'v%'`` → clauses; ``ValidationError`` for anything else."""
    if not text or not str(text).strip():
        return []
    out = []
    for part in re.split(r"\s+AND\s+", str(text).strip(), flags=re.IGNORECASE):
        found = _CLAUSE.fullmatch(part)
        if found is None:
            raise ValidationError(
                f"Unsupported registry filter {part!r}: use name = 'x', name LIKE 'x%', "
                "run_id = '…', run_id IN ('…'), tags.k = 'v', joined by AND."
            )
        key = found["key"]
        if key.lower().startswith("tag"):
            key = "tags." + key.split(".", 1)[1].strip('`"')
        op = " ".join(found["op"].upper().split())
        out.append(Clause(key, op, _literal(found["value"])))
    return out


def _field(view: dict[str, Any], key: str) -> Any:
    if key.startswith("tags."):
        tag = key[5:]
        return next((t["value"] for t in view.get("tags", []) if t["key"] == tag), None)
    if key == "source_path":
        return view.get("source")
    if key == "version_number":
        return view.get("version")
    return view.get(key)


def _holds(value: Any, op: str, want: Any) -> bool:
    if value is None:  # a missing tag differs from every value (MLflow 3 filters out prompts so)
        return op in ("!=", "NOT LIKE", "NOT IN")
    value = str(value)
    if op in ("IN", "NOT IN"):
        return (value in [str(w) for w in (want if isinstance(want, list) else [want])]) == (
            op == "IN"
        )
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        regex = "^" + ".*".join(re.escape(p).replace("_", ".") for p in str(want).split("%")) + "$"
        hit = re.match(regex, value, re.IGNORECASE if op == "ILIKE" else 0) is not None
        return bool(hit != (op == "NOT LIKE"))
    return bool((value == str(want)) == (op == "="))


def _matches_all(view: dict[str, Any], clauses: list[Clause]) -> bool:
    return all(_holds(_field(view, c.key), c.op, c.value) for c in clauses)


def _ordered(views: list[dict[str, Any]], order_by: Any, default: str) -> list[dict[str, Any]]:
    specs = [order_by] if isinstance(order_by, str) else list(order_by or [])
    out = sorted(views, key=lambda x: (str(x.get(default)), -int(x.get("version") or 0)))
    for spec in reversed(specs):
        words = str(spec).split()
        if not words:
            continue
        key = words[0].split(".", 1)[-1] if words[0].startswith("attributes.") else words[0]
        desc = len(words) > 1 and words[-1].upper() == "DESC"

        def sort_key(x: dict[str, Any], key: str = key) -> Any:
            value = _field(x, key)
            return int(value) if key in ("version", "version_number") else (value or "")

        out.sort(key=sort_key, reverse=desc)
    return out


def _page(views: list[dict[str, Any]], args: dict[str, Any], key: str) -> dict[str, Any]:
    limit = int(args.get("max_results") or 1000)
    if not 1 <= limit <= 200_000:
        raise ValidationError(f"max_results must be 1..200000, not {limit}.")
    token = str(args.get("page_token") or "0")
    start = int(token) if token.isdigit() else 0
    out: dict[str, Any] = {key: views[start : start + limit]}
    if start + limit < len(views):
        out["next_page_token"] = str(start + limit)
    return out


def dumps(obj: Any) -> str:
    """Compact JSON (for a plugin that round-trips these views through MLflow's protos)."""
    return json.dumps(obj, separators=(",", ":"))
