"""End to end on CPU with tiny random models: dataset -> ``recam prepare`` -> ``recam train`` -> ``recam infer``.

The dataset is rendered by the Blender backend through ``multicam generate`` (a few scenes at 64x64) when that
command exists; otherwise it is the synthetic splat dataset of :mod:`recam.synthetic` (same layout, written by
the same writers). Set ``RECAM_E2E_DATASET=synthetic`` to force the latter. DDP training on 2 processes (log,
checkpoints, both ranks stepping, the 1-process loss curve) is tests/test_recam_parallel.py's.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from exporters.video import probe_video, read_video_frames
from recam.cli import app

FRAMES, SIZE, SCENES, STEPS = 17, 64, 2, 300


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _generate_available() -> bool:
    if os.environ.get("RECAM_E2E_DATASET") == "synthetic":
        return False
    res = subprocess.run([sys.executable, "-m", "multicam_app", "generate", "--help"], capture_output=True, text=True)
    return res.returncode == 0


def _make_dataset(root: Path) -> str:
    if _generate_available():
        cmd = [sys.executable, "-m", "multicam_app", "generate", "--out", str(root), "--scenes", str(SCENES),
               "--resolution", str(SIZE), "--samples", "1", "--frames", str(FRAMES), "--cameras", "4"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return "blender"
    from recam.synthetic import write_synthetic_dataset

    write_synthetic_dataset(root, scenes=SCENES, cameras=4, frames=FRAMES, size=SIZE, seed=11)
    return "synthetic"


def _read_csv(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as fh:
        return [{k: float(v) if v else float("nan") for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Dataset (Blender or synthetic), tiny wan dir and prepared cache, made through the CLI."""
    import torch

    tmp_path = tmp_path_factory.mktemp("e2e")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kind = _make_dataset(tmp_path / "data")
        runner = CliRunner()
        wan = tmp_path / "wan"
        res = runner.invoke(app, ["tiny-wan-dir", str(wan)])
        assert res.exit_code == 0, res.output
        cache = tmp_path / "cache"
        res = runner.invoke(app, ["prepare", str(tmp_path / "data"), "--wan-dir", str(wan), "--out", str(cache),
                                  "--num-frames", str(FRAMES), "--height", str(SIZE), "--width", str(SIZE),
                                  "--text-len", "32", "--tile", "0", "--latent-dtype", "fp32"])
        assert res.exit_code == 0, res.output
    finally:
        torch.set_num_threads(before)
    return {"kind": kind, "data": tmp_path / "data", "wan": wan, "cache": cache}


@pytest.mark.slow
def test_prepare_train_infer_end_to_end(prepared: dict, tmp_path: Path) -> None:
    kind, wan, cache = prepared["kind"], prepared["wan"], prepared["cache"]
    runner = CliRunner()
    videos = sorted(Path(prepared["data"]).rglob("videos/cam*.mp4"))
    assert len(list(Path(cache).rglob("latents/cam*.safetensors"))) == len(videos) >= 2 * SCENES

    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--cache", str(cache), "--wan-dir", str(wan), "--out", str(run),
                              "--steps", str(STEPS), "--lr", "1e-3", "--save-every", "150", "--log-every", "10",
                              "--eval-every", "100", "--num-workers", "0"])
    assert res.exit_code == 0, res.output
    evals = _read_csv(run / "eval.csv")
    assert [e["step"] for e in evals] == [0, 100, 200, 300]
    first, last = evals[0]["eval_loss"], evals[-1]["eval_loss"]
    print(f"dataset={kind} eval loss {first:.4f} -> {last:.4f}")
    assert last < 0.9 * first, f"fixed-noise eval loss did not decrease enough: {evals}"
    log = _read_csv(run / "log.csv")
    assert len(log) == STEPS // 10 and all(np.isfinite(r["loss"]) for r in log)
    assert (run / "checkpoints" / "step0000300" / "trainable.safetensors").exists()
    assert (run / "recammaster.safetensors").exists()

    source = videos[0]
    outs = []
    for cam_type in (1, 5):
        out = tmp_path / f"out_cam{cam_type}.mp4"
        res = runner.invoke(app, ["infer", "--video", str(source), "--prompt", "a person walks", "--out", str(out),
                                  "--wan-dir", str(wan), "--cam-type", str(cam_type), "--checkpoint", str(run),
                                  "--num-frames", str(FRAMES), "--height", str(SIZE), "--width", str(SIZE),
                                  "--steps", "4", "--seed", "3", "--tile", "0"])
        assert res.exit_code == 0, res.output
        info = probe_video(out)
        assert (info.frames, info.width, info.height, info.codec, info.pix_fmt) == (
            FRAMES, SIZE, SIZE, "h264", "yuv420p")
        outs.append(read_video_frames(out).astype(np.int16))
    # Same seed and prompt, different target camera: the trained camera modules change the video.
    assert np.abs(outs[0] - outs[1]).mean() > 0.1

