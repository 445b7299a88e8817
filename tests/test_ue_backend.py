"""The ``unreal`` backend outside the editor: configuration, command line, log parsing, and the
launcher driving a fake ``UnrealEditor-Cmd`` (tests/ue_support/fake_editor.py, which runs the real
``ue_scripts/render_job.py`` on the fake ``unreal``) through success and the real failure modes,
directly and through the job store + local executor."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from exporters.camera_json import CAMERA_FILE, read_camera_json
from exporters.video import probe_video, read_video_frames
from multicam.conventions import ue_location_rotator_to_matrix
from render_jobs.backend import Backend, RenderError
from render_jobs.backends import get_backend
from render_jobs.execute import render_scene
from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
from render_jobs.runner import run_dataset
from render_jobs.schema import RenderSettings
from render_jobs.store import JobStore, pid_alive
from render_jobs.unreal_backend import (
    SCRIPT,
    UnrealBackend,
    UnrealConfig,
    UnrealConfigError,
    build_command,
    camera_locations_rotators,
    load_config,
    parse_engine_log,
)
from render_jobs.verify import verify_scene_dir
from scene_catalog.loader import load_catalog

sys.path.insert(0, str(Path(__file__).parent))
from ue_support.fake_editor import write_fake_editor, write_fake_project  # noqa: E402
from ue_support.jobs import ANIM, MAP, MESH, make_job  # noqa: E402

ASSETS = {MAP: "World", MESH: "SkeletalMesh", ANIM: "AnimSequence"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_fake_project(tmp_path / "MultiCam.uproject", ASSETS)


def backend(tmp_path: Path, project: Path, mode: str = "ok", **options: Any) -> UnrealBackend:
    exe = write_fake_editor(tmp_path / "Engine" / "Binaries" / "Linux", mode)
    return UnrealBackend(editor=str(exe), project=str(project), work_root=str(tmp_path / "work"), **options)


# -- configuration, command line, logs ------------------------------------------------------------------


def test_config_precedence_file_env_options(tmp_path: Path) -> None:
    f = tmp_path / "ue.yaml"
    f.write_text(yaml.safe_dump({"unreal": {"editor": "/opt/UE/UnrealEditor-Cmd", "project": "/p/A.uproject",
                                            "timeout_s": 100, "extra_args": ["-dx12"]}}))
    cfg = load_config(f, env={})
    assert (str(cfg.editor), str(cfg.project), cfg.timeout_s, cfg.extra_args) == (
        "/opt/UE/UnrealEditor-Cmd", "/p/A.uproject", 100, ["-dx12"])
    env = {"MULTICAM_UE_CONFIG": str(f), "MULTICAM_UE_PROJECT": "/q/B.uproject", "MULTICAM_UE_TIMEOUT_S": "50"}
    cfg = load_config(env=env, timeout_s=20)
    assert (str(cfg.project), cfg.timeout_s) == ("/q/B.uproject", 20)
    assert load_config(env={"MULTICAM_UE_EDITOR": "/e", "MULTICAM_UE_PROJECT": "/p"}).num_gpus == 1


def test_config_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(UnrealConfigError, match="editor and project not configured.*MULTICAM_UE_EDITOR"):
        load_config(env={})
    bad = tmp_path / "ue.json"
    bad.write_text(json.dumps({"editor": "/e", "project": "/p", "timeout_s": -1, "content_folder": "Game/x"}))
    with pytest.raises(UnrealConfigError, match=r"ue\.json: invalid Unreal config: timeout_s: .*content_folder"):
        load_config(bad, env={})
    with pytest.raises(UnrealConfigError, match="nope.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml", env={})


def test_exact_command_line(tmp_path: Path) -> None:
    cfg = UnrealConfig(editor=Path("/UE/UnrealEditor-Cmd"), project=Path("/p/A.uproject"), extra_args=["-dx12"])
    assert build_command(cfg, tmp_path / "editor.log") == [
        "/UE/UnrealEditor-Cmd", "/p/A.uproject", f"-ExecutePythonScript={SCRIPT}",
        "-unattended", "-nosplash", "-nopause", "-nosound", "-NoLoadingScreen", "-RenderOffscreen",
        "-stdout", "-FullStdOutLogOutput", f"-abslog={tmp_path / 'editor.log'}", "-dx12",
    ]
    assert SCRIPT.is_file()


def test_parse_engine_log() -> None:
    log = "\n".join([
        "[2026.11.25-12.00.00:001][  0]LogInit: Display: Running engine",
        "[2026.11.25-12.00.00:002][  1]LogPython: Error: multicam: job s1 failed: animation asset not found",
        "[2026.11.25-12.00.00:003][  2]LogShaderCompilers: Warning: slow",
        "[2026.11.25-12.00.00:004][  3]LogPython: Error: multicam: job s1 failed: animation asset not found",
        "[2026.11.25-12.00.00:005][  4]LogWindows: Error: Fatal error: [File:X.cpp] "
        "Unhandled Exception: EXCEPTION_ACCESS_VIOLATION",
        "Assertion failed: IsInGameThread() [File:Y.cpp] [Line: 12]",
    ])
    assert parse_engine_log(log) == [
        "LogPython: multicam: job s1 failed: animation asset not found",
        "LogWindows: Fatal error: [File:X.cpp] Unhandled Exception: EXCEPTION_ACCESS_VIOLATION",
        "Assertion failed: IsInGameThread() [File:Y.cpp] [Line: 12]",
    ]


def test_rotators_are_unwrapped_over_time() -> None:
    yaw = np.linspace(170.0, 200.0, 7)  # crosses +-180
    poses = ue_location_rotator_to_matrix(np.zeros((7, 3)), np.stack([np.full(7, -10.0), yaw, np.zeros(7)], -1))
    loc, rot = camera_locations_rotators(poses)
    assert np.abs(np.diff(rot[:, 1])).max() < 10.0  # no 360 jump between frames
    np.testing.assert_allclose(ue_location_rotator_to_matrix(loc, rot), poses, atol=1e-12)


def test_builtin_assets_are_rejected(tmp_path: Path, project: Path) -> None:
    job = make_job(frames=3, size=16)
    job.environment.asset = "builtin:plaza"
    with pytest.raises(RenderError, match="builtin:plaza.*Blender demo asset"):
        render_scene(backend(tmp_path, project), job, tmp_path / "out")


def test_missing_editor_is_a_clear_error(tmp_path: Path, project: Path) -> None:
    b = UnrealBackend(editor=str(tmp_path / "nope"), project=str(project))
    with pytest.raises(RenderError, match="UnrealEditor-Cmd not found.*'editor'"):
        render_scene(b, make_job(frames=3, size=16), tmp_path / "out")


def test_project_without_required_plugins_is_rejected(tmp_path: Path) -> None:
    project = write_fake_project(tmp_path / "P.uproject", ASSETS, plugins=("SequencerScripting",))
    with pytest.raises(RenderError, match="plugins not enabled: PythonScriptPlugin, MovieRenderPipeline"):
        render_scene(backend(tmp_path, project), make_job(frames=3, size=16), tmp_path / "out")


# -- the launcher with a fake UnrealEditor-Cmd ------------------------------------------------------------


def test_render_produces_verified_scene_folder(tmp_path: Path, project: Path) -> None:
    job = make_job(n_cameras=3, frames=5, size=32, keep_frames=False)
    b = backend(tmp_path, project)
    assert isinstance(b, Backend) and b.resources() == {"num_cpus": 4.0, "num_gpus": 1.0}
    out = tmp_path / "out"
    out.mkdir()
    render_scene(b, job, out)
    assert verify_scene_dir(job, out) == []
    for c in range(3):
        info = probe_video(out / "videos" / f"cam0{c + 1}.mp4")
        assert (info.frames, info.width, info.height) == (5, 32, 32)
        frames = read_video_frames(out / "videos" / f"cam0{c + 1}.mp4")
        # the fake renderer's pixels: left half = camera, right half = frame (H.264 is lossy: +-4)
        assert abs(int(frames[0][16, 4, 0]) - (40 + 20 * c)) <= 4
        assert [abs(int(fr[16, 28, 1]) - (10 + 7 * f)) <= 4 for f, fr in enumerate(frames)] == [True] * 5
    poses, names = read_camera_json(out / CAMERA_FILE)
    assert names == ["cam01", "cam02", "cam03"]
    np.testing.assert_allclose(poses, job.poses_array(), atol=1e-6)
    scene = json.loads((out / "scene.json").read_text())
    assert scene["backend"] == "unreal" and scene["renderer"]["engine_version"].startswith("5.6")
    assert scene["radius_m"] == job.scene["radius_m"]
    assert sorted(p.name for p in out.iterdir()) == ["cameras", "scene.json", "videos"]
    assert list((tmp_path / "work").iterdir()) == []  # work folder removed after success


@pytest.mark.parametrize("mode, message", [
    ("exit_nonzero", r"exited with code 1\. Engine errors: LogD3D12RHI: GPU crash detected: DXGI_ERROR_DEVICE_REMOVED"),
    ("crash", r"crashed \(signal 11 SIGSEGV\)\. Engine errors: .*EXCEPTION_ACCESS_VIOLATION"),
    ("mrq_error", r"Unreal job failed: Movie Render Queue failed .*failed jobs=\['cam02'\].*injected failure"),
    ("hang", r"exceeded the time limit of 4 s and was killed"),
    ("no_quit", r"exceeded the time limit of 4 s"),
    ("log_error", r"engine logged errors during the render: LogMovieRenderPipeline: Failed to write output"),
])
def test_failures_become_render_errors(tmp_path: Path, project: Path, mode: str, message: str) -> None:
    # Only the hanging modes need a short limit; the others get room for a slow, busy machine.
    b = backend(tmp_path, project, mode, timeout_s=4 if mode in ("hang", "no_quit") else 120)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RenderError, match=message) as err:
        render_scene(b, make_job(frames=4, size=16), out)
    work = next((tmp_path / "work").iterdir())  # kept for inspection, named in the message
    assert str(work / "editor.log") in str(err.value)
    pid = int((work / "fake_editor.pid").read_text())
    assert not pid_alive(pid)  # the editor (and its process group) is gone
    assert not (out / "videos").exists() or not any((out / "videos").iterdir())


# -- through the job store and the local executor --------------------------------------------------------


def ue_catalog(tmp_path: Path) -> Path:
    cat = {
        "environments": [{"id": "town", "asset": MAP, "size": "huge", "tags": ["outdoor"],
                          "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 10}]}],
        "characters": [{"id": "hero", "asset": MESH, "height_m": 1.8}],
        "animations": [{"id": "walk", "asset": ANIM, "length_frames": 120, "fps": 30, "loopable": True}],
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("session_jobs", [1, 3])
def test_job_store_records_each_outcome(tmp_path: Path, project: Path, session_jobs: int) -> None:
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(ue_catalog(tmp_path)), 5, 3, ds,
                 RenderSettings(width=32, height=32, frames=4, fps=15, samples=1), n_cameras=2)
    modes = "s000002=exit_nonzero,s000003=crash,s000004=hang,s000005=mrq_error,*=ok"
    exe = write_fake_editor(tmp_path / "UE", modes)
    opts = {"editor": str(exe), "project": str(project), "timeout_s": 8, "work_root": str(tmp_path / "work"),
            "session_jobs": session_jobs}
    summary = run_dataset(ds, "unreal", "local", workers=2, backend_options=opts, progress=False,
                          max_attempts=1)
    assert summary.rendered == 1 and summary.failed == 4
    with JobStore.for_dataset(ds) as store:
        rows = {r.job_id: r for r in store.rows()}
    assert rows["s000001"].state == "done" and rows["s000001"].last_error is None
    expect = {"s000002": "exited with code 1", "s000003": "crashed (signal 11 SIGSEGV)",
              "s000004": "exceeded the time limit of 8 s", "s000005": "failed jobs=['cam02']"}
    for job_id, text in expect.items():
        assert rows[job_id].state == "failed" and rows[job_id].attempts == 1
        assert text in (rows[job_id].last_error or ""), rows[job_id].last_error
    entry = next(e for e in iter_manifest(ds) if e.job_id == "s000001")
    settings, n_cameras = load_settings(ds)
    job = materialize(entry, settings, n_cameras)
    assert verify_scene_dir(job, ds / job.output_dir) == []
    for job_id in expect:
        e = next(e for e in iter_manifest(ds) if e.job_id == job_id)
        assert not (ds / e.output_dir).exists()


def test_registry_builds_the_unreal_backend(tmp_path: Path, project: Path) -> None:
    b = get_backend("unreal", editor="/x/UnrealEditor-Cmd", project=str(project), num_gpus=2)
    assert isinstance(b, UnrealBackend) and b.resources()["num_gpus"] == 2


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_one_gpu_per_job(tmp_path: Path, project: Path) -> None:
    ray = pytest.importorskip("ray")
    ds = tmp_path / "ds"
    plan_dataset(load_catalog(ue_catalog(tmp_path)), 3, 5, ds,
                 RenderSettings(width=32, height=32, frames=3, fps=15, samples=1), n_cameras=2)
    exe = write_fake_editor(tmp_path / "UE", "s000002=crash,*=ok")
    opts = {"editor": str(exe), "project": str(project), "timeout_s": 60, "work_root": str(tmp_path / "work")}
    # One logical GPU: with num_gpus=1 per job Ray runs the editors one at a time.
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = run_dataset(ds, "unreal", "ray", workers=2, backend_options={**opts, "num_cpus": 1},
                              progress=False, max_attempts=1)
    finally:
        ray.shutdown()
    assert summary.counts == {"pending": 0, "running": 0, "done": 2, "failed": 1}
    with JobStore.for_dataset(ds) as store:
        bad = store.get("s000002")
    assert bad.state == "failed" and "crashed (signal 11 SIGSEGV)" in (bad.last_error or "")


# -- editor sessions (session_jobs > 1): one editor for several jobs ----------------------------------------


def _render(b: UnrealBackend, job_id: str, tmp_path: Path) -> Path:
    job = make_job(job_id=job_id, n_cameras=2, frames=3, size=16)
    out = tmp_path / f"out_{job_id}"
    out.mkdir()
    render_scene(b, job, out)
    assert verify_scene_dir(job, out) == []
    return out


def test_session_reuses_one_editor_and_quits_on_close(tmp_path: Path, project: Path) -> None:
    b = backend(tmp_path, project, session_jobs=3, timeout_s=30)
    pids = []
    for k in range(4):
        _render(b, f"j{k}", tmp_path)
        assert b._session is not None
        pids.append(b._session.proc.pid)
    assert pids[0] == pids[1] == pids[2] != pids[3]  # a new editor after session_jobs jobs
    session = b._session
    b.close()
    assert session.proc.returncode == 0  # quit.json -> quit_editor -> clean exit
    assert not session.folder.exists()
    log = (tmp_path / "work").glob("multicam-ue-session-*")
    assert list(log) == []


def test_session_survives_job_errors_and_restarts_after_crash_or_hang(tmp_path: Path, project: Path) -> None:
    b = backend(tmp_path, project, "jbad=mrq_error,jcrash=crash,jhang=hang,*=ok", session_jobs=10, timeout_s=120)
    _render(b, "j1", tmp_path)
    first = b._session
    assert first is not None
    with pytest.raises(RenderError, match=r"failed jobs=\['cam02'\]"):
        _render(b, "jbad", tmp_path)
    _render(b, "j2", tmp_path)
    assert b._session is first  # a job error does not cost the editor
    with pytest.raises(RenderError, match=r"crashed \(signal 11 SIGSEGV\).*EXCEPTION_ACCESS_VIOLATION"):
        _render(b, "jcrash", tmp_path)
    assert b._session is None and first.folder.exists()  # kept for its log
    _render(b, "j3", tmp_path)
    second = b._session
    assert second is not None and second.proc.pid != first.proc.pid
    b.cfg.timeout_s = 4
    with pytest.raises(RenderError, match="exceeded the time limit of 4 s"):
        _render(b, "jhang", tmp_path)
    b.cfg.timeout_s = 120
    assert second.proc.returncode is not None and not pid_alive(second.proc.pid)
    _render(b, "j4", tmp_path)
    b.close()


def test_session_editor_quits_when_the_launcher_dies(tmp_path: Path, project: Path) -> None:
    import subprocess
    import time

    exe = write_fake_editor(tmp_path / "UE", "ok")
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from render_jobs.unreal_backend import UnrealBackend
from ue_support.jobs import make_job
b = UnrealBackend(editor={str(exe)!r}, project={str(project)!r}, session_jobs=5, timeout_s=30,
                  work_root={str(tmp_path / "work")!r})
out = Path({str(tmp_path / "out")!r}); out.mkdir()
b.render(make_job(frames=3, size=16), out)
print(b._session.proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close(), no atexit
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    editor_pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 20
    while pid_alive(editor_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(editor_pid)
