"""Data for ReCamMaster training over the MultiCamVideo layout, and its latent cache.

Dataset layout (ours and the released MultiCamVideo dataset)::

    ROOT/[train/]<f18_aperture10>/sceneN/videos/cam01.mp4 .. camNN.mp4
                                       /cameras/camera_extrinsics.json
                                       /scene.json                      (optional)
    ROOT/metadata.csv                                                   (optional captions)

Captions, first match wins: ``metadata.csv`` (ReCamMaster's: columns ``file_name,text``, the file
name ending in ``<set>/<scene>/videos/camNN.mp4``), ``scene.json`` keys ``captions.camNN``,
``caption`` or ``prompt``, else the default prompt.

Cache layout written by ``recam prepare``::

    CACHE/cache.json                              settings (frames, size, text length, ...)
    CACHE/prompts/<sha1 of text>.safetensors      {"emb": (L, D)}   trimmed umT5 embedding
    CACHE/scenes/<scene rel path>/latents/camNN.safetensors   {"latents": (16, T, h, w)}
    CACHE/scenes/<scene rel path>/cameras/camera_extrinsics.json   (copy)
    CACHE/scenes/<scene rel path>/cache_scene.json  written last: cameras and prompt of each camera

:class:`PairDataset` yields ordered (condition, target) camera pairs of one scene: latents from the
cache when the scene is cached, else decoded, centre-cropped and resized frames.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, read_camera_json
from exporters.video import iter_video_frames
from recam.cameras import relative_pose_embedding_from_poses
from recam.vae import TEMPORAL_STRIDE, frames_to_tensor

DEFAULT_PROMPT = "A person moving in a scene, filmed by a moving camera."
CACHE_FILE = "cache.json"
SCENE_DONE = "cache_scene.json"
CACHE_VERSION = 1


class DataError(ValueError):
    """Bad dataset or cache contents; the message names the file."""


@dataclass(frozen=True)
class Scene:
    """One scene folder: cameras that have both a video and poses, and each camera's caption."""

    root: Path
    rel: str
    cameras: tuple[str, ...]
    captions: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / self.rel

    def video(self, cam: str) -> Path:
        return self.path / "videos" / f"{cam}.mp4"

    @property
    def camera_file(self) -> Path:
        return self.path / CAMERA_FILE


def _read_metadata_csv(root: Path) -> dict[str, str]:
    """``<set>/<scene>/videos/camNN.mp4`` (last 4 path parts) -> caption, from ``metadata.csv``."""
    path = root / "metadata.csv"
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file_name", "text"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs columns file_name,text; has {reader.fieldnames}")
        for row in reader:
            key = "/".join(Path(row["file_name"]).parts[-4:])
            out[key] = row["text"]
    return out


def _scene_json_captions(scene_dir: Path, cams: tuple[str, ...]) -> dict[str, str]:
    path = scene_dir / "scene.json"
    if not path.exists():
        return {}
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    out: dict[str, str] = {}
    caps = rec.get("captions") if isinstance(rec, dict) else None
    for cam in cams:
        if isinstance(caps, dict) and isinstance(caps.get(cam), str):
            out[cam] = caps[cam]
        elif isinstance(rec, dict) and isinstance(rec.get("caption"), str):
            out[cam] = rec["caption"]
        elif isinstance(rec, dict) and isinstance(rec.get("prompt"), str):
            out[cam] = rec["prompt"]
    return out


def discover_scenes(root: str | os.PathLike[str], default_prompt: str = DEFAULT_PROMPT) -> list[Scene]:
    """Every scene folder under ``root`` (sorted by relative path) with its cameras and captions."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"dataset {root}: not a directory")
    meta = _read_metadata_csv(root)
    scenes: list[Scene] = []
    for cam_file in sorted(root.rglob(str(CAMERA_FILE))):
        scene_dir = cam_file.parent.parent
        if any(part.startswith(".") for part in scene_dir.relative_to(root).parts):
            continue  # work folders of renderers (``.tmp/``) hold unfinished scenes
        vids = {p.stem for p in (scene_dir / "videos").glob("cam*.mp4")}
        _, names = read_camera_json(cam_file)
        cams = tuple(n for n in names if n in vids)
        if len(cams) < 2:
            continue
        rel = scene_dir.relative_to(root).as_posix()
        from_json = _scene_json_captions(scene_dir, cams)
        caps = {}
        for cam in cams:
            key = "/".join((scene_dir / "videos" / f"{cam}.mp4").parts[-4:])
            caps[cam] = meta.get(key) or from_json.get(cam) or default_prompt
        scenes.append(Scene(root, rel, cams, caps))
    if not scenes:
        raise DataError(
            f"dataset {root}: no scene with cameras/camera_extrinsics.json and >= 2 videos/camNN.mp4"
        )
    return scenes


def shard(items: list[Any], shard_index: int, num_shards: int) -> list[Any]:
    """Items ``shard_index, shard_index + num_shards, ...`` (one process per GPU)."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    return items[shard_index::num_shards]


def center_crop_resize(frame: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """Crop the largest centred window of aspect ``width/height``, then resize to ``height x width``."""
    h, w = frame.shape[:2]
    if h * width > w * height:  # too tall
        ch, cw = round(w * height / width), w
    else:
        ch, cw = h, round(h * width / height)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = frame[y0 : y0 + ch, x0 : x0 + cw]
    if crop.shape[:2] == (height, width):
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if ch > height else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(crop, (width, height), interpolation=interp), dtype=np.uint8)


def load_video(path: str | os.PathLike[str], num_frames: int, height: int, width: int) -> NDArray[np.uint8]:
    """The first ``num_frames`` frames of ``path``, centre-cropped and resized: ``(F, H, W, 3)`` uint8."""
    out: list[NDArray[np.uint8]] = []
    it: Iterator[NDArray[np.uint8]] = iter_video_frames(path)
    for frame in it:
        out.append(center_crop_resize(frame, height, width))
        if len(out) == num_frames:
            break
    if hasattr(it, "close"):
        it.close()
    if len(out) < num_frames:
        raise DataError(f"{path}: has {len(out)} frames, need num_frames={num_frames}")
    return np.stack(out)


def prompt_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------


def read_cache_settings(cache: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(cache) / CACHE_FILE
    if not path.exists():
        raise DataError(f"cache {cache}: no {CACHE_FILE}; run `recam prepare` first")
    return dict(json.loads(path.read_text()))


def cache_scene_dir(cache: str | os.PathLike[str], rel: str) -> Path:
    return Path(cache) / "scenes" / rel


def cached_scenes(cache: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The finished scenes of a cache (their ``cache_scene.json`` records, with ``dir`` added)."""
    base = Path(cache) / "scenes"
    out = []
    for p in sorted(base.rglob(SCENE_DONE)):
        rec = json.loads(p.read_text())
        rec["dir"] = str(p.parent)
        out.append(rec)
    return out


def load_latents(path: str | os.PathLike[str]) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))["latents"]


def load_prompt(cache: str | os.PathLike[str], key: str) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(Path(cache) / "prompts" / f"{key}.safetensors"))["emb"]


class PairDataset(torch.utils.data.Dataset[dict[str, Any]]):
    """Every ordered (condition, target) camera pair of every scene.

    From a cache (``PairDataset.from_cache``) an item is ``{"target", "source"}`` latents
    ``(16, T, h, w)`` float32, ``cam_emb`` ``(T, 12)``, ``prompt_emb`` ``(text_len, D)`` (zero-padded),
    plus names. From a dataset (``PairDataset.from_dataset``) scenes present in ``cache`` give
    latents the same way; the others give ``{"target_video", "source_video"}`` ``(3, F, H, W)`` in
    [-1, 1] and the target's ``caption``.
    """

    def __init__(
        self,
        entries: list[dict[str, Any]],
        num_frames: int,
        height: int,
        width: int,
        cache: Path | None,
        text_len: int,
    ) -> None:
        self.entries = entries
        self.num_frames, self.height, self.width = num_frames, height, width
        self.cache, self.text_len = cache, text_len
        self.pairs = [
            (i, c, t) for i, e in enumerate(entries) for c in e["cameras"] for t in e["cameras"] if c != t
        ]
        self._poses: dict[int, tuple[NDArray[np.float64], list[str]]] = {}

    @classmethod
    def from_cache(cls, cache: str | os.PathLike[str]) -> PairDataset:
        cache = Path(cache)
        s = read_cache_settings(cache)
        entries = [dict(e, cached=True) for e in cached_scenes(cache)]
        if not entries:
            raise DataError(f"cache {cache}: no finished scene (no {SCENE_DONE}); run `recam prepare`")
        return cls(entries, s["num_frames"], s["height"], s["width"], cache, s["text_len"])

    @classmethod
    def from_dataset(
        cls,
        root: str | os.PathLike[str],
        num_frames: int = 81,
        height: int = 480,
        width: int = 832,
        cache: str | os.PathLike[str] | None = None,
        text_len: int = 512,
    ) -> PairDataset:
        done = {}
        if cache is not None and (Path(cache) / CACHE_FILE).exists():
            s = read_cache_settings(cache)
            if (s["num_frames"], s["height"], s["width"]) == (num_frames, height, width):
                done = {e["rel"]: e for e in cached_scenes(cache)}
                text_len = s["text_len"]
        entries = []
        for sc in discover_scenes(root):
            if sc.rel in done:
                entries.append(dict(done[sc.rel], cached=True))
            else:
                entries.append(
                    {
                        "rel": sc.rel,
                        "cameras": list(sc.cameras),
                        "dir": str(sc.path),
                        "cached": False,
                        "captions": sc.captions,
                    }
                )
        return cls(entries, num_frames, height, width, Path(cache) if cache else None, text_len)

    def __len__(self) -> int:
        return len(self.pairs)

    def _camera_poses(self, i: int) -> tuple[NDArray[np.float64], list[str]]:
        if i not in self._poses:
            self._poses[i] = read_camera_json(Path(self.entries[i]["dir"]) / CAMERA_FILE)
        return self._poses[i]

    def cam_emb(self, i: int, cond: str, tgt: str) -> NDArray[np.float32]:
        poses, names = self._camera_poses(i)
        return relative_pose_embedding_from_poses(
            poses[:, names.index(cond)], poses[:, names.index(tgt)], self.num_frames, TEMPORAL_STRIDE
        )

    def __getitem__(self, idx: int) -> dict[str, Any]:
        i, cond, tgt = self.pairs[idx]
        e = self.entries[i]
        item: dict[str, Any] = {
            "scene": e["rel"],
            "cond": cond,
            "tgt": tgt,
            "cam_emb": torch.from_numpy(self.cam_emb(i, cond, tgt)),
        }
        d = Path(e["dir"])
        if e["cached"]:
            assert self.cache is not None
            item["target"] = load_latents(d / "latents" / f"{tgt}.safetensors").float()
            item["source"] = load_latents(d / "latents" / f"{cond}.safetensors").float()
            emb = load_prompt(self.cache, e["prompts"][tgt]).float()
            pad = torch.zeros(self.text_len, emb.shape[-1])
            n = min(self.text_len, emb.shape[0])
            pad[:n] = emb[:n]
            item["prompt_emb"] = pad
        else:
            for key, cam in (("target_video", tgt), ("source_video", cond)):
                frames = load_video(d / "videos" / f"{cam}.mp4", self.num_frames, self.height, self.width)
                item[key] = frames_to_tensor(frames)[0]
            item["caption"] = e["captions"][tgt]
        return item
