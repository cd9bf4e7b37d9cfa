"""Conformance: environments, compute targets, models and web services."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from trainyard._store.base import TrackingStore
from trainyard._store.entities import (
    ComputeTargetRecord,
    EnvironmentRecord,
    ModelInfo,
    WebserviceRecord,
)
from trainyard.exceptions import (
    AlreadyExistsError,
    ComputeTargetException,
    ComputeTargetNotFound,
    EnvironmentNotFound,
    ImmutablePropertyError,
    ModelNotFoundException,
    NotFoundError,
    WebserviceException,
    WebserviceNotFound,
)
from trainyard.testing.store._base import (
    ConformanceBase,
    _name,
    _race,
)


class RegistryConformance(ConformanceBase):
    """Conformance: environments, compute targets, models and web services."""

    # -- environments -------------------------------------------------------------------------

    def test_environment_versions(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        spec1 = {"python": {"conda_dependencies": {"dependencies": ["numpy"]}}, "n": 1}
        spec2 = {**spec1, "n": 2}
        assert store.register_environment(ws.id, "env", spec1, "h1").version == 1
        assert store.register_environment(ws.id, "env", spec1, "h1").version == 1
        assert store.register_environment(ws.id, "env", spec2, "h2").version == 2
        assert store.register_environment(ws.id, "env", spec2, "h2").version == 2
        latest = store.get_environment(ws.id, "env")
        assert (latest.version, latest.spec, latest.spec_hash) == (2, spec2, "h2")
        assert isinstance(latest, EnvironmentRecord) and latest.name == "env"
        first = store.get_environment(ws.id, "env", 1)
        assert (first.version, first.spec) == (1, spec1)
        assert store.register_environment(ws.id, "other", spec1, "h1").version == 1
        assert [(e.name, e.version, e.spec) for e in store.list_environments(ws.id)] == [
            ("env", 2, spec2),
            ("other", 1, spec1),
        ]
        other_ws = store.ensure_workspace(_name("ws"))
        assert store.list_environments(other_ws.id) == []
        assert store.register_environment(other_ws.id, "env", spec2, "h2").version == 1

    def test_missing_environment(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(EnvironmentNotFound):
            store.get_environment(ws.id, "nope")
        store.register_environment(ws.id, "env", {"a": 1}, "h")
        with pytest.raises(EnvironmentNotFound):
            store.get_environment(ws.id, "env", 2)

    def test_concurrent_environment_registrations(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        versions = _race(
            8, lambda i: store.register_environment(ws.id, "env", {"i": i}, f"hash-{i}").version
        )
        assert sorted(versions) == list(range(1, 9))
        for i, v in enumerate(versions):
            record = store.get_environment(ws.id, "env", v)
            assert (record.version, record.spec) == (v, {"i": i})

    def test_concurrent_registrations_of_one_spec(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        versions = _race(
            8, lambda _: store.register_environment(ws.id, "env", {"a": 1}, "same").version
        )
        assert versions == [1] * 8
        assert [(e.name, e.version, e.spec) for e in store.list_environments(ws.id)] == [
            ("env", 1, {"a": 1})
        ]

    # -- compute targets ----------------------------------------------------------------------

    def test_compute_target_crud(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        assert store.list_compute_targets(ws.id) == []
        put = store.put_compute_target(
            ws.id, "cpu", "AmlCompute", {"vm_size": "STANDARD_D2_V2", "max": 4}
        )
        assert isinstance(put, ComputeTargetRecord) and put.name == "cpu"
        store.put_compute_target(ws.id, "local2", "local", {})
        got = store.get_compute_target(ws.id, "cpu")
        assert (got.target_type, got.config) == (
            "AmlCompute",
            {"vm_size": "STANDARD_D2_V2", "max": 4},
        )
        store.put_compute_target(ws.id, "cpu", "AmlCompute", {"max": 8})  # replace
        got = store.get_compute_target(ws.id, "cpu")
        assert (got.target_type, got.config) == ("AmlCompute", {"max": 8})
        assert [(t.name, t.target_type, t.config) for t in store.list_compute_targets(ws.id)] == [
            ("cpu", "AmlCompute", {"max": 8}),
            ("local2", "local", {}),
        ]
        other = store.ensure_workspace(_name("ws"))
        assert store.list_compute_targets(other.id) == []
        store.delete_compute_target(ws.id, "cpu")
        assert [t.name for t in store.list_compute_targets(ws.id)] == ["local2"]

    def test_concurrent_puts_of_one_compute_target(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        _race(6, lambda i: store.put_compute_target(ws.id, "cpu", "AmlCompute", {"i": i}))
        got = store.get_compute_target(ws.id, "cpu")
        assert got.target_type == "AmlCompute" and got.config["i"] in range(6)
        assert [t.name for t in store.list_compute_targets(ws.id)] == ["cpu"]

    def test_missing_compute_target(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(ComputeTargetNotFound) as info:
            store.get_compute_target(ws.id, "nope")
        assert isinstance(info.value, ComputeTargetException) and isinstance(
            info.value, NotFoundError
        )
        with pytest.raises(ComputeTargetNotFound):
            store.delete_compute_target(ws.id, "nope")

    # -- model registry -----------------------------------------------------------------------

    @staticmethod
    def _model(workspace_id: str, name: str, **kw: Any) -> ModelInfo:
        fields: dict[str, Any] = {
            "workspace_id": workspace_id,
            "name": name,
            "version": 0,
            "description": None,
            "tags": {},
            "properties": {},
            "run_id": None,
            "experiment_name": None,
            "framework": None,
            "framework_version": None,
            "created_at": time.time(),
            "storage_prefix": f"models/{name}/{uuid.uuid4().hex}",
            "model_root": "model.npz",
            "files": ("model.npz",),
        }
        fields.update(kw)
        return ModelInfo(**fields)

    def test_model_versions_round_trip(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        first = store.create_model(
            self._model(
                ws.id,
                "mnist",
                version=99,  # ignored: the store allocates versions
                description="d",
                tags={"t": "1"},
                properties={"p": "x"},
                run_id="run-1",
                experiment_name="exp",
                framework="Chainer",
                framework_version="7.8",
                model_root="outputs",
                files=("outputs/a.npz", "outputs/b.json"),
            )
        )
        assert first.version == 1
        assert (first.description, first.tags, first.properties) == ("d", {"t": "1"}, {"p": "x"})
        assert (first.run_id, first.experiment_name, first.framework, first.framework_version) == (
            "run-1",
            "exp",
            "Chainer",
            "7.8",
        )
        assert first.model_root == "outputs" and first.files == ("outputs/a.npz", "outputs/b.json")
        assert [store.create_model(self._model(ws.id, "mnist")).version for _ in range(2)] == [2, 3]
        assert store.get_model(ws.id, "mnist").version == 3
        assert store.get_model(ws.id, "mnist", 1) == first
        other = store.ensure_workspace(_name("ws"))
        assert store.create_model(self._model(other.id, "mnist")).version == 1

    def test_deleted_model_versions_are_never_reused(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        for _ in range(3):
            store.create_model(self._model(ws.id, "m"))
        gone = store.delete_model(ws.id, "m", 3)
        assert gone.version == 3
        assert store.get_model(ws.id, "m").version == 2
        with pytest.raises(ModelNotFoundException):
            store.get_model(ws.id, "m", 3)
        with pytest.raises(ModelNotFoundException):
            store.delete_model(ws.id, "m", 3)
        assert store.create_model(self._model(ws.id, "m")).version == 4
        assert [m.version for m in store.list_models(ws.id, name="m")] == [4, 2, 1]

    def test_list_models(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        for name, run_id in (("b", "r1"), ("a", "r1"), ("b", "r2"), ("a", None)):
            store.create_model(self._model(ws.id, name, run_id=run_id))
        assert [(m.name, m.version) for m in store.list_models(ws.id)] == [
            ("a", 2),
            ("a", 1),
            ("b", 2),
            ("b", 1),
        ]
        assert [(m.name, m.version) for m in store.list_models(ws.id, latest=True)] == [
            ("a", 2),
            ("b", 2),
        ]
        assert [(m.name, m.version) for m in store.list_models(ws.id, run_id="r1")] == [
            ("a", 1),
            ("b", 1),
        ]
        assert [m.version for m in store.list_models(ws.id, name="b")] == [2, 1]
        assert store.list_models(store.ensure_workspace(_name("ws")).id) == []

    def test_update_model(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_model(self._model(ws.id, "m", tags={"a": "1"}, properties={"p": "1"}))
        info = store.update_model(
            ws.id, "m", 1, tags={"b": "2"}, description="new", add_properties={"q": "2", "p": "1"}
        )
        assert (info.tags, info.description, info.properties) == (
            {"b": "2"},
            "new",
            {"p": "1", "q": "2"},
        )
        with pytest.raises(ImmutablePropertyError):
            store.update_model(
                ws.id, "m", 1, tags={"c": "3"}, description="x", add_properties={"r": "1", "p": "2"}
            )
        assert store.get_model(ws.id, "m", 1) == info  # nothing of the failing call stored
        with pytest.raises(ModelNotFoundException):
            store.update_model(ws.id, "m", 2, description="x")

    def test_missing_model(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(ModelNotFoundException):
            store.get_model(ws.id, "nope")
        with pytest.raises(ModelNotFoundException):
            store.delete_model(ws.id, "nope", 1)

    def test_concurrent_model_registrations(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        infos = _race(8, lambda i: store.create_model(self._model(ws.id, "m", description=str(i))))
        assert sorted(m.version for m in infos) == list(range(1, 9))
        for m in infos:
            assert store.get_model(ws.id, "m", m.version).description == m.description

    def test_concurrent_model_property_adds(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_model(self._model(ws.id, "m"))
        _race(6, lambda i: store.update_model(ws.id, "m", 1, add_properties={f"k{i}": str(i)}))
        assert store.get_model(ws.id, "m", 1).properties == {f"k{i}": str(i) for i in range(6)}

    # -- registered models (a name's record) ---------------------------------------------------

    def test_registered_model_records(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        empty = store.put_registered_model(ws.id, "reg", description="d", create=True)
        assert (empty.name, empty.description, empty.tags, empty.aliases) == ("reg", "d", {}, {})
        with pytest.raises(AlreadyExistsError):
            store.put_registered_model(ws.id, "reg", create=True)
        store.create_model(self._model(ws.id, "reg"))
        changed = store.put_registered_model(ws.id, "reg", tags={"a": "1"}, aliases={"prod": 1})
        assert (changed.description, changed.tags, changed.aliases) == (
            "d",
            {"a": "1"},
            {"prod": 1},
        )
        assert changed.created_at == empty.created_at
        assert store.get_registered_model(ws.id, "reg") == changed
        store.create_model(self._model(ws.id, "native"))  # versions, no record
        with pytest.raises(AlreadyExistsError):
            store.put_registered_model(ws.id, "native", create=True)
        with pytest.raises(ModelNotFoundException):
            store.get_registered_model(ws.id, "native")
        assert [r.name for r in store.list_registered_models(ws.id)] == ["reg"]
        other = store.ensure_workspace(_name("ws"))
        assert store.list_registered_models(other.id) == []

    def test_rename_model_moves_every_version(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.put_registered_model(ws.id, "old", description="d", create=True)
        for _ in range(2):
            store.create_model(self._model(ws.id, "old"))
        store.create_model(self._model(ws.id, "taken"))
        with pytest.raises(AlreadyExistsError):
            store.rename_model(ws.id, "old", "taken")
        with pytest.raises(ModelNotFoundException):
            store.rename_model(ws.id, "nope", "x")
        store.rename_model(ws.id, "old", "new")
        assert [m.version for m in store.list_models(ws.id, name="new")] == [2, 1]
        assert store.list_models(ws.id, name="old") == []
        assert store.get_registered_model(ws.id, "new").description == "d"
        with pytest.raises(ModelNotFoundException):
            store.get_registered_model(ws.id, "old")

    def test_delete_registered_model_deletes_versions(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.put_registered_model(ws.id, "gone", create=True)
        store.create_model(self._model(ws.id, "gone"))
        store.delete_registered_model(ws.id, "gone")
        assert store.list_models(ws.id, name="gone") == []
        with pytest.raises(ModelNotFoundException):
            store.get_registered_model(ws.id, "gone")
        with pytest.raises(ModelNotFoundException):
            store.delete_registered_model(ws.id, "gone")
        store.create_model(self._model(ws.id, "native"))
        store.delete_registered_model(ws.id, "native")  # versions only
        assert store.list_models(ws.id, name="native") == []

    # -- web services -------------------------------------------------------------------------

    def test_webservice_records(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        assert store.list_webservices(ws.id) == []
        made = store.create_webservice(
            ws.id, "svc", "Transitioning", {"port": 1, "models": ["m:1"]}
        )
        assert isinstance(made, WebserviceRecord) and made.name == "svc"
        with pytest.raises(AlreadyExistsError):
            store.create_webservice(ws.id, "svc", "Healthy", {})
        got = store.get_webservice(ws.id, "svc")
        assert (got.state, got.data) == ("Transitioning", {"port": 1, "models": ["m:1"]})
        assert store.update_webservice(ws.id, "svc", data={"port": 2, "pid": 7}) is True
        assert store.update_webservice(ws.id, "svc", state="Healthy") is True
        got = store.get_webservice(ws.id, "svc")
        assert (got.state, got.data) == ("Healthy", {"port": 2, "pid": 7, "models": ["m:1"]})
        assert got.updated_at >= got.created_at
        assert (
            store.update_webservice(ws.id, "svc", state="Failed", only_from=("Transitioning",))
            is False
        )
        assert store.get_webservice(ws.id, "svc").state == "Healthy"
        store.create_webservice(ws.id, "other", "Healthy", {})
        assert [w.name for w in store.list_webservices(ws.id)] == ["other", "svc"]
        assert store.list_webservices(store.ensure_workspace(_name("ws")).id) == []
        store.delete_webservice(ws.id, "svc")
        assert [w.name for w in store.list_webservices(ws.id)] == ["other"]

    def test_missing_webservice(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        with pytest.raises(WebserviceNotFound) as info:
            store.get_webservice(ws.id, "nope")
        assert isinstance(info.value, WebserviceException) and isinstance(info.value, NotFoundError)
        with pytest.raises(WebserviceNotFound):
            store.update_webservice(ws.id, "nope", state="Healthy")
        with pytest.raises(WebserviceNotFound):
            store.delete_webservice(ws.id, "nope")

    def test_webservice_state_compare_and_set_race(self, store: TrackingStore) -> None:
        ws = store.ensure_workspace(_name("ws"))
        store.create_webservice(ws.id, "svc", "Transitioning", {})
        won = _race(
            8,
            lambda i: store.update_webservice(
                ws.id, "svc", state=f"S{i}", data={"by": i}, only_from=("Transitioning",)
            ),
        )
        assert won.count(True) == 1
        got = store.get_webservice(ws.id, "svc")
        assert got.state == f"S{won.index(True)}" and got.data == {"by": won.index(True)}
