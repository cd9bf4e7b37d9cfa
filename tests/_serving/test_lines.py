"""Whole lines in the service log, whichever thread writes."""

from __future__ import annotations

import io
import threading

import pytest

from trainyard._serving.lines import WholeLines, say


def _in_thread(fn: object) -> None:
    thread = threading.Thread(target=fn)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_line_another_thread_has_not_finished_is_kept_out_of_the_way() -> None:
    target = io.StringIO()
    out = WholeLines(target)
    _in_thread(lambda: out.write("init: ready"))  # print's text, its newline not yet written
    out.write("2026-12-05T00:03:30Z GET /ready 200 0.36ms\n")  # the event loop's access line
    assert target.getvalue() == "2026-12-05T00:03:30Z GET /ready 200 0.36ms\n"
    done = threading.Event()

    def finish_the_line() -> None:
        out.write("init: ready")
        out.write("\n")
        done.set()

    _in_thread(finish_the_line)
    assert done.is_set()
    assert target.getvalue().splitlines() == [
        "2026-12-05T00:03:30Z GET /ready 200 0.36ms",
        "init: ready",
    ]


def test_flush_passes_on_an_unfinished_line_and_print_works_through_it() -> None:
    target = io.StringIO()
    out = WholeLines(target)
    print("progress", end="", file=out)
    assert target.getvalue() == ""
    out.flush()
    assert target.getvalue() == "progress"
    print(" 50%", "done", sep="\n", file=out)
    assert target.getvalue() == "progress 50%\ndone\n"
    with pytest.raises(TypeError, match="must be str"):
        out.write(b"bytes")  # type: ignore[arg-type]


def test_say_writes_one_whole_line(capsys: pytest.CaptureFixture[str]) -> None:
    say("trainyard-serving: ready")
    say("trainyard-serving: failed:\ntraceback\n", error=True)
    captured = capsys.readouterr()
    assert captured.out == "trainyard-serving: ready\n"
    assert captured.err == "trainyard-serving: failed:\ntraceback\n"
