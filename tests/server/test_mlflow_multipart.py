"""Multipart upload sessions on real files: parts in any order, a part sent again, only the creator
completes or aborts, one of two racing completes wins, a failed complete keeps the session, stale
sessions are pruned."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from trainyard._store.artifacts import LocalArtifactStore
from trainyard.server.mlflow_common import MlflowError
from trainyard.server.mlflow_multipart import MultipartUploads

DEST = "runs/r1/weights/model.bin"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[MultipartUploads, LocalArtifactStore]:
    return MultipartUploads(tmp_path / "mpu"), LocalArtifactStore(tmp_path / "files")


def _code(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except MlflowError as err:
        return err.code
    return "ok"


def test_parts_out_of_order_and_resent_join_in_part_order(
    setup: tuple[MultipartUploads, LocalArtifactStore],
) -> None:
    uploads, store = setup
    upload_id, secret = uploads.create(DEST, "r1", "tok", 3)
    e3 = uploads.receive_part(upload_id, 3, secret, io.BytesIO(b"ccc"))
    uploads.receive_part(upload_id, 1, secret, io.BytesIO(b"stale"))
    e1 = uploads.receive_part(upload_id, 1, secret, io.BytesIO(b"a" * 5))
    e2 = uploads.receive_part(upload_id, 2, secret, io.BytesIO(b""))
    assert e1.startswith('"') and e1 != e3
    size = uploads.complete(upload_id, "tok", DEST, [(1, e1), (2, e2), (3, e3.strip('"'))], store)
    assert size == 8
    assert store.read_bytes(DEST) == b"aaaaaccc"
    assert not any(uploads.folder.iterdir()), "the session's folder is gone"


def test_only_the_creator_completes_or_aborts(
    setup: tuple[MultipartUploads, LocalArtifactStore],
) -> None:
    uploads, store = setup
    upload_id, secret = uploads.create(DEST, "r1", "tok", 1)
    etag = uploads.receive_part(upload_id, 1, secret, io.BytesIO(b"x"))
    assert _code(lambda: uploads.complete(upload_id, "other", DEST, [(1, etag)], store)) == (
        "PERMISSION_DENIED"
    )
    assert _code(lambda: uploads.abort(upload_id, "other", DEST)) == "PERMISSION_DENIED"
    assert _code(lambda: uploads.abort(upload_id, "tok", "runs/r1/else.bin")) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert _code(lambda: uploads.receive_part(upload_id, 1, "bad", io.BytesIO(b"y"))) == (
        "PERMISSION_DENIED"
    )
    uploads.abort(upload_id, "tok", DEST)
    assert _code(lambda: uploads.complete(upload_id, "tok", DEST, [(1, etag)], store)) == (
        "RESOURCE_DOES_NOT_EXIST"
    )
    assert not store.exists(DEST)


def test_a_failed_complete_keeps_the_session_for_a_retry(
    setup: tuple[MultipartUploads, LocalArtifactStore],
) -> None:
    uploads, store = setup
    upload_id, secret = uploads.create(DEST, "r1", "tok", 2)
    e1 = uploads.receive_part(upload_id, 1, secret, io.BytesIO(b"1"))
    assert _code(lambda: uploads.complete(upload_id, "tok", DEST, [(1, e1), (2, e1)], store)) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert _code(lambda: uploads.complete(upload_id, "tok", DEST, [(2, e1), (1, e1)], store)) == (
        "INVALID_PARAMETER_VALUE"
    )
    assert not store.exists(DEST)
    e2 = uploads.receive_part(upload_id, 2, secret, io.BytesIO(b"2"))
    uploads.complete(upload_id, "tok", DEST, [(1, e1), (2, e2)], store)
    assert store.read_bytes(DEST) == b"12"


def test_of_two_racing_completes_one_wins(
    setup: tuple[MultipartUploads, LocalArtifactStore],
) -> None:
    uploads, store = setup
    upload_id, secret = uploads.create(DEST, "r1", "tok", 1)
    etag = uploads.receive_part(upload_id, 1, secret, io.BytesIO(b"z" * (4 << 20)))
    codes: list[str] = []

    def finish() -> None:
        codes.append(_code(lambda: uploads.complete(upload_id, "tok", DEST, [(1, etag)], store)))

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == ["RESOURCE_DOES_NOT_EXIST", "ok"]
    assert store.read_bytes(DEST) == b"z" * (4 << 20)


def test_bad_part_counts_and_ids_are_refused_and_stale_sessions_pruned(
    setup: tuple[MultipartUploads, LocalArtifactStore],
) -> None:
    uploads, _ = setup
    for bad in (0, 10_001, "3", True):
        assert _code(lambda b=bad: uploads.create(DEST, "r1", "tok", b)) == (  # type: ignore[misc]
            "INVALID_PARAMETER_VALUE"
        )
    assert _code(lambda: uploads.receive_part("../x", 1, "s", io.BytesIO())) == (
        "INVALID_PARAMETER_VALUE"
    )
    old_id, _ = uploads.create(DEST, "r1", "tok", 1)
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(uploads.folder / old_id, (day_ago, day_ago))
    new_id, _ = uploads.create(DEST, "r1", "tok", 1)
    assert sorted(p.name for p in uploads.folder.iterdir()) == [new_id]
