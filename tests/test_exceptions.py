"""``MissingExtraError``: a missing optional dependency says exactly what to install."""

from __future__ import annotations

import sys

import pytest

from trainyard.exceptions import MissingExtraError, extra_requirements, install_target


def test_extra_requirements_come_from_the_installed_metadata() -> None:
    assert "optuna>=4.0" in extra_requirements("hyperdrive")
    assert any(r.startswith("fastapi") for r in extra_requirements("serving"))
    assert extra_requirements("no-such-extra") == []
    assert install_target("serving").endswith("[serving]'")


def test_for_extra_names_the_packages_and_how_to_reinstall() -> None:
    err = MissingExtraError.for_extra("hyperdrive", "Bayesian sampling", "optuna")
    assert err.code == "MISSING_EXTRA"
    assert "Bayesian sampling needs optuna, which is not installed" in err.message
    assert "'optuna>=4.0'" in err.message and "'numpy>=1.24'" in err.message
    assert f"pip install {install_target('hyperdrive')}" in err.message
    assert err.details["extra"] == "hyperdrive" and err.details["module"] == "optuna"


def test_bayesian_sampling_without_optuna_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainyard.train.hyperdrive._space import quiet_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(MissingExtraError) as caught, quiet_optuna():
        pass
    assert "'optuna>=4.0'" in caught.value.message
    assert "[hyperdrive]" in caught.value.message


def test_trainyard_server_without_fastapi_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from trainyard.cli.server import require_server_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a)
    )
    with pytest.raises(MissingExtraError) as caught:
        require_server_extra()
    assert "trainyard server needs fastapi" in caught.value.message
    assert "[server]" in caught.value.message
