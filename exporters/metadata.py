"""``DATASET/metadata.csv``: the captions file ReCamMaster's own trainer reads, from the scenes present.

ReCamMaster's ``train_recammaster.py`` (KwaiVGI/ReCamMaster at 39c0dc2e, ``TextVideoDataset.__init__``
and ``TensorDataset.__init__``) runs ``pd.read_csv(os.path.join(dataset_path, "metadata.csv"))`` and joins
each ``file_name`` to ``os.path.join(dataset_path, "train", file_name)``; without the file it raises
FileNotFoundError. This module writes that file::

    file_name,text,camera_motion
    f18_aperture10/scene1/videos/cam01.mp4,"A slim mannequin ... walks ... in a city square ...",
    "pan left 23 deg, speeding up"

* ``file_name``: relative to ``DATASET/train/``, one row per camera of every *complete* scene;
* ``text``: the scene's caption, the same for every camera of a scene (:func:`scene_caption`, or a
  ``--captioner module:function`` hook called with the scene record);
* ``camera_motion``: the camera's motion in words (:func:`camera_motion_label`), from the trajectory
  parameters the sampler recorded in ``scene.json`` (extra column: the official loader reads only
  ``file_name`` and ``text``).

A scene is complete when its folder ``train/<set>/scene<i>/`` exists (render jobs rename a verified
temporary folder into place in one ``rename``, see ``render_jobs/execute.py``), its ``scene.json``
parses, ``cameras/camera_extrinsics.json`` is there and every camera named in ``scene.json`` has its
``videos/camNN.mp4``. Hidden folders (``.tmp/``, ``.scene1.invalid-*``) are never scenes. In a dataset that
``multicam`` did not plan (no ``plan/plan.json``; the released MultiCamVideo dataset has no ``scene.json``), a
folder without ``scene.json`` is a scene of the videos it holds, captioned from an empty record (no
``camera_motion``).

The file is replaced atomically (:mod:`multicam.io`) under an advisory lock
(``DATASET/.metadata.csv.lock``) held while scanning and writing, so concurrent writers (several
``multicam render`` coordinators on one dataset) serialise and the last file written reflects the last
scan.
"""

from __future__ import annotations

import csv
import fcntl
import importlib
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporters.camera_json import CAMERA_FILE
from multicam.errors import DatasetError
from multicam.io import atomic_write_text

METADATA_FILE = "metadata.csv"
LOCK_FILE = ".metadata.csv.lock"
COLUMNS = ("file_name", "text", "camera_motion")
SCENE_FILE = "scene.json"
#: Present in datasets planned by ``multicam plan`` / ``generate`` (``render_jobs/planner.py`` ``PLAN_FILE``).
PLAN_FILE = "plan/plan.json"

Captioner = Callable[[dict[str, Any]], str]

#: The official loader's camera index rule (``TensorDataset.__getitem__``: ``re.search(r'cam(\d+)', path_tgt)``
#: over the whole path, dataset root included).
_CAM_INDEX = re.compile(r"cam(\d+)")


# -- camera motion labels ---------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def speed_label(speed: Any) -> str:
    """``constant speed``, ``speeding up`` or ``slowing down`` from a camera record's ``speed``.

    The variable profile is ``(1 - exp(-a t)) / (1 - exp(-a))`` (``trajectory/speed.py``): concave for
    ``a > 0`` (fast start: slowing down), convex for ``a < 0`` (speeding up)."""
    if not isinstance(speed, dict) or speed.get("mode") != "variable":
        return "constant speed"
    a = _num(speed.get("a"))
    if a is None or abs(a) < 1e-12:
        return "constant speed"
    return "speeding up" if a < 0 else "slowing down"


def camera_motion_label(cam: dict[str, Any]) -> str:
    """One camera's motion in words from its ``scene.json`` record (``trajectory/sampler.py``
    ``CameraBlockResult.camera_record``): e.g. ``pan left 23 deg, speeding up``.

    ======================  =================================================
    trajectory              label
    ======================  =================================================
    ``pan``                 ``pan left 23 deg, constant speed`` (yaw about the vertical)
    ``tilt``                ``tilt up 12 deg, slowing down``
    ``arc``                 ``arc right 40 deg around the subject, ...``
    ``translation``         ``move forward 1.8 m, ...`` (along the camera's own axis)
    ``random``              ``free path 2.4 m through 2 points, ...``
    ``static``              ``static``
    ``file``                ``given track cams.json:cam03`` (``multicam extend --trajectory-file``)
    ======================  =================================================

    A pure function of the record; fields it lacks are left out of the label."""
    if not isinstance(cam, dict):
        return "unknown"
    kind = str(cam.get("trajectory") or "unknown")
    if kind == "static":
        return "static"
    if kind == "file":  # a track given to `multicam extend --trajectory-file`
        return f"given track {cam.get('source') or ''}".rstrip()
    direction = cam.get("direction")
    dir_txt = f" {direction}" if isinstance(direction, str) and direction else ""
    if kind in ("pan", "tilt", "arc"):
        angle = _num(cam.get("angle_deg"))
        text = f"{kind}{dir_txt}" + (f" {angle:.0f} deg" if angle is not None else "")
        if kind == "arc":
            text += " around the subject"
    elif kind == "translation":
        dist = _num(cam.get("distance_m"))
        text = f"move{dir_txt}" + (f" {dist:.1f} m" if dist is not None else "")
    elif kind == "random":
        length = _num(cam.get("length_m"))
        n = cam.get("n_points")
        text = "free path" + (f" {length:.1f} m" if length is not None else "")
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            text += f" through {n} point{'s' if n != 1 else ''}"
    else:
        text = kind
    return f"{text}, {speed_label(cam.get('speed'))}"


def camera_motion_labels(record: dict[str, Any]) -> dict[str, str]:
    """``camNN`` -> :func:`camera_motion_label` for every camera of a scene record."""
    cams = record.get("cameras") if isinstance(record, dict) else None
    if not isinstance(cams, dict):
        return {}
    return {str(name): camera_motion_label(cam) for name, cam in cams.items()}


# -- captions -----------------------------------------------------------------------------------------


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _part(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _description(part: dict[str, Any]) -> str | None:
    d = part.get("description")
    return d.strip().rstrip(".") if isinstance(d, str) and d.strip() else None


def scene_caption(record: dict[str, Any]) -> str:
    """The template caption of a scene: ``<character> <animation> in <environment>.``

    From the catalog descriptions the plan copied into the record (``character.description``: a noun
    phrase, ``animation.description``: a present-tense verb phrase, ``environment.description``: a noun
    phrase read after "in"); without them, from the ids and tags. The same text for every camera.
    """
    env, char, anim = _part(record, "environment"), _part(record, "character"), _part(record, "animation")
    who = _description(char) or "a person"
    anim_id = anim.get("id")
    does = _description(anim) or (f"performs a {anim_id} motion" if isinstance(anim_id, str) and anim_id
                                  else "moves")
    where = _description(env)
    if where is None:
        tags = [t for t in env.get("tags") or () if isinstance(t, str)]
        env_id = env.get("id")
        if tags:
            where = _article(" ".join(tags) + " scene")
        elif isinstance(env_id, str) and env_id:
            where = f"the {env_id} environment"
        else:
            where = "a scene"
    text = f"{who} {does} in {where}."
    return text[:1].upper() + text[1:]


def default_caption(record: dict[str, Any]) -> str:
    """The caption ``scene.json`` carries (``caption``, written at planning time), else :func:`scene_caption`."""
    cap = record.get("caption") if isinstance(record, dict) else None
    return cap if isinstance(cap, str) and cap.strip() else scene_caption(record)


def load_captioner(spec: str, option: str = "--captioner") -> Captioner:
    """``module:function`` -> the function (called with the scene record dict, returns the caption).

    Raises :class:`DatasetError` naming ``option`` when the module cannot be imported or the function
    is missing or not callable."""
    mod_name, sep, func_name = spec.partition(":")
    if not sep or not mod_name or not func_name:
        raise DatasetError(f"{option} {spec!r}: expected module:function (e.g. mycaptions:caption)")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a hook module next to the user, as ``python -m`` would find it
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the hook's, reported on one line
        raise DatasetError(f"{option} {spec!r}: cannot import {mod_name!r} ({type(exc).__name__}: "
                           f"{_first_line(exc)})") from None
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        raise DatasetError(f"{option} {spec!r}: module {mod_name!r} has no callable {func_name!r}")

    def call(record: dict[str, Any]) -> str:
        try:
            text = func(record)
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(f"{option} {spec!r} raised {type(exc).__name__}: {_first_line(exc)} "
                               f"(scene {record.get('output_dir', '?')})") from None
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{option} {spec!r} returned {type(text).__name__} {text!r:.60} for scene "
                               f"{record.get('output_dir', '?')}; expected a non-empty str")
        return " ".join(text.split())  # one line: the CSV stays one row per camera

    return call


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


# -- scenes present -----------------------------------------------------------------------------------


def _scene_key(name: str) -> tuple[str, int, str]:
    m = re.fullmatch(r"(.*?)(\d+)", name)
    return (m.group(1), int(m.group(2)), name) if m else (name, -1, name)


def iter_scene_folders(dataset: Path) -> Iterator[Path]:
    """``train/<set>/<scene>/`` folders (not hidden), in set order then natural scene order."""
    train = dataset / "train"
    if not train.is_dir():
        return
    for set_dir in sorted(p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")):
        scenes = [p for p in set_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        yield from sorted(scenes, key=lambda p: _scene_key(p.name))


def read_complete_scene(scene_dir: Path, require_scene_json: bool = True) -> tuple[dict[str, Any], list[str]] | None:
    """``(record, camera names)`` when ``scene_dir`` is a complete scene (see the module doc), else None.

    ``require_scene_json=False`` (a dataset that ``multicam`` did not plan, such as the released MultiCamVideo,
    which has no ``scene.json``): a folder without ``scene.json`` is a scene of the videos present, with an
    empty record. A ``scene.json`` that does not parse is never complete."""
    path = scene_dir / SCENE_FILE
    record: Any = {}
    if require_scene_json or path.exists():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    if not isinstance(record, dict) or not os.path.isfile(os.path.join(scene_dir, CAMERA_FILE)):
        return None
    try:  # one listing instead of a stat per camera (13,600 scenes x 10 cameras)
        videos = {e.name for e in os.scandir(os.path.join(scene_dir, "videos")) if e.is_file()}
    except OSError:
        return None
    cams = record.get("cameras")
    if isinstance(cams, dict) and cams:
        names = sorted((str(c) for c in cams), key=_scene_key)
    else:  # no sampler record: the videos present
        names = sorted((v[:-4] for v in videos if v.startswith("cam") and v.endswith(".mp4")), key=_scene_key)
    if not names or not all(f"{n}.mp4" in videos for n in names):
        return None
    return record, names


def _rows(rel: str, record: dict[str, Any], names: list[str], captioner: Captioner) -> list[tuple[str, str, str]]:
    record = dict(record)
    record.setdefault("output_dir", f"train/{rel}")
    text = captioner(record)
    motion = camera_motion_labels(record)
    return [(f"{rel}/videos/{n}.mp4", text, motion.get(n, "")) for n in names]


def render_csv(rows: list[tuple[str, str, str]], header: bool = True) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


# -- the path warning -----------------------------------------------------------------------------------


def cam_in_path_warning(dataset: str | os.PathLike[str]) -> str | None:
    """The warning text when the dataset's absolute path holds ``cam<digit>``, else None."""
    path = os.path.abspath(os.fspath(dataset))
    m = _CAM_INDEX.search(path)
    if m is None:
        return None
    return (f"warning: dataset path {path} contains {m.group(0)!r}: ReCamMaster's train_recammaster.py takes "
            f"each video's camera index from the first re.search(r'cam(\\d+)') over the whole path, so every "
            f"video would read as camera {int(m.group(1))}; move or rename the dataset folder")


def warn_cam_in_path(dataset: str | os.PathLike[str]) -> None:
    """Print :func:`cam_in_path_warning` to stderr (callers call it once per command: ``multicam captions``,
    and :class:`MetadataSync` once per render run)."""
    text = cam_in_path_warning(dataset)
    if text is not None:
        print(text, file=sys.stderr)


# -- writing ----------------------------------------------------------------------------------------------


@contextmanager
def _locked(dataset: Path) -> Iterator[None]:
    with open(dataset / LOCK_FILE, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class MetadataResult:
    path: Path
    scenes: int
    rows: int


class MetadataWriter:
    """Writes ``metadata.csv`` from the complete scenes; remembers the rows of scenes already read.

    A completed scene folder is never replaced in place (render jobs rename new folders into place and
    move bad ones aside), so a scene's rows are cached by its ``scene.json`` (inode, mtime, size): a
    rewrite lists the folders and reads only new scenes' ``scene.json``.
    """

    def __init__(self, dataset: str | os.PathLike[str], captioner: Captioner | None = None,
                 durable: bool = True) -> None:
        self.dataset = Path(dataset)
        self.captioner = captioner or default_caption
        self.durable = durable
        #: scene path below train/ -> (scene.json identity, its rows, its rows as CSV text)
        self._cache: dict[str, tuple[tuple[int, int, int], int, str]] = {}

    def write(self, *, require_scenes: bool = False) -> MetadataResult:
        """Scan and (re)write ``metadata.csv`` under the lock.

        With no complete scene: raise :class:`DatasetError` when ``require_scenes``, else write the file
        only if one exists already (its rows would be stale)."""
        with _locked(self.dataset):
            chunks = [render_csv([])]
            rows = 0
            scenes = 0
            seen: set[str] = set()
            train = self.dataset / "train"
            ours = (self.dataset / PLAN_FILE).exists()  # planned by multicam: every scene has scene.json
            for scene_dir in iter_scene_folders(self.dataset):
                rel = scene_dir.relative_to(train).as_posix()
                try:
                    st = os.stat(scene_dir / SCENE_FILE)
                except OSError:
                    if ours:
                        continue
                    try:  # a foreign dataset's scene without scene.json: keyed by its videos folder
                        st = os.stat(scene_dir / "videos")
                    except OSError:
                        continue
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                hit = self._cache.get(rel)
                if hit is None or hit[0] != key:
                    got = read_complete_scene(scene_dir, require_scene_json=ours)
                    if got is None:
                        continue
                    scene_rows = _rows(rel, got[0], got[1], self.captioner)
                    hit = (key, len(scene_rows), render_csv(scene_rows, header=False))
                    self._cache[rel] = hit
                seen.add(rel)
                rows += hit[1]
                chunks.append(hit[2])
                scenes += 1
            for rel in set(self._cache) - seen:
                del self._cache[rel]
            path = self.dataset / METADATA_FILE
            if not scenes:
                if require_scenes:
                    raise DatasetError(f"{self.dataset}: no complete scene under train/ (train/<set>/scene<i>/ with "
                                       "scene.json, cameras/camera_extrinsics.json and every camera's video)")
                if not path.exists():
                    return MetadataResult(path, 0, 0)
            atomic_write_text(path, "".join(chunks), self.durable)
            return MetadataResult(path, scenes, rows)


def write_metadata(dataset: str | os.PathLike[str], captioner: Captioner | None = None) -> MetadataResult:
    """(Re)write ``DATASET/metadata.csv`` from every complete scene; raise :class:`DatasetError` if none."""
    dataset = Path(dataset)
    if not (dataset / "train").is_dir():
        raise DatasetError(f"{dataset}: no train/ folder (expected the MultiCamVideo layout "
                           "DATASET/train/<set>/scene<i>/)")
    return MetadataWriter(dataset, captioner).write(require_scenes=True)


class MetadataSync:
    """Keeps ``metadata.csv`` in step with a render run: :meth:`scene_done` after scenes complete
    (rewrites at most every ``min_interval_s``, and at most 5% of the time: a rewrite of 13,600 scenes
    takes ~0.4 s once their rows are cached), :meth:`close` at the end of the run (always rewrites).

    A failure to write is reported once on stderr and never stops the run (``multicam captions``
    rewrites the file)."""

    def __init__(self, dataset: str | os.PathLike[str], min_interval_s: float = 10.0) -> None:
        self.writer = MetadataWriter(dataset, durable=False)
        self.min_interval_s = min_interval_s
        self._last = -math.inf
        self._took = 0.0
        self._failed = False
        warn_cam_in_path(dataset)

    def _write(self, durable: bool) -> None:
        self.writer.durable = durable
        t0 = time.monotonic()
        try:
            self.writer.write()
        except Exception as exc:  # noqa: BLE001 - a side product of the run: reported, never fatal to it
            if not self._failed:
                self._failed = True
                print(f"warning: {self.writer.dataset / METADATA_FILE} not updated ({exc}); "
                      "run `multicam captions` to rewrite it", file=sys.stderr)
        self._last = time.monotonic()
        self._took = self._last - t0

    def scene_done(self) -> None:
        if time.monotonic() - self._last >= max(self.min_interval_s, 20 * self._took):
            self._write(durable=False)

    def close(self) -> None:
        self._write(durable=True)
