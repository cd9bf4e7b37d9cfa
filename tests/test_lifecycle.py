"""The run lifecycle: v1 status strings, client sets, and the one transition check."""

from __future__ import annotations

import pytest

from trainyard._lifecycle import (
    ACTIVE,
    POST_PROCESSING,
    RUNNING_SET,
    TERMINAL,
    RunStatus,
    allowed_next,
    can_transition,
    check_transition,
)
from trainyard.exceptions import InvalidStatusTransition, TrainyardError, ValidationError

S = RunStatus

V1_STRINGS = [
    "NotStarted",
    "Starting",
    "Provisioning",
    "Preparing",
    "Queued",
    "Running",
    "Finalizing",
    "CancelRequested",
    "Completed",
    "Failed",
    "Canceled",
    "NotResponding",
]

TYPICAL_PATH = [
    "NotStarted",
    "Starting",
    "Provisioning",
    "Preparing",
    "Queued",
    "Running",
    "Finalizing",
    "Completed",
]


def test_status_strings_are_v1s() -> None:
    assert sorted(s.value for s in RunStatus) == sorted(V1_STRINGS)
    for text in V1_STRINGS:
        status = RunStatus.parse(text)
        assert status == text and str(status) == text and f"{status}" == text


def test_client_sets() -> None:
    assert {s.value for s in TERMINAL} == {"Completed", "Failed", "Canceled"}
    assert {s.value for s in POST_PROCESSING} == {"CancelRequested", "Finalizing"}
    assert {s.value for s in RUNNING_SET} == {
        "NotStarted",
        "Queued",
        "Preparing",
        "Provisioning",
        "Starting",
        "Running",
        "NotResponding",
    }
    assert set(RunStatus) == TERMINAL | POST_PROCESSING | RUNNING_SET
    assert not (
        TERMINAL & POST_PROCESSING or TERMINAL & RUNNING_SET or POST_PROCESSING & RUNNING_SET
    )
    assert S.NOT_STARTED not in ACTIVE and S.QUEUED not in ACTIVE and not (ACTIVE & TERMINAL)


@pytest.mark.parametrize("status", list(RunStatus), ids=str)
def test_is_terminal_and_is_running(status: RunStatus) -> None:
    assert status.is_terminal() == (status.value in {"Completed", "Failed", "Canceled"})
    assert status.is_running() == (status in RUNNING_SET)


@pytest.mark.parametrize("bad", ["", "running", "Done", "COMPLETED", "Cancelled"])
def test_parse_rejects_unknown_statuses(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        RunStatus.parse(bad)
    assert repr(bad) in str(info.value) and "Completed" in str(info.value)


def test_parse_accepts_a_status() -> None:
    assert RunStatus.parse(S.RUNNING) is S.RUNNING


def test_typical_path_is_allowed() -> None:
    for old, new in zip(TYPICAL_PATH, TYPICAL_PATH[1:], strict=False):
        assert check_transition(old, new) == RunStatus(new)
    for ending in ("Failed", "CancelRequested"):
        assert can_transition("Running", ending)
    assert can_transition("Finalizing", "Failed")


def test_preparing_and_queued_in_either_order() -> None:
    assert can_transition("Preparing", "Queued") and can_transition("Queued", "Preparing")


@pytest.mark.parametrize("status", [s for s in RunStatus if not s.is_terminal()], ids=str)
def test_cancel_from_any_live_status(status: RunStatus) -> None:
    if status is not S.CANCEL_REQUESTED:
        assert can_transition(status, S.CANCEL_REQUESTED)
    assert can_transition(S.CANCEL_REQUESTED, S.CANCELED)


@pytest.mark.parametrize("status", [s for s in RunStatus if not s.is_terminal()], ids=str)
def test_live_status_may_be_set_again(status: RunStatus) -> None:
    assert can_transition(status, status)
    assert check_transition(status, status) is status


@pytest.mark.parametrize("old", sorted(TERMINAL), ids=str)
@pytest.mark.parametrize("new", list(RunStatus), ids=str)
def test_terminal_statuses_are_final(old: RunStatus, new: RunStatus) -> None:
    assert allowed_next(old) == frozenset()
    assert not can_transition(old, new)
    with pytest.raises(InvalidStatusTransition) as info:
        check_transition(old, new, "run-1")
    err = info.value
    assert isinstance(err, TrainyardError) and err.code == "BAD_TRANSITION"
    assert err.details == {"run_id": "run-1", "old": old.value, "new": new.value}
    assert f"from {old.value} to {new.value}" in str(err) and "'run-1'" in str(err)
    assert "final" in str(err)


def test_illegal_live_transition_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidStatusTransition) as info:
        check_transition("Finalizing", "Running")
    message = str(info.value)
    assert "from Finalizing to Running" in message
    for allowed in ("Completed", "Failed", "Canceled", "CancelRequested"):
        assert allowed in message


def test_cannot_complete_before_running() -> None:
    for early in ("NotStarted", "Starting", "Preparing", "Queued", "Provisioning"):
        assert not can_transition(early, "Completed")
        assert not can_transition(early, "Finalizing")


def test_not_responding_can_recover_or_end() -> None:
    assert can_transition("Running", "NotResponding")
    assert can_transition("NotResponding", "Running")
    assert can_transition("NotResponding", "Failed")


def test_every_status_has_a_rule() -> None:
    for status in RunStatus:
        nxt = allowed_next(status)
        assert status not in nxt
        if not status.is_terminal():
            assert nxt & TERMINAL or S.CANCEL_REQUESTED in nxt, status


def test_allowed_next_rejects_unknown() -> None:
    with pytest.raises(ValidationError):
        allowed_next("Bogus")
    with pytest.raises(ValidationError):
        can_transition("Running", "Bogus")
