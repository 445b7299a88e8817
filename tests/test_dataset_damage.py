"""A damaged plan, manifest or job store is one precise line (file, what is wrong, the repair) from every command
that reads the dataset, exit code 2; the documented repair works and keeps finished scenes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_support import SYNTHETIC, generate_synthetic
from typer.testing import CliRunner

from multicam_app import app
from render_jobs.cli_generate import DEMO_CATALOG

runner = CliRunner()
PLAN = ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "2", "--seed", "0", "--width", "32", "--height", "32",
        "--frames", "4", "--cameras", "2"]


def _plan(out: Path) -> Path:
    res = runner.invoke(app, [*PLAN, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _hashes(ds: Path) -> dict[str, str]:
    return {str(p.relative_to(ds)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ds / "train").rglob("*")) if p.is_file()}


def _damage(ds: Path, kind: str) -> None:
    if kind == "garbage-store":
        (ds / "jobs.sqlite").write_bytes(b"this is not a database" * 100)
    elif kind == "truncated-plan":
        plan = ds / "plan" / "plan.json"
        plan.write_bytes(plan.read_bytes()[:20])
    elif kind == "garbage-manifest-line":
        with open(ds / "plan" / "manifest.jsonl", "a") as fh:
            fh.write('{"broken\n')
    elif kind == "deleted-store":
        for p in ds.glob("jobs.sqlite*"):
            p.unlink()


EXPECT = {
    "garbage-store": ("jobs.sqlite: damaged job store (file is not a database); move it aside and run the same "
                      "`multicam plan` command again"),
    "truncated-plan": "plan.json: damaged plan file (",
    "garbage-manifest-line": "manifest.jsonl:3: damaged manifest line (",
    "deleted-store": "jobs.sqlite: the job store lacks 2 of 2 planned jobs (first s000001); run `multicam repair ",
}


@pytest.mark.parametrize("kind", sorted(EXPECT))
@pytest.mark.parametrize("command", ["status", "render", "retry"])
def test_damaged_dataset_is_one_line(tmp_path: Path, kind: str, command: str) -> None:
    ds = _plan(tmp_path / "ds")
    _damage(ds, kind)
    args = [command, str(ds), *(SYNTHETIC if command == "render" else [])]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert EXPECT[kind] in res.output, res.output
    assert "Traceback" not in res.output


def test_generate_on_a_damaged_plan_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate_synthetic(out, scenes=1, size=32, frames=4, cameras=2)
    _damage(out, "truncated-plan")
    res = generate_synthetic(out, scenes=1, size=32, frames=4, cameras=2, expect=2)
    assert "plan.json: damaged plan file" in res.output, res.output


@pytest.mark.parametrize("kind", ["deleted-store", "garbage-store"])
def test_rebuilt_store_keeps_finished_scenes(tmp_path: Path, kind: str) -> None:
    ds = _plan(tmp_path / "ds")
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC])
    assert res.exit_code == 0, res.output
    before = _hashes(ds)
    assert len(before) >= 2 * 4  # 2 scenes x (2 videos + camera JSON + scene.json)
    _damage(ds, kind)
    if kind == "garbage-store":
        (ds / "jobs.sqlite").rename(tmp_path / "jobs.sqlite.damaged")  # the documented "move it aside"
    _plan(ds)  # the same plan command again rebuilds the store
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC])
    assert res.exit_code == 0, res.output
    assert "rendered 0, found complete 2" in res.output, res.output
    assert _hashes(ds) == before
    res = runner.invoke(app, ["status", str(ds)])
    assert "done 2" in res.output, res.output


def test_the_lost_store_message_names_a_repair_that_works(tmp_path: Path) -> None:
    """The deleted-store error gives a command; running exactly that command lets status read the dataset again."""
    import re
    import shlex

    ds = _plan(tmp_path / "ds")
    _damage(ds, "deleted-store")
    res = runner.invoke(app, ["status", str(ds)])
    assert res.exit_code == 2, res.output
    m = re.search(r"run `(multicam repair [^`]+)`", res.output)
    assert m, res.output
    repair = shlex.split(m.group(1))[1:]
    fixed = runner.invoke(app, repair)
    assert fixed.exit_code == 0, fixed.output
    after = runner.invoke(app, ["status", str(ds)])
    assert after.exit_code == 0 and "pending 2" in after.output.replace(":", ""), after.output
