import io
import json

import pytest

from cmt_geo.errors import CanceledError
from cmt_geo.progress import JsonLinesProgress, NullProgress, Progress, TerminalProgress, check_canceled


@pytest.mark.parametrize(
    "progress", [NullProgress(), TerminalProgress(io.StringIO()), JsonLinesProgress(io.StringIO())]
)
def test_implementations_satisfy_the_protocol_and_cancel(progress: NullProgress) -> None:
    assert isinstance(progress, Progress)
    check_canceled(progress)  # not canceled yet: no error
    progress.cancel()
    assert progress.is_canceled()
    with pytest.raises(CanceledError, match="canceled"):
        check_canceled(progress)


def test_json_lines_progress_writes_one_object_per_report() -> None:
    stream = io.StringIO()
    progress = JsonLinesProgress(stream)
    progress.report(1, 4, "tile 1")
    progress.report(4, 4)
    progress.report(3, None, "counting")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records == [
        {"done": 1, "total": 4, "fraction": 0.25, "message": "tile 1"},
        {"done": 4, "total": 4, "fraction": 1.0, "message": ""},
        {"done": 3, "total": None, "fraction": None, "message": "counting"},
    ]


def test_terminal_progress_on_a_pipe_prints_plain_lines() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream, width=10, min_interval=0)
    progress.report(5, 10, "half")
    progress.report(10, 10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[#####-----]")
    assert "5/10" in lines[0]
    assert lines[0].endswith("half")
    assert lines[1].startswith("[##########]")
    assert "100.0%" in lines[1]
    assert "\r" not in stream.getvalue()


def test_terminal_progress_throttles_but_always_draws_the_end() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream, min_interval=3600)
    for done in range(1, 101):
        progress.report(done, 100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first report, then the finished one
    assert "100/100" in lines[-1]


def test_terminal_progress_unknown_total_counts() -> None:
    stream = io.StringIO()
    TerminalProgress(stream, min_interval=0).report(7, None, "tiles")
    assert stream.getvalue().startswith("7 done")
    assert "tiles" in stream.getvalue()


class _FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_redraws_in_place_on_a_terminal() -> None:
    stream = _FakeTty()
    progress = TerminalProgress(stream, min_interval=0)
    progress.report(1, 2)
    progress.report(2, 2)
    text = stream.getvalue()
    assert text.count("\r") == 2
    assert text.endswith("\n")
    assert text.count("\n") == 1
