"""recam pipeline: camera embedding, dataset/cache, prepare, text/VAE loading, train loop, infer CLI.

Everything runs on tiny random models (``recam.tiny``) and real files written by the project's writers.
The end-to-end run (dataset -> prepare -> train -> infer) is in ``test_recam_pipeline_e2e.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporters.camera_json import CameraFileError, write_camera_json
from exporters.video import encode_mp4, probe_video
from multicam.conventions import ue_location_rotator_to_matrix
from recam.cameras import preset_embedding, relative_pose_embedding, relative_pose_embedding_from_poses
from trajectory.sampler import sample_scene

IDENTITY_ROW = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------
# Camera embedding
# ------------------------------------------------------------------------------------------------


def _poses(locations_cm: np.ndarray, rotators_deg: np.ndarray) -> np.ndarray:
    return ue_location_rotator_to_matrix(locations_cm, rotators_deg)


def _static(frames: int, loc: tuple[float, float, float], rot: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    return _poses(np.tile(loc, (frames, 1)), np.tile(rot, (frames, 1)))


def _write(tmp_path: Path, *tracks: np.ndarray) -> Path:
    path = tmp_path / "cameras" / "camera_extrinsics.json"
    write_camera_json(path, np.stack(tracks, axis=1))
    return path


def test_identity(tmp_path: Path) -> None:
    track = _static(81, (340.0, -120.0, 150.0), (10.0, 33.0, 0.0))
    path = _write(tmp_path, track, track)
    emb = relative_pose_embedding(path, "cam01", "cam02")
    assert emb.shape == (21, 12) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, np.tile(IDENTITY_ROW, (21, 1)), atol=1e-6)


def test_pure_translation_hand_derived(tmp_path: Path) -> None:
    # Level camera looking along UE +X: right = +Y, up = +Z. A target moved by (dx, dy, dz) cm in UE is,
    # in the condition camera's (right, -up, forward) axes, at (dy, -dz, dx) / 100 metres.
    dx, dy, dz = 250.0, -80.0, 40.0
    cond = _static(81, (100.0, 200.0, 150.0))
    tgt = _static(81, (100.0 + dx, 200.0 + dy, 150.0 + dz))
    emb = relative_pose_embedding(_write(tmp_path, cond, tgt), "cam01", "cam02")
    expected = np.array([1, 0, 0, dy / 100, 0, 1, 0, -dz / 100, 0, 0, 1, dx / 100], dtype=np.float32)
    np.testing.assert_allclose(emb, np.tile(expected, (21, 1)), atol=1e-6)


@pytest.mark.parametrize("yaw", [30.0, -75.0])
def test_known_yaw_hand_derived(tmp_path: Path, yaw: float) -> None:
    # Same place, target yawed by +yaw (UE: turning right). In OpenCV-like axes (x right, y down, z forward)
    # that is a rotation about y: target forward = (sin, 0, cos), target right = (cos, 0, -sin).
    cond = _static(81, (0.0, 0.0, 100.0))
    tgt = _static(81, (0.0, 0.0, 100.0), (0.0, yaw, 0.0))
    emb = relative_pose_embedding(_write(tmp_path, cond, tgt), "cam01", "cam02")
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    expected = np.array([c, 0, s, 0, 0, 1, 0, 0, -s, 0, c, 0], dtype=np.float32)
    np.testing.assert_allclose(emb, np.tile(expected, (21, 1)), atol=1e-6)


def test_frames_every_stride_and_condition_frame_zero(tmp_path: Path) -> None:
    # Target dollies forward 1 cm per frame: latent frame k sits at video frame 4k -> z = 4k / 100 m.
    # The condition camera moves after frame 0; only its frame 0 matters.
    f = np.arange(81.0)
    tgt = _poses(np.stack([f, np.zeros(81), np.full(81, 100.0)], -1), np.zeros((81, 3)))
    cond = _poses(np.stack([np.zeros(81), 7 * f, np.full(81, 100.0)], -1), np.stack([f, f, 0 * f], -1) * 0.3)
    emb = relative_pose_embedding(_write(tmp_path, cond, tgt), "cam01", "cam02")
    np.testing.assert_allclose(emb[:, 11], 4 * np.arange(21) / 100, atol=1e-6)
    np.testing.assert_allclose(emb[:, [0, 5, 10]], 1.0, atol=1e-6)
    short = relative_pose_embedding(_write(tmp_path, cond, tgt), "cam01", "cam02", num_frames=17)
    np.testing.assert_allclose(short, emb[:5], atol=1e-7)


def _reference_from_issue_words(path: Path, cond_cam: str, tgt_cam: str) -> np.ndarray:
    """An independent reading of issue 6: own parser, transpose, reorder, /100, general inverse."""
    data = json.loads(path.read_text())

    def c2w(frame: int, cam: str) -> np.ndarray:
        rows = re.findall(r"\[([^\]]*)\]", data[f"frame{frame}"][cam])
        m = np.array([[float(v) for v in r.split()] for r in rows]).T  # column-vector camera-to-world
        out = m[:, [1, 2, 0, 3]].copy()  # (right, up, forward, location)
        out[:3, 1] *= -1.0  # -up
        out[:3, 3] /= 100.0
        return out

    ref = np.linalg.inv(c2w(0, cond_cam))
    return np.stack([(ref @ c2w(k, tgt_cam))[:3].reshape(12) for k in range(0, 81, 4)])


@pytest.mark.parametrize("scene", [1, 2, 3])
def test_matches_independent_implementation(tmp_path: Path, scene: int) -> None:
    sample = sample_scene(7, scene, n_cameras=4, frames=81, camera_profile="independent")  # own starts
    path = tmp_path / "camera_extrinsics.json"
    write_camera_json(path, sample.poses_frame_major())
    for cond, tgt in (("cam01", "cam02"), ("cam03", "cam01"), ("cam04", "cam04")):
        ours = relative_pose_embedding(path, cond, tgt)
        ref = _reference_from_issue_words(path, cond, tgt)
        np.testing.assert_allclose(ours, ref, atol=1e-5)
        if cond != tgt:  # different start points: never the identity
            assert not np.allclose(ours, np.tile(IDENTITY_ROW, (21, 1)), atol=1e-3)


def test_presets_through_embedding() -> None:
    # cam_type 5: dolly 2 m forward -> last frame 2 m along the camera's z; cam_type 1: pan right 20 deg.
    zoom = preset_embedding(5)
    np.testing.assert_allclose(zoom[-1], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2.0], atol=1e-6)
    np.testing.assert_allclose(zoom[0], IDENTITY_ROW, atol=1e-6)
    pan = preset_embedding(1)
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    np.testing.assert_allclose(pan[-1], [c, 0, s, 0, 0, 1, 0, 0, -s, 0, c, 0], atol=1e-6)
    with pytest.raises(ValueError, match="1..10"):
        preset_embedding(11)


def test_embedding_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, _static(17, (0, 0, 0)), _static(17, (1, 0, 0)))
    with pytest.raises(CameraFileError, match="cam07"):
        relative_pose_embedding(path, "cam01", "cam07", num_frames=17)
    with pytest.raises(CameraFileError, match="17 frames"):
        relative_pose_embedding(path, "cam01", "cam02")
    with pytest.raises(ValueError, match="shape"):
        relative_pose_embedding_from_poses(np.eye(4), np.eye(4))


# ------------------------------------------------------------------------------------------------
# Fixtures: tiny wan dir, synthetic dataset, prepared cache
# ------------------------------------------------------------------------------------------------

FRAMES, SIZE = 9, 32




@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recam.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(root, scenes=3, cameras=3, frames=FRAMES, size=SIZE, seed=3)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, dataset: Path, wan_dir: Path) -> Path:
    from recam.prepare import prepare

    out = tmp_path_factory.mktemp("cache")
    prepare(dataset, wan_dir, out, num_frames=FRAMES, height=SIZE, width=SIZE, text_len=32, tile=None,
            latent_dtype="fp32", progress=False)
    return out


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


def test_discover_scenes_and_captions(dataset: Path, tmp_path: Path) -> None:
    from recam.data import DataError, discover_scenes

    scenes = discover_scenes(dataset)
    assert len(scenes) == 3 and all(s.cameras == ("cam01", "cam02", "cam03") for s in scenes)
    assert all("scene" in s.captions["cam01"] for s in scenes)  # from scene.json "caption"
    rel = scenes[0].rel
    (dataset / "metadata.csv").write_text(f'file_name,text\n{rel}/videos/cam02.mp4,"a custom, quoted caption"\n')
    try:
        again = discover_scenes(dataset)
        assert again[0].captions["cam02"] == "a custom, quoted caption"
        assert again[0].captions["cam01"] == scenes[0].captions["cam01"]
    finally:
        (dataset / "metadata.csv").unlink()
    with pytest.raises(DataError, match="no scene"):
        discover_scenes(tmp_path)
    # An unfinished scene in a hidden work folder (renderers' .tmp/) is not a scene.
    import shutil

    hidden = dataset / ".tmp" / "job7"
    shutil.copytree(scenes[0].path, hidden)
    try:
        assert [s.rel for s in discover_scenes(dataset)] == [s.rel for s in scenes]
    finally:
        shutil.rmtree(dataset / ".tmp")


def test_center_crop_resize() -> None:
    from recam.data import center_crop_resize

    frame = np.zeros((40, 100, 3), np.uint8)
    frame[:, :30] = 255  # left band: cropped away for a square output
    frame[:, 30:70] = 100
    out = center_crop_resize(frame, 16, 16)
    assert out.shape == (16, 16, 3)
    assert np.all(out == 100)
    tall = center_crop_resize(np.full((100, 40, 3), 7, np.uint8), 32, 64)
    assert tall.shape == (32, 64, 3) and np.all(tall == 7)


def test_load_video_too_short(tmp_path: Path) -> None:
    from recam.data import DataError, load_video

    path = encode_mp4(tmp_path / "v.mp4", [np.full((32, 32, 3), i * 20, np.uint8) for i in range(5)])
    assert load_video(path, 5, 16, 16).shape == (5, 16, 16, 3)
    with pytest.raises(DataError, match="has 5 frames"):
        load_video(path, 9, 16, 16)


def test_shard_partition() -> None:
    from recam.data import shard

    items = list(range(11))
    parts = [shard(items, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == items
    with pytest.raises(ValueError):
        shard(items, 3, 3)


# ------------------------------------------------------------------------------------------------
# Text encoder / tokenizer / VAE
# ------------------------------------------------------------------------------------------------


def test_prompt_encoder_trims_and_pads(wan_dir: Path) -> None:
    from recam.text import PromptEncoder, pad_prompt_embeddings

    enc = PromptEncoder(wan_dir, max_length=32)
    a, b = enc.encode(["a short one", "x"])
    assert a.shape == (len("ashortone") + 1, 32) and b.shape == (2, 32)  # characters + </s>
    padded = pad_prompt_embeddings([a, b], 32)
    assert padded.shape == (2, 32, 32)
    torch.testing.assert_close(padded[0, : a.shape[0]], a)
    assert torch.all(padded[1, 2:] == 0) and torch.all(padded[0, a.shape[0] :] == 0)


def test_wan_original_t5_checkpoint_roundtrip(wan_dir: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import UMT5EncoderModel

    from recam.text import PromptEncoder, hf_t5_to_wan, load_text_encoder, wan_t5_to_hf

    hf = UMT5EncoderModel.from_pretrained(str(wan_dir / "text_encoder"))
    wan_sd = hf_t5_to_wan(hf.state_dict())
    assert "blocks.1.ffn.gate.0.weight" in wan_sd and "token_embedding.weight" in wan_sd
    assert set(wan_t5_to_hf(wan_sd)) == set(hf.state_dict())
    orig = tmp_path / "wan_original"
    orig.mkdir()
    torch.save(wan_sd, orig / "models_t5_umt5-xxl-enc-bf16.pth")
    shutil.copytree(wan_dir / "tokenizer", orig / "google" / "umt5-xxl")
    loaded = load_text_encoder(orig)
    for k, v in hf.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    ours = PromptEncoder(orig, max_length=32).encode(["camera moves left"])[0]
    ref = PromptEncoder(wan_dir, max_length=32).encode(["camera moves left"])[0]
    torch.testing.assert_close(ours, ref)
    with pytest.raises(KeyError, match="unexpected key"):
        wan_t5_to_hf({"blocks.0.bogus.weight": torch.zeros(1)})


def test_wan_dir_errors(tmp_path: Path) -> None:
    from recam.vae import load_vae
    from recam.wandir import WanDirError

    with pytest.raises(WanDirError, match="no VAE found"):
        load_vae(tmp_path)


def test_vae_encode_decode_shapes(wan_dir: Path) -> None:
    from recam.vae import decode_latents, encode_video, latent_shape, load_vae, set_tiling

    vae = load_vae(wan_dir)
    frames = np.random.default_rng(0).integers(0, 255, (9, 32, 48, 3), dtype=np.uint8)
    z = encode_video(vae, frames)
    assert z.shape == (16, *latent_shape(9, 32, 48)) == (16, 3, 4, 6)
    assert decode_latents(vae, z).shape == (9, 32, 48, 3)
    set_tiling(vae, 16)
    assert encode_video(vae, frames).shape == z.shape
    with pytest.raises(ValueError, match="4k\\+1"):
        latent_shape(10, 32, 32)


# ------------------------------------------------------------------------------------------------
# Prepare + dataset over the cache
# ------------------------------------------------------------------------------------------------


def test_prepare_cache_contents(cache: Path, dataset: Path, wan_dir: Path) -> None:
    from recam.data import cached_scenes, discover_scenes, load_latents, load_video, read_cache_settings
    from recam.vae import encode_video, load_vae

    s = read_cache_settings(cache)
    assert (s["num_frames"], s["height"], s["width"], s["text_len"], s["text_dim"]) == (FRAMES, SIZE, SIZE, 32, 32)
    recs = cached_scenes(cache)
    assert [r["rel"] for r in recs] == [sc.rel for sc in discover_scenes(dataset)]
    assert len(list((cache / "prompts").glob("*.safetensors"))) == 3  # one per distinct caption
    r = recs[0]
    lat = load_latents(Path(r["dir"]) / "latents" / "cam02.safetensors")
    fresh = encode_video(load_vae(wan_dir), load_video(dataset / r["rel"] / "videos" / "cam02.mp4", FRAMES, SIZE, SIZE))
    torch.testing.assert_close(lat, fresh)
    assert (Path(r["dir"]) / "cameras" / "camera_extrinsics.json").read_text() == (
        dataset / r["rel"] / "cameras" / "camera_extrinsics.json"
    ).read_text()


def test_prepare_resumes_and_shards(dataset: Path, wan_dir: Path, tmp_path: Path) -> None:
    from recam.data import SCENE_DONE, DataError, cached_scenes
    from recam.prepare import prepare

    kw = dict(num_frames=FRAMES, height=SIZE, width=SIZE, text_len=32, tile=None, progress=False)
    a = prepare(dataset, wan_dir, tmp_path / "c", shard_index=0, num_shards=2, **kw)
    b = prepare(dataset, wan_dir, tmp_path / "c", shard_index=1, num_shards=2, **kw)
    assert (a.scenes, b.scenes) == (2, 1) and a.videos_encoded + b.videos_encoded == 9
    recs = cached_scenes(tmp_path / "c")
    assert len(recs) == 3
    # Interrupted scene: marker and one video gone -> only that video is encoded again.
    d = Path(recs[1]["dir"])
    (d / SCENE_DONE).unlink()
    (d / "latents" / "cam03.safetensors").unlink()
    again = prepare(dataset, wan_dir, tmp_path / "c", **kw)
    assert (again.scenes, again.scenes_skipped, again.videos_encoded, again.videos_skipped) == (1, 2, 1, 2)
    assert again.prompts_encoded == 0
    with pytest.raises(DataError, match="num_frames=9"):
        prepare(dataset, wan_dir, tmp_path / "c", **{**kw, "num_frames": 5})


def test_pair_dataset_from_cache(cache: Path, dataset: Path) -> None:
    from recam.data import PairDataset, load_latents, load_prompt

    ds = PairDataset.from_cache(cache)
    assert len(ds) == 3 * 3 * 2
    item = ds[4]
    assert item["cond"] != item["tgt"]
    assert item["target"].shape == item["source"].shape == (16, 3, SIZE // 8, SIZE // 8)
    assert item["cam_emb"].shape == (3, 12) and item["prompt_emb"].shape == (32, 32)
    scene_dir = cache / "scenes" / item["scene"]
    torch.testing.assert_close(item["source"], load_latents(scene_dir / "latents" / f"{item['cond']}.safetensors"))
    torch.testing.assert_close(item["target"], load_latents(scene_dir / "latents" / f"{item['tgt']}.safetensors"))
    expected = relative_pose_embedding(dataset / item["scene"] / "cameras" / "camera_extrinsics.json",
                                       item["cond"], item["tgt"], num_frames=FRAMES)
    np.testing.assert_array_equal(item["cam_emb"].numpy(), expected)
    rec = json.loads((scene_dir / "cache_scene.json").read_text())
    emb = load_prompt(cache, rec["prompts"][item["tgt"]])
    n = min(32, emb.shape[0])
    torch.testing.assert_close(item["prompt_emb"][:n], emb[:n].float())
    assert torch.all(item["prompt_emb"][n:] == 0)

    raw = PairDataset.from_dataset(dataset, FRAMES, SIZE, SIZE)
    it = raw[0]
    assert it["target_video"].shape == (3, FRAMES, SIZE, SIZE) and -1 <= float(it["target_video"].min())
    assert isinstance(it["caption"], str)
    cached = PairDataset.from_dataset(dataset, FRAMES, SIZE, SIZE, cache=cache)
    assert "target" in cached[0] and len(cached) == len(ds)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


class _Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.inputs: list[torch.Tensor] = []
        self.target_only: list[bool] = []

    def forward(self, x, t, ctx, cam, return_dict=False, target_only=False):  # type: ignore[no-untyped-def]
        self.inputs.append(x.detach().clone())
        self.target_only.append(target_only)
        out = self.w * x
        out[:, :, x.shape[2] // 2 :] = 1e6  # garbage on the source half must not reach the loss
        return (out[:, :, : x.shape[2] // 2] if target_only else out,)


def test_flow_matching_loss_target_only() -> None:
    from recam.train import flow_matching_loss

    g = torch.Generator().manual_seed(0)
    x0, src, noise = (torch.randn(2, 16, 3, 4, 4, generator=g) for _ in range(3))
    sigma = torch.tensor([0.2, 0.9])
    m = _Recorder()
    loss = flow_matching_loss(m, x0, src, torch.zeros(2, 5, 8), torch.zeros(2, 3, 12), noise, sigma,
                              torch.tensor([1.0, 3.0]))
    inp = m.inputs[0]
    assert m.target_only == [True]  # the loss asks the model for the target half only
    torch.testing.assert_close(inp[:, :, 3:], src)  # source half clean
    noisy = (1 - sigma.view(2, 1, 1, 1, 1)) * x0 + sigma.view(2, 1, 1, 1, 1) * noise
    torch.testing.assert_close(inp[:, :, :3], noisy)
    per = ((0.5 * noisy - (noise - x0)) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(loss, (per * torch.tensor([1.0, 3.0])).mean())
    loss.backward()
    assert m.w.grad is not None and torch.isfinite(m.w.grad)


def test_train_resume_is_exact_and_only_trainable_change(cache: Path, wan_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from recam.pipeline import load_transformer
    from recam.train import TrainConfig, read_log, train

    base = dict(cache=str(cache), wan_dir=str(wan_dir), lr=1e-3, log_every=2, save_every=3, progress=False,
                export=True)
    one = train(TrainConfig(out=str(tmp_path / "a"), steps=6, **base))
    assert (one["start_step"], one["steps"]) == (0, 6)
    train(TrainConfig(out=str(tmp_path / "b"), steps=3, **base))
    two = train(TrainConfig(out=str(tmp_path / "b"), steps=6, **base))
    assert two["start_step"] == 3
    np.testing.assert_allclose(two["losses"], one["losses"][3:], rtol=1e-5)
    wa = load_file(str(tmp_path / "a" / "checkpoints" / "step0000006" / "trainable.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "step0000006" / "trainable.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)
    assert [r["step"] for r in read_log(tmp_path / "b")] == [2, 3, 4, 6]  # every 2 and at each run end

    init = load_transformer(wan_dir)
    trained = load_transformer(wan_dir, checkpoint=tmp_path / "a" / "recammaster.safetensors")
    names = set(init.trainable_parameter_names())
    assert any("cam_encoder" in n for n in names) and any("attn1" in n for n in names)
    changed = {n for n, p in trained.state_dict().items() if not torch.equal(p, init.state_dict()[n])}
    assert changed and changed <= names
    assert any("cam_encoder" in n for n in changed)
    # The run folder works as a checkpoint too (trainable weights over the base).
    from_run = load_transformer(wan_dir, checkpoint=tmp_path / "a")
    for n, p in trained.state_dict().items():
        torch.testing.assert_close(from_run.state_dict()[n], p)


# ------------------------------------------------------------------------------------------------
# Inference CLI
# ------------------------------------------------------------------------------------------------


def test_infer_cli_camera_file_and_errors(dataset: Path, wan_dir: Path, tmp_path: Path) -> None:
    from recam.cli import app
    from recam.data import discover_scenes
    from recam.infer import camera_embedding

    scene = discover_scenes(dataset)[0]
    runner = CliRunner()
    out = tmp_path / "o.mp4"
    args = ["infer", "--video", str(scene.video("cam01")), "--prompt", "a column", "--out", str(out),
            "--wan-dir", str(wan_dir), "--num-frames", str(FRAMES), "--height", "32", "--width", "48",
            "--steps", "2", "--tile", "0"]
    res = runner.invoke(app, [*args, "--cameras", str(scene.camera_file), "--cam", "cam02"])
    assert res.exit_code == 0, res.output
    stages = next(line for line in res.output.splitlines() if line.startswith("stages: "))
    for name in ("read video", "text", "vae encode", "load transformer", "denoise", "vae decode", "write", "total"):
        assert f"{name} " in stages, stages
    info = probe_video(out)
    assert (info.frames, info.width, info.height, info.codec) == (FRAMES, 48, 32, "h264")
    np.testing.assert_array_equal(camera_embedding(FRAMES, cameras=scene.camera_file, cam="cam02"),
                                  relative_pose_embedding(scene.camera_file, "cam02", "cam02", FRAMES))
    assert runner.invoke(app, args).exit_code == 2  # no camera
    assert runner.invoke(app, [*args, "--cam-type", "3", "--cameras", str(scene.camera_file)]).exit_code == 2
    assert runner.invoke(app, [*args, "--cam-type", "11"]).exit_code == 2
    res = runner.invoke(app, [*args, "--cameras", str(scene.camera_file), "--cam", "cam09"])
    assert res.exit_code == 2 and "cam09" in res.output
    # the transformer loads on a worker thread: its errors still reach the user as a one-line failure
    missing = tmp_path / "no_such.ckpt"
    res = runner.invoke(app, [*args, "--cam-type", "3", "--checkpoint", str(missing)])
    assert res.exit_code != 0 and str(missing) in res.output


class _LinearVelocity(torch.nn.Module):
    """v = 0.3 * x_target_half + mean(prompt) per sample; records every call."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t, ctx, cam, return_dict=False, target_only=False):  # type: ignore[no-untyped-def]
        self.calls.append((x.clone(), t.clone(), ctx.clone(), cam.clone()))
        v = 0.3 * x + ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
        return (v[:, :, : x.shape[2] // 2] if target_only else v,)


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_sample_euler_cfg_against_plain_loop(cfg: float) -> None:
    from recam.pipeline import sample

    g = torch.Generator().manual_seed(1)
    source = torch.randn(1, 16, 3, 4, 4, generator=g)
    pos, neg = torch.full((1, 6, 8), 0.5), torch.full((1, 6, 8), -0.25)
    cam = torch.randn(1, 3, 12, generator=g)
    m = _LinearVelocity()
    steps, shift = 6, 5.0
    out = sample(m, source, pos, cam, negative_emb=neg, steps=steps, cfg=cfg, shift=shift, seed=9, progress=False)

    # Plain loop from the issue's words: sigmas = shift s / (1 + (shift - 1) s), s = linspace(1, 0, steps + 1)[:-1].
    x = torch.randn(source.shape, generator=torch.Generator("cpu").manual_seed(9))
    s = [1 - i / steps for i in range(steps)]
    sig = [shift * v / (1 + (shift - 1) * v) for v in s] + [0.0]
    for i in range(steps):
        v_pos = 0.3 * x + 0.5
        v_neg = 0.3 * x - 0.25
        v = v_neg + cfg * (v_pos - v_neg) if cfg != 1.0 else v_pos
        x = x + v * (sig[i + 1] - sig[i])
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)

    assert len(m.calls) == steps
    for i, (inp, t, ctx, c) in enumerate(m.calls):
        n = 2 if cfg != 1.0 else 1
        assert inp.shape == (n, 16, 6, 4, 4)
        torch.testing.assert_close(inp[:, :, 3:], source.expand(n, -1, -1, -1, -1))  # target first, source second
        torch.testing.assert_close(t, torch.full((n,), sig[i] * 1000.0))
        torch.testing.assert_close(ctx[0], pos[0])
        if n == 2:
            torch.testing.assert_close(ctx[1], neg[0])
        torch.testing.assert_close(c, cam.expand(n, -1, -1))


def test_infer_tile_option() -> None:
    from recam.cli import app
    from recam.infer import resolve_tile

    cpu = torch.device("cpu")
    assert resolve_tile("auto", cpu) == 256  # untiled only on a GPU with room for it
    assert resolve_tile(0, cpu) is None and resolve_tile(None, cpu) is None
    assert resolve_tile(512, cpu) == 512
    with pytest.raises(ValueError, match="multiple of 8"):
        resolve_tile(100 + 1, cpu)
    for bad in ("7", "abc", "60"):
        res = CliRunner().invoke(app, ["infer", "--video", "v.mp4", "--prompt", "p", "--out", "o.mp4", "--wan-dir",
                                       "w", "--cam-type", "1", "--tile", bad])
        assert res.exit_code == 2 and "--tile" in res.output, res.output


def test_infer_jobs_file_matches_single_runs_and_resumes(dataset: Path, wan_dir: Path, tmp_path: Path) -> None:
    """`recam infer --jobs`: every line's video equals the same job run alone; a rerun keeps finished outputs; bad
    lines exit 2 naming the file, the line and the field."""
    import json

    from recam.cli import app
    from recam.data import discover_scenes, load_video
    from recam.infer import read_jobs

    scene = discover_scenes(dataset)[0]
    common = ["--wan-dir", str(wan_dir), "--num-frames", str(FRAMES), "--height", "32", "--width", "48",
              "--steps", "2", "--tile", "0", "--no-progress"]
    lines = [
        {"video": str(scene.video("cam01")), "prompt": "a column", "out": "a/one.mp4", "cam_type": 3},
        {"video": str(scene.video("cam02")), "prompt": "a red column", "out": "two.mp4",
         "cameras": str(scene.camera_file), "cam": "cam02", "seed": 7},
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("# two videos\n" + "\n".join(json.dumps(x) for x in lines) + "\n\n")
    runner = CliRunner()
    res = runner.invoke(app, ["infer", "--jobs", str(jobs), *common])
    assert res.exit_code == 0, res.output
    outs = [tmp_path / "a" / "one.mp4", tmp_path / "two.mp4"]  # relative to the jobs file
    assert all(f"wrote {o}" in res.output for o in outs)
    assert "for 2 videos" in res.output

    singles = [
        ["--video", lines[0]["video"], "--prompt", "a column", "--cam-type", "3"],
        ["--video", lines[1]["video"], "--prompt", "a red column", "--cameras", str(scene.camera_file),
         "--cam", "cam02", "--seed", "7"],
    ]
    for o, args in zip(outs, singles, strict=True):
        alone = tmp_path / f"alone_{o.name}"
        r = runner.invoke(app, ["infer", *args, "--out", str(alone), *common])
        assert r.exit_code == 0, r.output
        np.testing.assert_array_equal(load_video(o, FRAMES, 32, 48), load_video(alone, FRAMES, 32, 48))

    # resume: finished outputs are kept as they are, a lost one is rendered again
    before = outs[0].stat().st_mtime_ns
    outs[1].unlink()
    res = runner.invoke(app, ["infer", "--jobs", str(jobs), *common])
    assert res.exit_code == 0, res.output
    assert outs[0].stat().st_mtime_ns == before and outs[1].exists()

    # bad files: one line, naming file:line and the field
    for text, msg in (
        ('{"video": "v.mp4", "prompt": "p", "out": "o.mp4", "cam_type": 11}', f"{jobs}:1: cam_type"),
        ('{"video": "v.mp4", "prompt": "p", "out": "o.mp4"}', "exactly one of cam_type or cameras"),
        ('{"video": "v.mp4", "prompt": "p", "out": "o.mp4", "cam_type": 1, "fps": 3}', f"{jobs}:1: fps"),
        ('# c\n{"video": "v.mp4"', f"{jobs}:2: not JSON"),
        ("", "no jobs"),
        ('{"video": "v.mp4", "prompt": "p", "out": "o.mp4", "cam_type": 1}\n'
         '{"video": "w.mp4", "prompt": "p", "out": "./o.mp4", "cam_type": 2}', "two jobs write"),
    ):
        jobs.write_text(text)
        r = runner.invoke(app, ["infer", "--jobs", str(jobs), *common])
        assert r.exit_code == 2 and msg in r.output, (text, r.output)
    jobs.write_text(json.dumps(lines[0]))
    assert len(read_jobs(jobs)) == 1
    r = runner.invoke(app, ["infer", "--jobs", str(jobs), "--video", "x.mp4", *common])
    assert r.exit_code == 2 and "--video" in r.output
    r = runner.invoke(app, ["infer", *common])
    assert r.exit_code == 2 and "--video, --prompt, --out" in r.output
