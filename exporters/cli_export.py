"""``multicam export``: every scene of a dataset in OpenCV, nerfstudio, COLMAP or RealEstate10K conventions."""

from __future__ import annotations

from pathlib import Path

import typer
from tqdm import tqdm

from multicam.errors import check_number, check_out_folder, fail


def scene_dirs_or_fail(dataset: Path, focal_mm: float | None) -> list[Path]:
    """The scene folders below ``dataset`` (exit 2 naming the folder when there are none) after checking
    ``--focal-mm``: the arguments ``export`` and ``stats`` share."""
    from exporters.validate import iter_scene_dirs

    if focal_mm is not None:
        check_number(focal_mm, "--focal-mm", low=0.0, high=10000.0, low_open=True)
    if not dataset.is_dir():
        fail(f"{dataset}: is a file, expected a folder" if dataset.exists() else f"{dataset}: no such folder")
    found = list(iter_scene_dirs(dataset))
    if not found:
        fail(f"{dataset}: no scene folders (no cameras/camera_extrinsics.json below it)")
    return found


def export(
    dataset: Path = typer.Argument(..., help="Dataset root, a split folder, one scene folder, or a folder like "
                                   "val/10basic_trajectories with only cameras/camera_extrinsics.json."),
    to: str = typer.Option(..., "--to", help="opencv, nerfstudio, colmap or realestate10k."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: DATASET/export_<format>); one "
                                    "sub-folder per scene, at the scene's path below DATASET."),
    frames_out: bool = typer.Option(False, "--frames-out", help="Also decode the videos to PNG frames at the "
                                    "paths the camera files name (images/...)."),
    focal_mm: float | None = typer.Option(None, "--focal-mm", help="Focal length in mm for scenes that do not say "
                                          "(no scene.json, no f<focal>_aperture<a> folder); default 24."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Export every scene's cameras (and, when rendered, its depth and mask passes) in another convention:
    right-handed Z-up world in metres, det +1 rotations. See docs/export.md. Exit 2 for bad input (the file and
    the problem named), 0 when every scene was written.

    Example: multicam export demo_dataset --to colmap --out demo_colmap --frames-out
    """
    from exporters.formats import FORMATS, ExportError, export_scene, load_scene

    if to not in FORMATS:
        fail(f"--to: must be one of {', '.join(FORMATS)}, got {to!r}")
    scenes = scene_dirs_or_fail(dataset, focal_mm)
    out = out if out is not None else dataset / f"export_{to}"
    check_out_folder(out)
    notes: set[str] = set()
    written = 0
    bar = tqdm(scenes, unit="scene", desc=f"export {to}", disable=not progress)
    for scene_dir in bar:
        try:
            scene = load_scene(scene_dir, dataset, focal_mm)
            if frames_out and len(scene.videos) < len(scene.names):
                notes.add(f"note: {scene.rel}: --frames-out: {len(scene.names) - len(scene.videos)} camera(s) have "
                          "no video, so no frames (the camera files still name their paths)")
            if scene.sources["focal"].startswith("default") or scene.sources["size"].startswith("default"):
                notes.add(f"note: {scene.rel}: focal {scene.sources['focal']}, size {scene.sources['size']}")
            res = export_scene(scene, to, out, dataset, frames_out=frames_out)
        except ExportError as exc:
            bar.close()
            fail(str(exc))
        except OSError as exc:
            bar.close()
            fail(f"{out}: cannot write ({exc})", code=1)
        written += res.files
    bar.close()
    for n in sorted(notes):
        typer.echo(n, err=True)
    typer.echo(f"wrote {len(scenes)} scene(s) as {to} to {out} ({written} files)")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
