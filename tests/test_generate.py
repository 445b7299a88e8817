"""``multicam generate``: plan + render (Blender) + verify into the exact MultiCamVideo layout."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from cli_support import generate_synthetic
from typer.testing import CliRunner

from exporters.camera_json import read_camera_json
from exporters.video import probe_video
from multicam_app import app

runner = CliRunner()


def _scene_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "train").glob("f*_aperture*/scene*") if p.is_dir())


def test_generate_rejects_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    for args, word in ((["--resolution", "33"], "--resolution"), (["--scenes", "0"], "--scenes"),
                       (["--pass", "normals"], "--pass"), (["--device", "tpu"], "--device"),
                       (["--executor", "slurm"], "--executor"), (["--quality", "best"], "--quality"),
                       (["--catalog", str(tmp_path / "missing.yaml")], "missing.yaml")):
        res = runner.invoke(app, ["generate", "--out", str(tmp_path / "d"), *args])
        assert res.exit_code == 2, res.output
        assert word in res.output


def test_generate_with_a_test_backend_is_resumable(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate = partial(generate_synthetic, out, scenes=3, size=32, frames=4, progress=True)
    generate()
    assert len(_scene_dirs(out)) == 3
    stamp = {p: (p / "videos" / "cam01.mp4").stat().st_mtime_ns for p in _scene_dirs(out)}
    res = generate()
    assert "rendered 0" in res.output
    assert stamp == {p: (p / "videos" / "cam01.mp4").stat().st_mtime_ns for p in _scene_dirs(out)}
    res = generate(extra_args=("--seed", "9"), expect=2)  # another plan into the same folder
    assert "different plan" in res.output


def test_generate_quality_presets_and_the_closing_lines(tmp_path: Path) -> None:
    from render_jobs.cli_generate import QUALITY
    from render_jobs.planner import load_settings

    out = tmp_path / "demo"
    res = generate_synthetic(out, frames=2, cameras=2)
    st, _ = load_settings(out)
    assert (st.width, st.samples, st.denoise, st.denoise_quality) == QUALITY["demo"]
    [scene] = _scene_dirs(out)
    assert probe_video(scene / "videos" / "cam01.mp4").width == QUALITY["demo"][0]
    assert "--quality full" in res.output  # how to get full quality, in one line
    assert f"outputs: {scene}/videos/ (2 synchronized mp4s)" in res.output
    look = f"look at it: multicam preview {scene} --out {out / 'preview' / 'scene1'}"
    assert look in res.output
    res = runner.invoke(app, look.removeprefix("look at it: multicam ").split())  # the printed command works
    assert res.exit_code == 0, res.output
    assert (out / "preview" / "scene1" / "index.html").is_file()
    # explicit options override the preset's values, the rest comes from it
    generate_synthetic(tmp_path / "full", frames=2, cameras=2, size=32, extra_args=("--quality", "full"))
    st, _ = load_settings(tmp_path / "full")
    assert (st.width, st.samples, st.denoise, st.denoise_quality) == (32, *QUALITY["full"][1:])


@pytest.mark.blender
@pytest.mark.slow
def test_generate_blender_full_81_frames_multicamvideo_layout(tmp_path: Path) -> None:
    pytest.importorskip("bpy")
    out = tmp_path / "demo"
    res = runner.invoke(app, ["generate", "--out", str(out), "--scenes", "1", "--seed", "3", "--resolution", "32",
                              "--samples", "1", "--no-denoise", "--no-dof"])
    assert res.exit_code == 0, res.output
    scenes = _scene_dirs(out)
    assert len(scenes) == 1
    scene = scenes[0]
    assert scene.name == "scene1" and scene.parent.parent == out / "train"
    assert sorted(p.name for p in scene.iterdir()) == ["cameras", "scene.json", "videos"]
    assert sorted(p.name for p in (scene / "videos").iterdir()) == [f"cam{i:02d}.mp4" for i in range(1, 11)]
    for i in range(1, 11):
        info = probe_video(scene / "videos" / f"cam{i:02d}.mp4")  # decodes every frame
        assert (info.width, info.height, info.frames, info.codec, info.pix_fmt) == (32, 32, 81, "h264", "yuv420p")
        assert info.fps == pytest.approx(15.0)
    poses, names = read_camera_json(scene / "cameras" / "camera_extrinsics.json")
    assert poses.shape == (81, 10, 4, 4) and names == [f"cam{i:02d}" for i in range(1, 11)]
    rec = json.loads((scene / "scene.json").read_text())
    assert rec["backend"] == "blender" and rec["renderer"]["frames"] == 81
    assert rec["environment"]["asset"].startswith("builtin:") and rec["character"]["id"]
    cam01 = rec["cameras"]["cam01"]
    assert scene.parent.name == f"f{cam01['focal_mm']:g}_aperture{cam01['aperture']:g}"


def test_blender_stdout_drops_known_noise_and_keeps_real_lines(capfd: pytest.CaptureFixture[str]) -> None:
    """What Blender writes on file descriptor 1 (from C) while it renders leaves our stdout: the CUEW/HIPEW lines
    of a machine without CUDA/HIP libraries are dropped, anything else goes to stderr (also when the block
    raised)."""
    import io
    import os

    from render_jobs.blender_backend import blender_stdout

    noise = ("00:01.587  cycles           | WARNING CUEW initialization failed: Error opening the library\n"
             "00:01.587  cycles           | WARNING HIPEW initialization failed: Error opening HIP dynamic library\n")
    sink = io.StringIO()
    with pytest.raises(RuntimeError), blender_stdout(sink):
        os.write(1, (noise + "Error: cannot read file 'x.blend'\n").encode())
        raise RuntimeError("render failed")
    assert sink.getvalue() == "Error: cannot read file 'x.blend'\n"
    os.write(1, b"ours\n")  # fd 1 is our stdout again
    assert capfd.readouterr().out == "ours\n"


@pytest.mark.blender
@pytest.mark.slow
def test_generate_with_blender_prints_only_its_report_on_stdout(tmp_path: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("bpy")
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "multicam_app", "generate", "--out", str(out), "--scenes", "1", "--cameras", "1",
           "--frames", "2", "--resolution", "16", "--samples", "1", "--no-denoise", "--no-dof", "--no-progress"]
    # device auto: Cycles probes CUDA/HIP (and says so on fd 1 where their libraries are missing)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines and not [ln for ln in lines if "cycles" in ln or "CUEW" in ln or "HIPEW" in ln], res.stdout
    assert lines[0].startswith("planned 1 scene(s)") and any(ln.startswith("ok: 1 scene(s)") for ln in lines)
