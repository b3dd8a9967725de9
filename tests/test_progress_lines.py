"""The [llmbench] progress lines never share a line with pytest's progress characters."""

from __future__ import annotations

import re

import pytest

from pytest_llmbench.report.progress_lines import shorten

# pytest's progress characters after a test file's name: "bench/test_load.py .F"
PROGRESS = re.compile(r"\.py ([.FEsxX]+)")

ANNOUNCING_SUITE = {
    "conftest": """
        import pytest
        from pytest_llmbench.report.progress_lines import write_line

        @pytest.fixture
        def announce(request):
            message = "starting a server for " + request.node.name + " " + "z" * 150
            write_line(request.config, "[llmbench] " + message)
            yield
    """,
    "test_cells": """
        def test_one(announce):
            pass

        def test_two(announce):
            assert False

        def test_three(announce):
            pass
    """,
}


FULL = [
    f"[llmbench] starting a server for {name} " + "z" * 150
    for name in ("test_one", "test_two", "test_three")
]


def check_separate(lines: list[str]) -> list[str]:
    """Every [llmbench] line is a line of its own, and every progress character is on a line
    of pytest's own (none was carried onto a progress line); returns the [llmbench] lines."""
    ours = [line for line in lines if "[llmbench]" in line]
    assert ours, lines
    for line in ours:
        assert line.startswith("[llmbench] "), line
        assert not PROGRESS.search(line), line
        assert not re.search(r"[.FEsxX]{2,}(\s*\[\s*\d+%\])?$", line), line
        assert "%]" not in line, line
    return ours


@pytest.mark.parametrize("verbosity", ["-q", "", "-v"])
def test_lines_written_during_setup_keep_pytest_progress_intact(
    pytester: pytest.Pytester, verbosity: str
) -> None:
    pytester.makeconftest(ANNOUNCING_SUITE["conftest"])
    pytester.makepyfile(test_cells=ANNOUNCING_SUITE["test_cells"])
    args = [a for a in (verbosity,) if a]
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)
    result.assert_outcomes(passed=2, failed=1)
    lines = result.outlines
    ours = check_separate(lines)
    assert len(ours) == 3
    if verbosity == "-q":  # short: one terminal-wide line
        assert all(len(line) < 120 and line.endswith("…") for line in ours), ours
        chars = "".join(
            re.sub(r"\s*\[\s*\d+%\]$", "", line)
            for line in lines
            if re.fullmatch(r"[.FEsxX]+(\s+\[\s*\d+%\])?", line)
        )
        assert chars == ".F."
    elif verbosity == "":  # the characters follow the file name, each after its own line
        assert "".join(m.group(1) for line in lines if (m := PROGRESS.search(line))) == ".F."
        assert ours == FULL
    else:
        for name, word in (("test_one", "PASSED"), ("test_two", "FAILED")):
            assert any(re.match(rf"test_cells\.py::{name} {word}", line) for line in lines), lines
        assert ours == FULL
        assert "" not in lines[lines.index(FULL[0]) : lines.index(FULL[2])]  # no blank lines


def test_live_logging_shows_the_record_once(pytester: pytest.Pytester) -> None:
    """With --log-cli-level pytest prints the log record itself; the line is not written twice."""
    pytester.makeconftest(
        """
        import pytest
        from pytest_llmbench.keys import SESSION_KEY

        @pytest.fixture(autouse=True)
        def announce(request):  # the run's own progress callback
            request.config.stash[SESSION_KEY].progress("starting a server for " + request.node.name)
        """
    )
    pytester.makepyfile(test_cells="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--log-cli-level=INFO")
    result.assert_outcomes(passed=1)
    hits = [line for line in result.outlines if "starting a server for test_one" in line]
    assert len(hits) == 1, result.outlines
    assert "[llmbench]" not in hits[0] and "INFO" in hits[0]


def test_shorten_keeps_the_first_line_within_the_width() -> None:
    assert shorten("short", 80) == "short"
    assert shorten("a" * 100 + "\nsecond", 40) == "a" * 38 + "…"


def test_real_run_never_mixes_progress_characters_and_llmbench_lines(bench_project) -> None:  # type: ignore[no-untyped-def]
    bench_project.write()
    result = bench_project.run(subprocess=True)
    result.assert_outcomes(passed=6)
    lines = result.outlines
    ours = check_separate(lines)
    assert any(
        line.startswith("[llmbench] starting llama-server for smollm2-135m-Q4_1") for line in ours
    )
    chars = "".join(m.group(1) for line in lines if (m := PROGRESS.search(line)))
    assert chars == "......", lines
