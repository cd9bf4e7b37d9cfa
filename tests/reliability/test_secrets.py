"""A database credential never reaches a script, and the file that holds it is the owner's only
(issue: nothing lost, nobody in — item 5)."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from trainyard.core import Experiment, ScriptRunConfig, Workspace
from trainyard.testing.fixtures import unique_name

PASSWORD = "s3cret-7f3a9"


@pytest.mark.postgres
def test_a_database_password_never_reaches_the_script(postgres_url: str, tmp_path: Path) -> None:
    url = make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    ws = Workspace.create(unique_name("secret"), path=tmp_path / "ws", tracking_uri=url)
    meta = tmp_path / "ws" / "workspace.json"
    assert PASSWORD in meta.read_text()
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(
        textwrap.dedent(
            f"""
            import os
            from trainyard.core import Run
            leaked = sorted(k for k, v in os.environ.items() if {PASSWORD!r} in v)
            print("LEAKED", leaked, flush=True)
            Run.get_context().log("ok", 1)      # the script still reaches its run's store
            """
        )
    )
    run = Experiment(ws, "secret").submit(ScriptRunConfig(str(src), "train.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    log = run.read_log("user_logs/std_log.txt").decode()
    assert "LEAKED []" in log, log
    assert run.get_metrics()["ok"] == 1


def test_a_workspace_without_a_secret_keeps_readable_metadata(tmp_path: Path) -> None:
    Workspace.create(unique_name("plain"), path=tmp_path / "ws")
    mode = stat.S_IMODE((tmp_path / "ws" / "workspace.json").stat().st_mode)
    assert mode == 0o644
    # The database holds the services' keys: only its owner may read it.
    assert stat.S_IMODE((tmp_path / "ws" / "trainyard.db").stat().st_mode) == 0o600


def test_a_folder_made_for_a_workspace_is_the_owners_only(tmp_path: Path) -> None:
    Workspace.create(unique_name("fresh"), path=tmp_path / "new" / "ws")
    assert stat.S_IMODE((tmp_path / "new" / "ws").stat().st_mode) == 0o700
    # A folder that already existed (a project folder, say) keeps the mode its owner gave it.
    existing = tmp_path / "project"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    Workspace.create(unique_name("inplace"), path=existing)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
