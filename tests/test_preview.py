"""multicam preview: the trajectories PNG, the synchronized grid mp4, the self-contained page (and a headless
Chromium screenshot of it) and layout.json, made from real datasets the tests generate, the validation presets
and the released validation camera file."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_support import RELEASED_VAL_JSON, generate_synthetic
from PIL import Image
from typer.testing import CliRunner

from exporters.camera_json import read_camera_json
from exporters.video import encode_mp4, probe_video, read_video_frames
from multicam_app import app

runner = CliRunner()
FRAMES, SIZE, CAMS, TILE = 12, 32, 10, 64


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("preview") / "ds"
    generate_synthetic(out, scenes=1, size=SIZE, frames=FRAMES, cameras=CAMS)
    (found,) = (out / "train").glob("*/scene1")
    rng = np.random.default_rng(0)
    for c in range(CAMS):  # every frame its own picture (8 px blocks), so a tile shows which frame it is
        blocks = rng.integers(0, 256, (FRAMES, SIZE // 8, SIZE // 8, 3)).astype(np.uint8)
        encode_mp4(found / "videos" / f"cam{c + 1:02d}.mp4", blocks.repeat(8, axis=1).repeat(8, axis=2))
    return found


@pytest.fixture(scope="module")
def preview(scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("preview_out") / "p"
    res = runner.invoke(app, ["preview", str(scene), "--out", str(out), "--tile-px", str(TILE), "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def _pixels_near(img: np.ndarray, colour: np.ndarray, tol: int = 6) -> int:
    return int((np.abs(img[..., :3].astype(int) - colour).max(axis=-1) <= tol).sum())


def _layout(out: Path) -> dict:
    return json.loads((out / "layout.json").read_text())


def test_trajectory_png_draws_every_camera(preview: Path, scene: Path) -> None:
    img = np.asarray(Image.open(preview / "trajectories.png").convert("RGB"))
    assert img.shape[0] > 600 and img.shape[1] > 1200
    lay = _layout(preview)
    colours = [c["colour"] for c in lay["cameras"]]
    assert len(set(colours)) == CAMS
    counts = [_pixels_near(img, _rgb(c["colour"])) for c in lay["cameras"]]
    assert min(counts) > 80, counts  # at least each camera's legend line and start dots (others may cover its path)
    assert sum(counts) > 4 * 110 * CAMS, counts  # and the paths and frusta, in the cameras' colours
    record = json.loads((scene / "scene.json").read_text())
    assert {c["name"]: c["label"] for c in lay["cameras"]} == record["camera_motion"]


def test_the_character_is_marked(scene: Path, tmp_path: Path) -> None:
    """The same poses with and without scene.json's character: the black star (top view, 3D, legend) and the stem
    from the ground point to the aim point appear only with it."""
    pngs = {}
    for with_char in (True, False):
        copy = tmp_path / f"scene_{with_char}"
        shutil.copytree(scene / "cameras", copy / "cameras")
        record = json.loads((scene / "scene.json").read_text())
        if not with_char:
            del record["character"]
        (copy / "scene.json").write_text(json.dumps(record))
        res = runner.invoke(app, ["preview", str(copy), "--out", str(tmp_path / f"p_{with_char}"), "--no-progress"])
        assert res.exit_code == 0, res.output
        pngs[with_char] = np.asarray(Image.open(tmp_path / f"p_{with_char}" / "trajectories.png").convert("RGB"))
    black = {k: _pixels_near(v, np.array([0, 0, 0]), 10) for k, v in pngs.items()}
    assert black[True] > black[False] + 400, black


def test_grid_video_is_synchronized_and_labelled(preview: Path, scene: Path) -> None:
    lay = _layout(preview)
    g = lay["grid"]
    assert (g["rows"], g["cols"]) == (2, 5) and g["tile_px"] == TILE
    info = probe_video(preview / "grid.mp4")
    assert (info.codec, info.pix_fmt, info.frames) == ("h264", "yuv420p", FRAMES)
    assert (info.width, info.height) == (g["width"], g["height"])
    grid = read_video_frames(preview / "grid.mp4").astype(int)
    boxes = [c["tile"] for c in lay["cameras"]] + [c["label_box"] for c in lay["cameras"]]
    for a in range(len(boxes)):  # no two boxes overlap, all inside the frame
        x, y, w, h = (boxes[a][k] for k in ("x", "y", "width", "height"))
        assert 0 <= x and x + w <= g["width"] and 0 <= y and y + h <= g["height"]
        for b in boxes[a + 1:]:
            assert x + w <= b["x"] or b["x"] + b["width"] <= x or y + h <= b["y"] or b["y"] + b["height"] <= y
    k = TILE // SIZE
    for cam in lay["cameras"]:
        src = read_video_frames(scene / cam["video"]).astype(int)
        up = src.repeat(k, axis=1).repeat(k, axis=2)  # the tile: the video scaled 2x, nearest
        t = cam["tile"]
        tiles = grid[:, t["y"]:t["y"] + t["height"], t["x"]:t["x"] + t["width"]]
        err = np.abs(tiles[:, None] - up[None]).mean(axis=(2, 3, 4))  # (grid frame, source frame)
        assert (err.argmin(axis=1) == np.arange(FRAMES)).all(), err  # grid frame i shows frame i of every video
        assert err.diagonal().max() < 6.0
        assert 3 * err.diagonal().max() < np.sort(err, axis=1)[:, 1].min()  # any other frame is far off
        lb = cam["label_box"]  # the swatch at the label's left edge has the camera's colour
        swatch = grid[:, lb["y"] + lb["height"] // 2, lb["x"] + 2]
        assert np.abs(swatch - _rgb(cam["colour"])).max() < 40, (cam["name"], swatch[0])
    poster = np.asarray(Image.open(preview / "poster.png").convert("RGB")).astype(int)
    assert np.abs(poster - grid[lay["poster_frame"]]).mean() < 3.0


def test_page_is_self_contained(preview: Path) -> None:
    page = (preview / "index.html").read_text()
    srcs = re.findall(r'(?:src|href|poster)="([^"]*)"', page)
    assert srcs and all(s.startswith("data:") for s in srcs), [s[:40] for s in srcs]
    imgs = dict(re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]*)"', page))
    assert base64.b64decode(imgs["camera trajectories, top view and 3D"]) == (preview / "trajectories.png").read_bytes()
    (video,) = re.findall(r'<video[^>]* src="data:video/mp4;base64,([^"]*)"', page)
    assert base64.b64decode(video) == (preview / "grid.mp4").read_bytes()
    for cam in _layout(preview)["cameras"]:
        assert f"{cam['name']}</td><td>{cam['label']}</td>" in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_headless_chromium_screenshot(preview: Path, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium; scripts/test.sh tries as root)")
    shot = tmp_path / "page.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
                    "--virtual-time-budget=5000",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1900", f"--screenshot={shot}",
                    (preview / "index.html").as_uri()], check=True, capture_output=True, timeout=180)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (1900, 1400)
    lay = _layout(preview)
    for c in lay["cameras"]:  # the trajectory figure and the table's swatches were rendered
        assert _pixels_near(img, _rgb(c["colour"])) > 150, c
    label_area = sum(c["label_box"]["width"] * c["label_box"]["height"] for c in lay["cameras"])
    assert _pixels_near(img, np.array([40, 40, 40]), 3) > 0.3 * label_area  # the grid's poster frame is shown


def test_presets_preview(tmp_path: Path) -> None:
    from exporters.preview import PRESET_LABELS

    out = tmp_path / "presets"
    res = runner.invoke(app, ["preview", "--presets", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    lay = _layout(out)
    assert [c["label"] for c in lay["cameras"]] == list(PRESET_LABELS)
    assert lay["grid"] is None and not (out / "grid.mp4").exists()
    img = np.asarray(Image.open(out / "trajectories.png").convert("RGB"))
    for c in lay["cameras"]:  # tilts and pans stay in place: a few frusta, the dot, the legend line
        assert _pixels_near(img, _rgb(c["colour"])) > 60, c
    assert "No videos in this scene" in (out / "index.html").read_text()


def test_released_camera_file(tmp_path: Path) -> None:
    out = tmp_path / "released"
    res = runner.invoke(app, ["preview", str(RELEASED_VAL_JSON), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    lay = _layout(out)
    assert [c["name"] for c in lay["cameras"]] == read_camera_json(RELEASED_VAL_JSON)[1]
    assert all(c["label"] is None and c["video"] is None for c in lay["cameras"]) and lay["frames"] == 81
    img = np.asarray(Image.open(out / "trajectories.png").convert("RGB"))
    assert sum(_pixels_near(img, _rgb(c["colour"])) > 100 for c in lay["cameras"]) == 10


def test_a_missing_video_is_an_empty_tile(scene: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "scene1"
    shutil.copytree(scene, damaged)
    (damaged / "videos" / "cam04.mp4").unlink()
    out = tmp_path / "p"
    res = runner.invoke(app, ["preview", str(damaged), "--out", str(out), "--tile-px", str(TILE), "--no-progress"])
    assert res.exit_code == 0, res.output
    lay = _layout(out)
    cam = next(c for c in lay["cameras"] if c["name"] == "cam04")
    assert cam["video"] is None and "(10 cameras, 12 frames, 9 videos)" in res.stdout
    t = cam["tile"]
    tile = read_video_frames(out / "grid.mp4")[:, t["y"]:t["y"] + t["height"], t["x"]:t["x"] + t["width"]]
    assert np.median(tile) < 40  # dark background with the words "no video", no picture


def test_bad_input_is_one_line(tmp_path: Path, scene: Path) -> None:
    bad = tmp_path / "cameras" / "camera_extrinsics.json"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00\x01binary")
    cases = [([str(bad)], "binary file (NUL byte at offset 0)"),
             ([str(tmp_path / "nope")], "no such file or folder"),
             ([str(scene), "--presets"], "not both"),
             ([], "missing SOURCE"),
             ([str(scene), "--tile-px", "33"], "--tile-px: must be an even integer in 32..1280, got 33"),
             ([str(tmp_path / "o")], "no cameras/camera_extrinsics.json below it")]
    for args, msg in cases:
        (tmp_path / "o").mkdir(exist_ok=True)
        res = runner.invoke(app, ["preview", *args, "--out", str(tmp_path / "o" / "x"), "--no-progress"])
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and msg in res.stderr, res.stderr


@pytest.mark.blender
def test_preview_of_a_tiny_blender_scene(tmp_path: Path) -> None:
    """Real renders (3 cameras x 4 frames at 32 px, 1 sample): one row of three tiles, each tile's frame i closest to
    its own video's frame i, the character marked."""
    pytest.importorskip("bpy")
    ds = tmp_path / "bl"
    res = runner.invoke(app, ["generate", "--out", str(ds), "--scenes", "1", "--resolution", "32", "--frames", "4",
                              "--cameras", "3", "--samples", "1", "--no-denoise", "--no-dof", "--no-progress"])
    assert res.exit_code == 0, res.output
    (scene,) = (ds / "train").glob("*/scene1")
    out = tmp_path / "p"
    res = runner.invoke(app, ["preview", str(scene), "--out", str(out), "--tile-px", "64", "--no-progress"])
    assert res.exit_code == 0, res.output
    lay = _layout(out)
    assert (lay["grid"]["rows"], lay["grid"]["cols"]) == (1, 3)
    grid = read_video_frames(out / "grid.mp4").astype(int)
    assert grid.shape[0] == 4
    for cam in lay["cameras"]:
        src = read_video_frames(scene / cam["video"]).astype(int).repeat(2, axis=1).repeat(2, axis=2)
        t = cam["tile"]
        tiles = grid[:, t["y"]:t["y"] + t["height"], t["x"]:t["x"] + t["width"]]
        assert np.abs(tiles - src).mean() < 6.0, cam["name"]
