"""Compute targets: lookup by name, creation from provisioning configurations, the ``local`` target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainyard.core import Workspace
from trainyard.core.compute import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    LocalCompute,
)
from trainyard.core.compute.target import resolve_target
from trainyard.exceptions import ValidationError
from trainyard.testing.fixtures import BACKENDS, unique_name


@pytest.fixture(params=BACKENDS)
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    uri = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Workspace.create(unique_name("ws"), path=tmp_path / "ws", tracking_uri=uri)


def test_unknown_target_raises_compute_target_exception(ws: Workspace) -> None:
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget(workspace=ws, name="gpu-cluster")
    assert "gpu-cluster" in info.value.message


def test_v1_try_except_create_pattern(ws: Workspace) -> None:
    try:
        target = ComputeTarget(workspace=ws, name="cpu-cluster")
    except ComputeTargetException:
        cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2", max_nodes=2)
        target = ComputeTarget.create(ws, "cpu-cluster", cfg)
        target.wait_for_completion(show_output=False)
    assert isinstance(target, AmlCompute)
    assert target.name == "cpu-cluster"
    assert target.type == "amlcompute"
    assert target.provisioning_state == "Succeeded"
    assert target.max_concurrent_runs == 2

    again = ComputeTarget(workspace=ws, name="cpu-cluster")
    assert type(again) is AmlCompute
    assert again.max_concurrent_runs == 2
    status = again.get_status().serialize()
    assert status["provisioning_state"] == "Succeeded"
    assert status["scale_settings"]["maximum_node_count"] == 2
    assert status["scale_settings"]["minimum_node_count"] == 0
    assert status["vm_priority"] == "dedicated"


def test_aml_compute_defaults_follow_v1() -> None:
    cfg = AmlCompute.provisioning_configuration()
    assert cfg.vm_size == "STANDARD_NC6"
    assert cfg.min_nodes == 0 and cfg.max_nodes == 4
    assert cfg.idle_seconds_before_scaledown == 1800
    # network and identity arguments are accepted and ignored
    AmlCompute.provisioning_configuration(
        vnet_name="v", subnet_name="s", identity_type="SystemAssigned"
    )


def test_local_compute_with_capacity(ws: Workspace) -> None:
    target = ComputeTarget.create(
        ws, "one-at-a-time", LocalCompute.provisioning_configuration(max_concurrent_runs=1)
    )
    assert isinstance(target, LocalCompute)
    assert target.type == "local"
    assert target.max_concurrent_runs == 1
    assert ComputeTarget(ws, "one-at-a-time").max_concurrent_runs == 1


def test_workspace_lists_targets_including_local(ws: Workspace) -> None:
    assert "local" in ws.compute_targets
    ComputeTarget.create(ws, "cluster-a", AmlCompute.provisioning_configuration(max_nodes=2))
    targets = ws.compute_targets
    assert set(targets) == {"local", "cluster-a"}
    assert isinstance(targets["cluster-a"], AmlCompute)
    assert {t.name for t in ComputeTarget.list(ws)} == {"local", "cluster-a"}


def test_local_always_exists_with_machine_capacity(ws: Workspace) -> None:
    local = ComputeTarget(ws, "local")
    assert local.name == "local"
    assert local.max_concurrent_runs == (os.cpu_count() or 1)
    assert resolve_target(ws, None).name == "local"
    assert resolve_target(ws, local).name == "local"
    with pytest.raises(ComputeTargetException):
        local.delete()


def test_delete_removes_a_target(ws: Workspace) -> None:
    target = ComputeTarget.create(ws, "temp", AmlCompute.provisioning_configuration(max_nodes=1))
    target.delete()
    with pytest.raises(ComputeTargetException):
        ComputeTarget(ws, "temp")
    assert "temp" not in ws.compute_targets


def test_create_replaces_an_existing_target(ws: Workspace) -> None:
    ComputeTarget.create(ws, "c", AmlCompute.provisioning_configuration(max_nodes=1))
    ComputeTarget.create(ws, "c", AmlCompute.provisioning_configuration(max_nodes=3))
    assert ComputeTarget(ws, "c").max_concurrent_runs == 3


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "dots.not.allowed"])
def test_create_refuses_bad_names(ws: Workspace, name: str) -> None:
    with pytest.raises(ComputeTargetException):
        ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration())


def test_create_refuses_a_non_configuration(ws: Workspace) -> None:
    with pytest.raises(ComputeTargetException):
        ComputeTarget.create(ws, "c", {"max_nodes": 2})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_nodes": 0},
        {"min_nodes": 3, "max_nodes": 2},
        {"min_nodes": -1},
        {"vm_priority": "spot"},
    ],
)
def test_create_validates_the_configuration(ws: Workspace, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ComputeTarget.create(ws, "c", AmlCompute.provisioning_configuration(**kwargs))  # type: ignore[arg-type]
    assert "c" not in ws.compute_targets


def test_local_capacity_must_be_positive(ws: Workspace) -> None:
    with pytest.raises(ValidationError):
        ComputeTarget.create(
            ws, "c", LocalCompute.provisioning_configuration(max_concurrent_runs=0)
        )


def test_resolve_target_rejects_other_types(ws: Workspace) -> None:
    with pytest.raises(ComputeTargetException):
        resolve_target(ws, 42)
