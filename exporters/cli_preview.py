"""``multicam preview``: trajectories PNG, synchronized grid mp4 and a self-contained HTML page of one scene."""

from __future__ import annotations

from pathlib import Path

import typer
from tqdm import tqdm

from multicam.errors import check_out_folder, fail


def preview(
    source: Path | None = typer.Argument(None, help="A scene folder (holding cameras/camera_extrinsics.json) or a "
                                         "camera_extrinsics.json file."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: preview/<scene name>)."),
    presets: bool = typer.Option(False, "--presets", help="Preview the ten validation trajectories instead "
                                 "(no SOURCE)."),
    tile_px: int = typer.Option(256, "--tile-px", help="Size of each camera's tile in the grid video, pixels "
                                "(even, 32..1280)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Write trajectories.png (top view and 3D, frusta, the character, a legend with each camera's type), grid.mp4
    (the videos side by side, labelled, H.264 yuv420p), poster.png, index.html (one self-contained page showing
    both) and layout.json into --out.

    Example: multicam preview demo_dataset/train/f24_aperture5/scene1 --out /tmp/scene1_preview
    """
    from exporters.preview import PreviewError, load_scene, preset_scene, write_preview

    if presets == (source is not None):
        fail("give a SOURCE (scene folder or camera_extrinsics.json) or --presets, not both" if presets
             else "missing SOURCE: a scene folder or camera_extrinsics.json (or --presets)")
    if not (32 <= tile_px <= 1280 and tile_px % 2 == 0):
        fail(f"--tile-px: must be an even integer in 32..1280, got {tile_px}")
    if source is not None and not source.exists():
        fail(f"{source}: no such file or folder")
    try:
        scene = preset_scene() if presets else load_scene(source)  # type: ignore[arg-type]
    except PreviewError as exc:
        fail(str(exc))
    if out is None:
        out = Path("preview") / ("presets" if presets else scene.title.replace("/", "_"))
    check_out_folder(out)
    frames = scene.poses_ue.shape[0] if scene.videos else 0
    with tqdm(total=frames, unit="frame", desc="preview", disable=no_progress or not frames) as bar:
        res = write_preview(scene, out, tile_px, on_frame=lambda: bar.update(1))
    typer.echo(f"wrote {', '.join(p.name for p in res.files.values())} to {res.out} ({res.cameras} cameras, "
               f"{res.frames} frames, {res.videos} videos)")


def register(app: typer.Typer) -> None:
    app.command("preview")(preview)
