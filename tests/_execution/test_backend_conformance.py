"""The local-process backend passes the shipped backend conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard._execution.backends.local import LocalProcessBackend
from trainyard.core import Workspace
from trainyard.core.compute import ComputeTarget, LocalCompute
from trainyard.testing.backend import (
    BackendConformance,
    BackendEnv,
    fast_liveness,
    kill_owner_by_pid,
)
from trainyard.testing.fixtures import unique_name


class TestLocalBackend(BackendConformance):
    @pytest.fixture
    def backend_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BackendEnv:
        fast_liveness(monkeypatch)
        ws = Workspace.create(unique_name("ws"), path=tmp_path / "ws")
        ComputeTarget.create(
            ws, "one", LocalCompute.provisioning_configuration(max_concurrent_runs=1)
        )
        ComputeTarget.create(
            ws, "two", LocalCompute.provisioning_configuration(max_concurrent_runs=2)
        )
        env = BackendEnv(
            workspace=ws, target="one", wide_target="two", kill_owner=kill_owner_by_pid
        )
        assert isinstance(env.backend(), LocalProcessBackend)
        return env
