"""Bad numbers are rejected at the first command, with a one-line error naming the option and the allowed range,
exit code 2, and nothing planned."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from multicam_app import app
from render_jobs.cli_generate import DEMO_CATALOG

runner = CliRunner()


@pytest.mark.parametrize(("args", "words"), [
    (["--fps", "inf"], ["--fps", "finite"]),
    (["--fps", "nan"], ["--fps"]),
    (["--fps", "1e308"], ["--fps", "240"]),
    (["--width", "33"], ["--width", "even"]),
    (["--height", "31"], ["--height", "even"]),
])
def test_plan_rejects_bad_settings(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0",
                              "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for w in words:
        assert w in lines[0], res.output
    assert not (out / "plan").exists()


def _planned(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0",
                              "--out", str(out), "--width", "32", "--height", "32", "--frames", "4"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize(("args", "word"), [
    (["--backoff", "-1"], "--backoff"),
    (["--backoff", "inf"], "--backoff"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
])
def test_render_rejects_bad_numbers(tmp_path: Path, args: list[str], word: str) -> None:
    ds = _planned(tmp_path)
    res = runner.invoke(app, ["render", str(ds), "--backend", "test-synthetic", "--no-progress", *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {word}: must be a finite number"), res.output


def test_generate_no_progress_shows_no_bars(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["generate", "--out", str(out), "--scenes", "1", "--resolution", "32", "--frames", "4",
                              "--cameras", "2", "--backend", "test-synthetic", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "it/s" not in res.output and "scene/s" not in res.output and "%|" not in res.output, res.output
    assert "ok: 1 scene(s)" in res.output
