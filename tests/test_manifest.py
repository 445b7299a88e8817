"""The typed, hashed plan: a hand-edited manifest or plan.json is caught before anything renders, naming the scene
and the field; a backend receives a RenderJob with nothing left to decide; execute.py alone writes scene.json."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_support import SYNTHETIC
from typer.testing import CliRunner

from multicam_app import app
from render_jobs.backends import get_backend
from render_jobs.execute import JobContext
from render_jobs.planner import PlanError, iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import ManifestEntry, RenderJob, RenderSettings
from render_jobs.store import JobStore
from scene_catalog.loader import load_catalog
from scene_catalog.models import Catalog

ROOT = Path(__file__).resolve().parents[1]
CATALOG: dict[str, Any] = {
    "environments": [
        {"id": "plaza", "asset": "builtin:plaza", "size": "huge", "tags": ["outdoor"],
         "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 10}]},
        {"id": "room", "asset": "builtin:room", "size": "small", "tags": ["indoor"],
         "anchors": [{"location_cm": [-300, 40, 0], "free_radius_m": 4}]},
    ],
    "characters": [{"id": "ada", "asset": "builtin:mannequin", "height_m": 1.7}],
    "animations": [{"id": "walk", "asset": "builtin:walk", "length_frames": 120, "fps": 30, "loopable": True}],
}
SMALL = RenderSettings(width=32, height=32, frames=5, fps=15, samples=1)


@pytest.fixture()
def catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(CATALOG))
    return load_catalog(path)


def _plan(catalog: Catalog, out: Path) -> Path:
    plan_dataset(catalog, 3, 11, out, SMALL, n_cameras=2)
    return out


def _lines(ds: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (ds / "plan" / "manifest.jsonl").read_text().splitlines()]


def _write_lines(ds: Path, lines: list[dict[str, Any]]) -> None:
    (ds / "plan" / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _render_fails(ds: Path, log: Path) -> str:
    with pytest.raises(PlanError) as err:
        run_dataset(ds, "test-synthetic", progress=False, backend_options={"log_path": str(log)})
    assert not log.exists(), "a job rendered although the plan was damaged"
    return str(err.value)


def _edit(line: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for k in path:
        line = line[k]
    line[last] = value


@pytest.mark.parametrize(("field", "value", "named"), [
    ("seed", 12, "seed (planned 11, now 12)"),
    ("output_dir", None, "output_dir"),  # another scene's folder of the same camera set
    ("character.asset", "builtin:other", "character.asset"),
    ("animation.length_frames", 99, "animation.length_frames"),
    ("placement.yaw_deg", 1.5, "placement.yaw_deg"),
    ("layout_seed", 5, "layout_seed"),
])
def test_an_edited_manifest_field_is_named_before_any_render(tmp_path: Path, catalog: Catalog, field: str,
                                                             value: Any, named: str) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    lines = _lines(ds)
    if field == "output_dir":
        folder = lines[1]["output_dir"].rsplit("/", 1)[0]
        value = f"{folder}/scene77"
    _edit(lines[1], field, value)
    _write_lines(ds, lines)
    msg = _render_fails(ds, tmp_path / "log.txt")
    assert "scene 2 (s000002)" in msg and named in msg, msg
    assert "multicam plan" in msg  # the repair


def test_a_consistently_edited_camera_set_is_caught_by_the_hash(tmp_path: Path, catalog: Catalog) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    lines = _lines(ds)
    smp = lines[0]["sampler"]
    new = 3 if smp["camera_set"] != 3 else 0
    focal, ap = [(18.0, 10.0), (24.0, 5.0), (35.0, 2.4), (50.0, 2.4)][new]
    smp.update(camera_set=new, focal_mm=focal, aperture=ap)
    lines[0]["output_dir"] = f"train/f{focal:g}_aperture{ap:g}/scene1"
    _write_lines(ds, lines)
    msg = _render_fails(ds, tmp_path / "log.txt")
    assert "scene 1 (s000001)" in msg and "sampler.camera_set" in msg, msg


@pytest.mark.parametrize(("field", "value", "named"), [
    ("sampler.camera_set", 9, "sampler.camera_set"),
    ("sampler.radius_m", 4.0, "sampler"),  # not one of the allowed radii
    ("seed", -1, "seed"),
    ("output_dir", "../../etc", "output_dir"),
    ("job_id", "s000009", "job_id"),
    ("placement.location_cm", [1e400, 0, 0], "placement.location_cm"),
])
def test_an_invalid_manifest_field_is_named_with_file_and_line(tmp_path: Path, catalog: Catalog, field: str,
                                                               value: Any, named: str) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    lines = _lines(ds)
    _edit(lines[2], field, value)
    _write_lines(ds, lines)
    msg = _render_fails(ds, tmp_path / "log.txt")
    assert "manifest.jsonl:3" in msg and f"field {named}" in msg, msg


def test_edited_frames_in_plan_json_are_named(tmp_path: Path, catalog: Catalog) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    plan_file = ds / "plan" / "plan.json"
    head = json.loads(plan_file.read_text())
    head["settings"]["frames"] = 9
    plan_file.write_text(json.dumps(head))
    msg = _render_fails(ds, tmp_path / "log.txt")
    assert "settings.frames (planned 5, now 9)" in msg, msg


def test_render_cli_reports_an_edited_manifest_in_one_line_and_replanning_repairs_it(tmp_path: Path) -> None:
    cat = tmp_path / "c.yaml"
    cat.write_text(yaml.safe_dump(CATALOG))
    ds = tmp_path / "ds"
    runner = CliRunner()
    plan_args = ["plan", "--catalog", str(cat), "--scenes", "2", "--seed", "4", "--out", str(ds), "--width", "32",
                 "--height", "32", "--frames", "4", "--cameras", "2"]
    assert runner.invoke(app, plan_args).exit_code == 0
    original = (ds / "plan" / "manifest.jsonl").read_bytes()
    lines = _lines(ds)
    lines[0]["seed"] = 5
    _write_lines(ds, lines)
    for cmd in (["render", str(ds), *SYNTHETIC], ["status", str(ds)]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2, res.output
        assert "scene 1 (s000001) differs from the plan: seed (planned 4, now 5)" in res.output
        assert "Traceback" not in res.output
    assert runner.invoke(app, plan_args).exit_code == 0  # the same plan command restores the manifest
    assert (ds / "plan" / "manifest.jsonl").read_bytes() == original
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC])
    assert res.exit_code == 0, res.output


def test_manifest_entries_are_typed_versioned_and_hashed(tmp_path: Path, catalog: Catalog) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    entries = list(iter_manifest(ds))
    assert all(isinstance(e, ManifestEntry) and e.manifest_version == 1 for e in entries)
    with JobStore.for_dataset(ds) as store:
        recorded = store.planned_entries()
    for e, line in zip(entries, (ds / "plan" / "manifest.jsonl").read_text().splitlines(), strict=True):
        sha, js = recorded[e.job_id]
        assert sha == e.content_sha256() and js == line == e.canonical_json()
    # a plan is a pure function of its arguments: planning again elsewhere gives the same bytes
    again = _plan(catalog, tmp_path / "again")
    assert (again / "plan" / "manifest.jsonl").read_bytes() == (ds / "plan" / "manifest.jsonl").read_bytes()


class _Recorder:
    """A backend that records the job it receives and renders it with the synthetic test backend."""

    name = "recorder"

    def __init__(self) -> None:
        self.jobs: list[RenderJob] = []
        self.inner = get_backend("test-synthetic")

    def resources(self) -> dict[str, float]:
        return {"num_cpus": 1.0}

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        self.jobs.append(job)
        return self.inner.render(job, out_dir)

    def close(self) -> None:
        pass


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _leaves(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), value)]


def test_a_backend_receives_a_job_with_nothing_left_to_decide(tmp_path: Path, catalog: Catalog) -> None:
    ds = _plan(catalog, tmp_path / "ds")
    ctx = JobContext(ds, "test-synthetic")
    rec = _Recorder()
    ctx._backend = rec
    entry = next(iter_manifest(ds))
    out = ctx.execute(entry)
    assert out.ok, out.error
    (job,) = rec.jobs
    # fully typed and valid: a round trip through JSON is the same job
    assert RenderJob.model_validate_json(job.to_json()) == job
    dumped = job.model_dump(mode="json", exclude={"scene"})
    for name, value in _leaves(dumped):
        assert value is not None, f"{name} left open"
    frames = job.settings.frames
    for cam in job.cameras:
        assert np.asarray(cam.poses_ue).shape == (frames, 4, 4)
        focus = cam.focus_array_cm()
        assert focus.shape == (frames, 3)
        # the focus point is the character's aim point, on each camera's optical axis (the poses aim at it)
        aim = np.asarray(job.scene["character"]["aim_point_cm"])  # type: ignore[index]
        assert np.allclose(focus, aim)
    assert job.layout_seed == entry.layout_seed
    # the same entry gives the same job (materialize is a pure function of it)
    settings, n_cam = load_settings(ds)
    assert materialize(entry, settings, n_cam) == job
    # scene.json = the plan's scene record + the backend's record, written by execute
    scene = json.loads((ds / job.output_dir / "scene.json").read_text())
    assert scene["backend"] == "recorder" and scene["renderer"] == {"name": "test-synthetic"}
    assert {k: scene[k] for k in job.scene} == json.loads(json.dumps(job.scene))


def test_a_backend_cannot_rewrite_plan_fields_of_scene_json(tmp_path: Path, catalog: Catalog) -> None:
    ds = _plan(catalog, tmp_path / "ds")

    class Liar(_Recorder):
        def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
            super().render(job, out_dir)
            return {"cameras": {}}

    ctx = JobContext(ds, "test-synthetic")
    ctx._backend = Liar()
    out = ctx.execute(next(iter_manifest(ds)))
    assert not out.ok and "plan fields ['cameras']" in (out.error or "")


_BACKEND_SOURCES = [*sorted((ROOT / "render_jobs" / "blender").glob("*.py")),
                    ROOT / "render_jobs" / "blender_backend.py", ROOT / "render_jobs" / "unreal_backend.py",
                    *sorted((ROOT / "ue_scripts").glob("*.py"))]


@pytest.mark.parametrize("path", _BACKEND_SOURCES, ids=lambda p: p.name)
def test_backends_draw_no_random_numbers_of_their_own(path: Path) -> None:
    """Every generator a backend makes is seeded from the job's layout seed (the plan's draw), none from time,
    the scene id or a constant; no `random` module; and no backend writes scene.json."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert "random" not in names and "secrets" not in names, f"{path.name}:{node.lineno} imports random"
        if isinstance(node, ast.Call):
            text = ast.unparse(node.func)
            if text.endswith(("default_rng", "RandomState", "random.seed", "SeedSequence")):
                args = [ast.unparse(a) for a in node.args]
                assert args == ["job.layout_seed"], f"{path.name}:{node.lineno}: {ast.unparse(node)}"
        if isinstance(node, ast.Constant) and node.value == "scene.json":
            pytest.fail(f"{path.name}:{node.lineno} names scene.json: only render_jobs/execute.py writes it")
