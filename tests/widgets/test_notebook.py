"""``RunDetails(run).show()`` in a real Jupyter kernel, executed with nbclient: a notebook submits a
short real run, shows the widget (which returns at once) and waits; the executed notebook holds ONE
display output for the widget, updated in place to the run's final state."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import trainyard

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TRAIN = """\
import time
from trainyard.core import Run

run = Run.get_context()
for i in range(5):
    run.log("Accuracy", 0.5 + i / 10)
    time.sleep(0.3)
print("training done")
"""


class _Recording(nbclient.NotebookClient):  # type: ignore[misc]
    """Keeps every iopub message nbclient processes (``update_display_data`` included: nbclient
    folds those into the output they update, so the notebook alone does not show they came)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[dict[str, Any]] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.append(msg)
        return super().process_message(msg, cell, cell_index)


def _notebook(cells: list[str]) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _execute(nb: Any, cwd: Path) -> tuple[Any, _Recording]:
    client = _Recording(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb, client


def _submit_cell(tmp_path: Path, workspace: str) -> str:
    """A workspace and a source folder under ``tmp_path``; the cell that submits its script."""
    from trainyard.core import Workspace

    ws = Workspace.create(workspace, path=tmp_path / "ws")
    ws.write_config(path=tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN)
    package_root = str(Path(trainyard.__file__).resolve().parents[1])
    return f"""
            import sys
            sys.path.insert(0, {package_root!r})
            from trainyard.core import Experiment, ScriptRunConfig, Workspace
            from trainyard.widgets import RunDetails
            ws = Workspace.from_config(path={str(tmp_path)!r})
            run = Experiment(ws, "notebook").submit(ScriptRunConfig({str(src)!r}, "train.py"))
            """


def test_show_updates_one_output_in_place_until_the_run_ends(tmp_path: Path) -> None:
    nb = _notebook(
        [
            _submit_cell(tmp_path, "nb-widget"),
            """
            details = RunDetails(run, refresh_seconds=0.5)
            details.show()
            print("show returned while", run.get_status())
            run.wait_for_completion()
            assert details.wait(120), "the widget kept refreshing after the run ended"
            """,
            "print(run.get_status(), run.get_metrics()['Accuracy'][-1])",
        ]
    )
    nb, client = _execute(nb, tmp_path)
    shown = nb.cells[1].outputs
    displays = [o for o in shown if o.output_type == "display_data"]
    assert len(displays) == 1, shown
    html = displays[0].data["text/html"]
    assert 'data-status="Completed"' in html and "Accuracy" in html, html
    assert "0.9" in html  # the last logged value, in the metric's chart
    assert "<svg" in html
    assert "training done" in html  # the streamed log's tail
    printed = "".join(o.get("text", "") for o in shown if o.output_type == "stream")
    status_at_return = printed.split("show returned while", 1)[1].split()[0]
    assert status_at_return != "Completed", printed  # show() did not block the cell
    display_id = displays[0].transient["display_id"] if "transient" in displays[0] else None
    updates = [m for m in client.messages if m["msg_type"] == "update_display_data"]
    assert updates, "the output was never updated"
    ids = {m["content"]["transient"]["display_id"] for m in updates}
    assert len(ids) == 1 and (display_id is None or ids == {display_id})
    assert 'data-status="Completed"' in updates[-1]["content"]["data"]["text/html"]
    assert "Completed 0.9" in "".join(o.get("text", "") for o in nb.cells[2].outputs)


def test_show_wait_blocks_the_cell_until_the_run_ends(tmp_path: Path) -> None:
    nb = _notebook(
        [
            _submit_cell(tmp_path, "nb-widget-wait")
            + """
            RunDetails(run, refresh_seconds=0.5).show(wait=True)
            print("after show:", run.get_status())
            """,
        ]
    )
    nb, _ = _execute(nb, tmp_path)
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1
    assert 'data-status="Completed"' in displays[0].data["text/html"]
    assert "after show: Completed" in "".join(o.get("text", "") for o in outputs)
