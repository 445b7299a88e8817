"""Look at a scene before training on it: its trajectories as a PNG, its videos as one synchronized grid mp4, and a
self-contained HTML page showing both (``multicam preview``, ``docs/preview.md``).

Everything is drawn from a :class:`PreviewScene` (plain data: the UE poses, camera names, each camera's motion
label, the character's points, the videos present), read from a scene folder, from a bare
``camera_extrinsics.json`` or made from the ten validation presets. Poses go through :mod:`multicam.conventions`
once (UE cm -> OpenCV camera-to-world in the right-handed Z-up world, metres); every drawing is in that world.

Outputs in ``out`` (each written atomically):

``trajectories.png``  top view and 3D view: one colour per camera, its path, a dot at frame 0, frusta every few
                      frames, the character marked (ground point to aim point), equal axes, a legend with each
                      camera's type.
``grid.mp4``          the videos side by side (2 rows x 5 columns for 10 cameras), each under a label bar with the
                      camera's name and type, a footer with the frame number; H.264 yuv420p (the shared encoder).
``poster.png``        the grid's middle frame (the page's poster image).
``index.html``        one file: the PNGs embedded as base64, the video embedded too when it is small (else linked
                      relative, ``grid.mp4``), the camera table.
``layout.json``       where each camera's tile and label are in the grid, its colour and label, the files.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from exporters.camera_json import CAMERA_FILE, CameraFileError, load_json_file, read_camera_json
from exporters.metadata import camera_motion_labels
from multicam.conventions import SENSOR_WIDTH_MM, ue_to_opencv_c2w, ue_to_rh_points
from multicam.io import atomic_write_bytes, atomic_write_json, atomic_write_text

SCENE_FILE = "scene.json"
#: Frustum drawing when the focal length is not recorded (the dataset's most common camera set).
DEFAULT_FOCAL_MM = 24.0
#: Videos larger than this are linked from the page (relative ``grid.mp4``) instead of embedded.
EMBED_VIDEO_MAX_BYTES = 12 * 1024 * 1024
FRUSTA_PER_CAMERA = 6
PRESET_LABELS: tuple[str, ...] = (
    "pan right 20 deg", "pan left 20 deg", "tilt up 10 deg", "tilt down 10 deg", "dolly in 2 m",
    "dolly out 2 m", "up 1 m, subject centred", "down 1 m, subject centred", "arc left 30 deg", "arc right 30 deg",
)


class PreviewError(ValueError):
    """Input that cannot be previewed; one line naming the file."""


@dataclass
class PreviewScene:
    """What a preview shows (UE frame, cm, as stored)."""

    title: str
    poses_ue: NDArray[np.float64]  # (F, C, 4, 4) frame-major
    cameras: list[str]
    labels: dict[str, str]  # camNN -> motion type in words (may lack cameras)
    focal_mm: float | None = None
    character_ground_cm: NDArray[np.float64] | None = None  # (3,)
    character_aim_cm: NDArray[np.float64] | None = None  # (3,)
    videos: dict[str, Path] = field(default_factory=dict)  # camNN -> its mp4, when present
    caption: str | None = None
    source: str = ""


# -- reading ---------------------------------------------------------------------------------------------------


def _point(value: Any) -> NDArray[np.float64] | None:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (3,) and np.all(np.isfinite(v)) else None


def _focal_from_folder(name: str) -> float | None:
    m = re.fullmatch(r"f(\d+(?:\.\d+)?)_aperture[\d.]+", name)
    return float(m.group(1)) if m else None


def _part(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def load_scene(path: Path) -> PreviewScene:
    """A scene folder (``cameras/camera_extrinsics.json`` below it) or a camera file -> :class:`PreviewScene`.

    ``scene.json`` next to ``cameras/`` gives the labels (``camera_motion``, else the sampler's record), the
    character and the camera set; without it (the released dataset) cameras are labelled by name only."""
    path = Path(path)
    if path.is_dir():
        scene_dir, cam_file = path, path / CAMERA_FILE
    else:
        cam_file = path
        scene_dir = path.parent.parent if path.parent.name == "cameras" else path.parent
    if not cam_file.exists():
        raise PreviewError(f"{path}: no {CAMERA_FILE} below it (expected a scene folder or a camera file)")
    try:
        poses, names = read_camera_json(cam_file)
    except CameraFileError as exc:
        raise PreviewError(str(exc)) from None
    record: dict[str, Any] = {}
    scene_file = scene_dir / SCENE_FILE
    if scene_file.exists():
        try:
            loaded = load_json_file(scene_file)
        except CameraFileError as exc:
            raise PreviewError(str(exc)) from None
        if not isinstance(loaded, dict):
            raise PreviewError(f"{scene_file}: expected a JSON object, got {type(loaded).__name__}")
        record = loaded
    motion = record.get("camera_motion")
    labels = {str(k): str(v) for k, v in motion.items()} if isinstance(motion, dict) else camera_motion_labels(record)
    char = _part(record, "character")
    cam_set = _part(record, "camera_set")
    focal = cam_set.get("focal_mm") if isinstance(cam_set.get("focal_mm"), int | float) else None
    videos = {n: scene_dir / "videos" / f"{n}.mp4" for n in names if (scene_dir / "videos" / f"{n}.mp4").is_file()}
    try:
        title = scene_dir.resolve().relative_to(scene_dir.resolve().parent.parent).as_posix()
    except ValueError:
        title = scene_dir.name
    caption = record.get("caption")
    return PreviewScene(
        title=title, poses_ue=poses, cameras=names, labels=labels,
        focal_mm=float(focal) if focal is not None else _focal_from_folder(scene_dir.parent.name),
        character_ground_cm=_point(char.get("location_cm")), character_aim_cm=_point(char.get("aim_point_cm")),
        videos=videos, caption=caption if isinstance(caption, str) else None, source=str(cam_file))


def preset_scene(distance_m: float = 4.0, frames: int = 81) -> PreviewScene:
    """The ten validation trajectories (cam_type 1..10 as cam01..cam10) around their subject."""
    from trajectory.presets import SUBJECT_HEIGHT_CM, preset_poses

    poses = preset_poses(distance_m, frames).swapaxes(0, 1)
    names = [f"cam{i:02d}" for i in range(1, 11)]
    return PreviewScene(
        title="validation presets (val/10basic_trajectories)", poses_ue=poses, cameras=names,
        labels=dict(zip(names, PRESET_LABELS, strict=True)),
        character_ground_cm=np.zeros(3), character_aim_cm=np.array([0.0, 0.0, SUBJECT_HEIGHT_CM]),
        source=f"trajectory.presets.preset_poses(distance_m={distance_m:g}, frames={frames})")


# -- geometry ----------------------------------------------------------------------------------------------------


def camera_colours(n: int) -> list[str]:
    """``n`` distinct colours (``#rrggbb``): matplotlib's tab10, then tab20, then evenly spaced hues."""
    from matplotlib import colormaps, colors

    if n <= 10:
        cmap, k = colormaps["tab10"], 10
    elif n <= 20:
        cmap, k = colormaps["tab20"], 20
    else:
        cmap, k = colormaps["hsv"], n + 1
    return [colors.to_hex(cmap(i / k if k > 20 else i)) for i in range(n)]


def frustum_frames(n_frames: int, per_camera: int = FRUSTA_PER_CAMERA) -> NDArray[np.int64]:
    """Frame indices that get a frustum: evenly spaced, first and last included."""
    return np.unique(np.linspace(0, n_frames - 1, min(per_camera, n_frames)).round().astype(np.int64))


def frusta_rh(c2w: NDArray[np.float64], focal_mm: float, depth_m: float) -> NDArray[np.float64]:
    """Camera-to-world OpenCV ``(..., 4, 4)`` -> frustum points ``(..., 5, 3)``: the centre, then the image corners
    top-left, top-right, bottom-right, bottom-left at ``depth_m`` along the view (square sensor)."""
    half = SENSOR_WIDTH_MM / 2.0 / focal_mm
    corners = depth_m * np.array([[-half, -half, 1.0], [half, -half, 1.0], [half, half, 1.0], [-half, half, 1.0]])
    world = np.einsum("...ij,kj->...ki", c2w[..., :3, :3], corners) + c2w[..., None, :3, 3]
    return np.concatenate([c2w[..., None, :3, 3], world], axis=-2)


@dataclass
class SceneGeometry:
    centres_m: NDArray[np.float64]  # (F, C, 3) right-handed Z-up world, metres
    frusta_m: NDArray[np.float64]  # (K, C, 5, 3) at frames ``frustum_at``
    frustum_at: NDArray[np.int64]
    ground_m: NDArray[np.float64] | None
    aim_m: NDArray[np.float64] | None
    extent_m: float


def scene_geometry(scene: PreviewScene) -> SceneGeometry:
    c2w = ue_to_opencv_c2w(scene.poses_ue)
    centres = c2w[..., :3, 3]
    ground = ue_to_rh_points(scene.character_ground_cm) if scene.character_ground_cm is not None else None
    aim = ue_to_rh_points(scene.character_aim_cm) if scene.character_aim_cm is not None else None
    pts = [centres.reshape(-1, 3)] + [p[None] for p in (ground, aim) if p is not None]
    allp = np.concatenate(pts)
    extent = float(max(np.ptp(allp, axis=0).max(), 0.5))
    at = frustum_frames(centres.shape[0])
    frusta = frusta_rh(c2w[at], scene.focal_mm or DEFAULT_FOCAL_MM, 0.08 * extent)
    return SceneGeometry(centres, frusta, at, ground, aim, extent)


# -- the trajectory figure ---------------------------------------------------------------------------------------


def _legend_label(scene: PreviewScene, name: str) -> str:
    label = scene.labels.get(name)
    return f"{name}: {label}" if label else name


def plot_trajectories(scene: PreviewScene, path: Path, colours: list[str]) -> Path:
    """Write the top view + 3D view PNG (see the module doc)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    g = scene_geometry(scene)
    fig = Figure(figsize=(15, 8.2), dpi=110)
    top = fig.add_axes((0.05, 0.22, 0.42, 0.66))
    ax3: Any = fig.add_axes((0.52, 0.18, 0.46, 0.72), projection="3d")  # mpl_toolkits' Axes3D (untyped)
    ring = [1, 2, 3, 4, 1]
    for c in range(len(scene.cameras)):
        col = colours[c]
        p = g.centres_m[:, c]
        top.plot(p[:, 0], p[:, 1], color=col, lw=2)
        top.plot(p[0, 0], p[0, 1], "o", color=col, ms=6)
        ax3.plot(p[:, 0], p[:, 1], p[:, 2], color=col, lw=2)
        ax3.scatter([p[0, 0]], [p[0, 1]], [p[0, 2]], color=col, s=18, depthshade=False)
        for fr in g.frusta_m[:, c]:
            centre, corners = fr[0], fr[1:]
            for k in range(4):
                top.plot([centre[0], corners[k, 0]], [centre[1], corners[k, 1]], color=col, lw=0.7)
                ax3.plot(*np.stack([centre, corners[k]]).T, color=col, lw=0.7)
            top.plot(fr[ring, 0], fr[ring, 1], color=col, lw=0.7)
            ax3.plot(*fr[ring].T, color=col, lw=0.7)
            ax3.plot(*corners[:2].T, color=col, lw=2.0)  # the top edge: which way is up
    handles = [Line2D([], [], color=colours[c], lw=3, label=_legend_label(scene, n))
               for c, n in enumerate(scene.cameras)]
    if g.aim_m is not None or g.ground_m is not None:
        mark = g.aim_m if g.aim_m is not None else g.ground_m
        assert mark is not None
        foot = g.ground_m if g.ground_m is not None else np.array([mark[0], mark[1], 0.0])
        top.plot(mark[0], mark[1], "*", color="black", ms=18, zorder=5)
        ax3.plot([foot[0], mark[0]], [foot[1], mark[1]], [foot[2], mark[2]], color="black", lw=3)
        ax3.scatter([mark[0]], [mark[1]], [mark[2]], marker="*", color="black", s=200, depthshade=False)
        handles.append(Line2D([], [], color="black", marker="*", ms=14, ls="", label="character (aim point)"))
    top.set_aspect("equal", adjustable="datalim")
    top.set_xlabel("x (m)")
    top.set_ylabel("y (m)")
    top.set_title("top view (right-handed, Z up, metres)")
    top.grid(True, alpha=0.3)
    pts = g.centres_m.reshape(-1, 3)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if g.aim_m is not None:
        lo, hi = np.minimum(lo, g.aim_m), np.maximum(hi, g.aim_m)
    if g.ground_m is not None:
        lo, hi = np.minimum(lo, g.ground_m), np.maximum(hi, g.ground_m)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2 * 1.1, 0.3)
    ax3.set_xlim(mid[0] - half, mid[0] + half)
    ax3.set_ylim(mid[1] - half, mid[1] + half)
    ax3.set_zlim(mid[2] - half, mid[2] + half)
    ax3.set_box_aspect((1, 1, 1))
    ax3.set_xlabel("x (m)")
    ax3.set_ylabel("y (m)")
    ax3.set_zlabel("z (m)")
    ax3.set_title("3D (equal axes)")
    focal = f"{scene.focal_mm:g} mm" if scene.focal_mm else f"{DEFAULT_FOCAL_MM:g} mm (not recorded)"
    fig.suptitle(f"{scene.title}: {len(scene.cameras)} cameras x {g.centres_m.shape[0]} frames; dot = frame 0, "
                 f"frusta at frames {', '.join(map(str, g.frustum_at))}, focal {focal}", fontsize=12, y=0.985)
    fig.legend(handles=handles, loc="lower center", ncol=3 if len(handles) > 8 else 2, fontsize=10, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue(), durable=False)


# -- the grid video -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class GridLayout:
    """Where everything is in the grid video (pixels, top-left origin)."""

    rows: int
    cols: int
    tile_px: int
    label_px: int
    footer_px: int
    width: int
    height: int
    tiles: dict[str, Box]  # the video picture of each camera
    labels: dict[str, Box]  # its label bar, above the picture

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "cols": self.cols, "tile_px": self.tile_px, "label_px": self.label_px,
                "footer_px": self.footer_px, "width": self.width, "height": self.height}


def grid_layout(cameras: list[str], tile_px: int = 256) -> GridLayout:
    """Two rows (one for 1-3 cameras: 2 x 5 for the dataset's ten), cameras left to right then top to bottom,
    each tile under its label bar, a footer bar below; every size even (yuv420p)."""
    if tile_px < 32 or tile_px % 2:
        raise ValueError(f"tile_px must be an even number >= 32, got {tile_px}")
    n = len(cameras)
    rows = 1 if n <= 3 else 2
    cols = -(-n // rows)
    label = max(24, (tile_px // 6) // 2 * 2)  # two lines: the name, then the type
    tiles, labels = {}, {}
    for i, name in enumerate(cameras):
        r, c = divmod(i, cols)
        x, y = c * tile_px, r * (tile_px + label)
        labels[name] = Box(x, y, tile_px, label)
        tiles[name] = Box(x, y + label, tile_px, tile_px)
    footer = label // 2 // 2 * 2 + 2
    return GridLayout(rows, cols, tile_px, label, footer, cols * tile_px, rows * (tile_px + label) + footer,
                      tiles, labels)


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _fit_tile(frame: NDArray[np.uint8], tile_px: int) -> NDArray[np.uint8]:
    """Scale a frame to fit ``tile_px`` square, keeping its aspect, centred on black."""
    from PIL import Image

    h, w = frame.shape[:2]
    s = tile_px / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    img = Image.fromarray(frame).resize((nw, nh), Image.Resampling.NEAREST if s >= 1 else Image.Resampling.BOX)
    out = np.zeros((tile_px, tile_px, 3), np.uint8)
    y0, x0 = (tile_px - nh) // 2, (tile_px - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = np.asarray(img)
    return out


def grid_background(scene: PreviewScene, layout: GridLayout, colours: list[str]) -> NDArray[np.uint8]:
    """The parts of every grid frame that do not change: label bars (colour swatch, name, type), empty tiles."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (layout.width, layout.height), (24, 24, 24))
    draw = ImageDraw.Draw(img)
    font = _font(max(8, int(layout.label_px * 0.36)))
    for c, name in enumerate(scene.cameras):
        lb, tb = layout.labels[name], layout.tiles[name]
        sw = max(6, lb.height // 4)
        draw.rectangle((lb.x, lb.y, lb.x + lb.width - 1, lb.y + lb.height - 1), fill=(40, 40, 40))
        draw.rectangle((lb.x, lb.y, lb.x + sw - 1, lb.y + lb.height - 1), fill=colours[c])
        x, w = lb.x + sw + 4, lb.width - sw - 8
        draw.text((x, lb.y + lb.height // 4), name, fill=(255, 255, 255), font=font, anchor="lm")
        draw.text((x, lb.y + 3 * lb.height // 4), _fit(draw, scene.labels.get(name, ""), font, w),
                  fill=(210, 210, 210), font=font, anchor="lm")
        if name not in scene.videos:
            draw.text((tb.x + tb.width // 2, tb.y + tb.height // 2), "no video", fill=(160, 160, 160), font=font,
                      anchor="mm")
    return np.asarray(img).copy()


def _footer(frame: NDArray[np.uint8], layout: GridLayout, text: str) -> None:
    from PIL import Image, ImageDraw

    y0 = layout.height - layout.footer_px
    bar = Image.new("RGB", (layout.width, layout.footer_px), (24, 24, 24))
    ImageDraw.Draw(bar).text((6, layout.footer_px // 2), text, fill=(220, 220, 220),
                             font=_font(max(8, int(layout.footer_px * 0.7))), anchor="lm")
    frame[y0:] = np.asarray(bar)


def _streams(scene: PreviewScene) -> dict[str, Iterator[NDArray[np.uint8]]]:
    from exporters.video import iter_video_frames

    return {n: iter_video_frames(p) for n, p in scene.videos.items()}


def video_fps(scene: PreviewScene) -> float:
    from exporters.video import _av

    av = _av()
    for p in scene.videos.values():
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            rate = s.average_rate or s.base_rate
            if rate:
                return float(rate)
    return 15.0


def write_grid_video(scene: PreviewScene, layout: GridLayout, colours: list[str], path: Path, fps: float,
                     poster_at: int, on_frame: Callable[[], None] | None = None) -> NDArray[np.uint8]:
    """Encode the grid mp4, frame ``i`` = frame ``i`` of every video (a video that ends early holds its last
    frame); returns the grid frame ``poster_at``."""
    from exporters.video import Mp4Writer

    base = grid_background(scene, layout, colours)
    streams = _streams(scene)
    last: dict[str, NDArray[np.uint8]] = {}
    n_frames = scene.poses_ue.shape[0]
    poster = base
    try:
        with Mp4Writer(path, layout.width, layout.height, fps=fps, crf=20) as wr:
            for i in range(n_frames):
                frame = base.copy()
                for name, it in streams.items():
                    got = next(it, None)
                    if got is not None:
                        last[name] = _fit_tile(got, layout.tile_px)
                    if name in last:
                        b = layout.tiles[name]
                        frame[b.y:b.y + b.height, b.x:b.x + b.width] = last[name]
                _footer(frame, layout, f"{scene.title}   frame {i} / {n_frames - 1}   {fps:g} fps")
                wr.write(frame)
                if i == poster_at:
                    poster = frame
                if on_frame is not None:
                    on_frame()
    finally:
        for it in streams.values():
            close = getattr(it, "close", None)
            if close is not None:
                close()
    return poster


# -- the page ------------------------------------------------------------------------------------------------------


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png_bytes(frame: NDArray[np.uint8]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def page_html(scene: PreviewScene, colours: list[str], trajectories_png: bytes, poster_png: bytes | None,
              video_src: str | None) -> str:
    """The self-contained page: every image inline; the video inline or linked relative."""
    e = html.escape
    rows = "".join(
        f"<tr><td><span class=sw style=\"background:{colours[c]}\"></span>{e(n)}</td>"
        f"<td>{e(scene.labels.get(n, '(type not recorded)'))}</td>"
        f"<td>{'videos/' + e(n) + '.mp4' if n in scene.videos else 'no video'}</td></tr>"
        for c, n in enumerate(scene.cameras))
    if video_src is not None:
        poster = f' poster="{_data_uri("image/png", poster_png)}"' if poster_png else ""
        video = (f'<video controls loop muted playsinline preload="auto"{poster} src="{e(video_src)}">'
                 f'your browser cannot play H.264 mp4</video>')
    else:
        video = "<p class=note>No videos in this scene (camera poses only).</p>"
    caption = f"<p class=caption>{e(scene.caption)}</p>" if scene.caption else ""
    n_frames = scene.poses_ue.shape[0]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MultiCam preview: {e(scene.title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; background: #fafafa; color: #222; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 22px 0 8px; }}
.caption {{ font-style: italic; max-width: 1100px; }} .note {{ color: #666; }}
img, video {{ max-width: 100%; border: 1px solid #ccc; background: #fff; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 12px 3px 4px; border-bottom: 1px solid #ddd; }}
.sw {{ display: inline-block; width: 14px; height: 14px; margin-right: 6px; vertical-align: -2px; }}
</style></head>
<body>
<h1>{e(scene.title)}</h1>
<p>{len(scene.cameras)} cameras, {n_frames} frames; source <code>{e(scene.source)}</code></p>
{caption}
<h2>Synchronized videos</h2>
{video}
<h2>Trajectories</h2>
<img alt="camera trajectories, top view and 3D" src="{_data_uri("image/png", trajectories_png)}">
<h2>Cameras</h2>
<table><tr><th>camera</th><th>type</th><th>video</th></tr>{rows}</table>
</body></html>
"""


@dataclass
class PreviewResult:
    out: Path
    files: dict[str, Path]
    frames: int
    cameras: int
    videos: int


def write_preview(scene: PreviewScene, out: Path, tile_px: int = 256,
                  on_frame: Callable[[], None] | None = None) -> PreviewResult:
    """Write every output of the module doc into ``out``; ``on_frame`` is called per grid frame (progress)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colours = camera_colours(len(scene.cameras))
    files = {"trajectories": plot_trajectories(scene, out / "trajectories.png", colours)}
    layout = grid_layout(scene.cameras, tile_px)
    n_frames = scene.poses_ue.shape[0]
    poster_at = n_frames // 2
    poster_png: bytes | None = None
    video_src: str | None = None
    fps = 15.0
    if scene.videos:
        fps = video_fps(scene)
        poster = write_grid_video(scene, layout, colours, out / "grid.mp4", fps, poster_at, on_frame)
        files["grid"] = out / "grid.mp4"
        poster_png = _png_bytes(poster)
        files["poster"] = atomic_write_bytes(out / "poster.png", poster_png, durable=False)
        data = files["grid"].read_bytes()
        video_src = _data_uri("video/mp4", data) if len(data) <= EMBED_VIDEO_MAX_BYTES else "grid.mp4"
    page = page_html(scene, colours, files["trajectories"].read_bytes(), poster_png, video_src)
    files["page"] = atomic_write_text(out / "index.html", page, durable=False)
    layout_doc = {
        "version": 1,
        "title": scene.title,
        "source": scene.source,
        "frames": n_frames,
        "fps": fps,
        "files": {k: p.name for k, p in files.items()},
        "video_embedded": video_src is not None and video_src.startswith("data:"),
        "poster_frame": poster_at if scene.videos else None,
        "grid": layout.to_json() if scene.videos else None,
        "cameras": [
            {"name": n, "label": scene.labels.get(n), "colour": colours[c],
             "video": f"videos/{n}.mp4" if n in scene.videos else None,
             "tile": vars(layout.tiles[n]) if scene.videos else None,
             "label_box": vars(layout.labels[n]) if scene.videos else None}
            for c, n in enumerate(scene.cameras)],
    }
    files["layout"] = atomic_write_json(out / "layout.json", layout_doc)
    return PreviewResult(out, files, n_frames, len(scene.cameras), len(scene.videos))
