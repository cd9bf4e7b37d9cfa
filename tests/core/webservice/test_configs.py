"""Deployment configurations (aml-reference §9.2): defaults and validation."""

from __future__ import annotations

import os

import pytest

from trainyard.core.webservice import (
    AciServiceDeploymentConfiguration,
    AciWebservice,
    LocalWebservice,
    LocalWebserviceDeploymentConfiguration,
    ServerOptions,
)
from trainyard.core.webservice._manager import Limits
from trainyard.exceptions import WebserviceException


def test_aci_defaults_are_v1s_but_key_auth_is_on() -> None:
    cfg = AciWebservice.deploy_configuration()
    assert isinstance(cfg, AciServiceDeploymentConfiguration)
    # v1's sizes; key auth on unless turned off (issue 11: v1's open default let any web page
    # call a laptop's service through DNS rebinding).
    assert (cfg.cpu_cores, cfg.memory_gb, cfg.auth_enabled) == (0.1, 0.5, True)
    assert AciWebservice.deploy_configuration(auth_enabled=False).auth_enabled is False
    assert cfg.worker_count == 1 and cfg.host == "127.0.0.1"
    assert cfg.to_dict()["serverOptions"] == ServerOptions().to_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_timeout_seconds": 0}, "run_timeout_seconds must be a positive number"),
        ({"body_timeout_seconds": -1}, "body_timeout_seconds must be a positive number"),
        ({"allowed_hosts": "a.example"}, "allowed_hosts must be a list of strings"),
        ({"allowed_origins": ["http://a b"]}, "without spaces or control characters"),
        ({"log_max_bytes": 10}, "log_max_bytes must be an integer of at least 1024"),
        ({"log_backups": -1}, "log_backups must be an integer of 0 or more"),
    ],
)
def test_server_options_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(WebserviceException, match=message):
        ServerOptions(**kwargs)


def test_server_options_round_trip_and_reach_the_command_line() -> None:
    opts = ServerOptions(
        run_timeout_seconds=None,
        allowed_hosts=["svc.example"],
        allowed_origins=["https://app.example"],
        log_max_bytes=4096,
        log_backups=2,
    )
    assert ServerOptions.from_dict(opts.to_dict()) == opts
    argv = opts.argv()
    assert argv[argv.index("--run-timeout") + 1] == "0"  # 0 = no limit
    assert argv[argv.index("--allowed-host") + 1] == "svc.example"
    assert argv[argv.index("--allowed-origin") + 1] == "https://app.example"
    assert argv[argv.index("--log-backups") + 1] == "2"
    with pytest.raises(WebserviceException, match="server_options must be a ServerOptions"):
        LocalWebservice.deploy_configuration(server_options={"x": 1})  # type: ignore[arg-type]


def test_aci_notebook_configuration() -> None:
    cfg = AciWebservice.deploy_configuration(
        cpu_cores=1,
        memory_gb=1,
        auth_enabled=True,
        tags={"name": "mnist", "framework": "Chainer"},
        description="Chainer DNN with MNIST",
    )
    data = cfg.to_dict()
    assert data["cpuCores"] == 1 and data["memoryInGB"] == 1 and data["authEnabled"] is True
    assert "primaryKey" not in data  # keys never go into the stored configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu_cores": 0}, "cpu_cores must be greater than zero"),
        ({"cpu_cores": "1"}, "cpu_cores"),
        ({"memory_gb": -1}, "memory_gb must be greater than zero"),
        ({"ssl_enabled": True}, "ssl_enabled"),
        ({"primary_key": ""}, "primary_key"),
        ({"worker_count": 0}, "worker_count"),
        ({"tags": ["a"]}, "tags must be a dict"),
    ],
)
def test_aci_invalid_values(kwargs: dict, message: str) -> None:
    with pytest.raises(WebserviceException, match=message):
        AciWebservice.deploy_configuration(**kwargs)


def test_aci_cloud_only_arguments_are_accepted() -> None:
    cfg = AciWebservice.deploy_configuration(
        location="westeurope", dns_name_label="x", enable_app_insights=True, vnet_name="v"
    )
    assert cfg.location == "westeurope"


@pytest.mark.parametrize("port", [0, 65536, -1, 1.5, "80", True])
def test_local_port_out_of_range(port: object) -> None:
    with pytest.raises(
        WebserviceException, match="port must be an integer in the range 1 to 65535"
    ):
        LocalWebservice.deploy_configuration(port=port)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [None, 1, 8890, 65535])
def test_local_valid_ports(port: int | None) -> None:
    cfg = LocalWebservice.deploy_configuration(port=port)
    assert isinstance(cfg, LocalWebserviceDeploymentConfiguration)
    assert cfg.port == port and cfg.to_dict()["computeType"] == "Local"


def test_limits_pick_ceil_cores_and_record_enforcement() -> None:
    usable = sorted(os.sched_getaffinity(0))
    one = Limits.for_request(0.1, 0.5, seed="svc")
    assert one.data_bytes == 512 * 1024**2
    if len(usable) > 1:
        assert one.cpus is not None and len(one.cpus) == 1 and one.cpus[0] in usable
    every = Limits.for_request(float(len(usable)), None, seed="svc")
    assert every.cpus is None  # all usable CPUs: nothing to pin
    assert "RLIMIT_DATA" in one.to_dict()["enforcement"]
