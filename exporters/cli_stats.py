"""``multicam stats``: distributions of a dataset's cameras and scenes, and every break of the sampling rules."""

from __future__ import annotations

from pathlib import Path

import typer

from multicam.errors import check_out_folder, fail


def stats(
    dataset: Path = typer.Argument(..., help="Dataset root, a split folder, one scene folder, or a folder like "
                                   "val/10basic_trajectories with only cameras/camera_extrinsics.json."),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the numbers as JSON to this file."),
    out: Path | None = typer.Option(None, "--out", help="Folder for the PNG histograms (default: DATASET/stats)."),
    png: bool = typer.Option(True, "--png/--no-png", help="Write the PNG histograms."),
    focal_mm: float | None = typer.Option(None, "--focal-mm", help="Focal length in mm for scenes that do not say "
                                          "(for the character-in-view fraction); default 24."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any rule is broken."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Print a table of the dataset's distributions (trajectory type, direction and role, speed mode, start
    distance, pitch, angle and length per type, camera set, environment/character/animation use, fraction of
    frames with the character in view per camera) and flag everything outside the paper's sampling rules. See
    docs/stats.md.

    Example: multicam stats demo_dataset --json demo_stats.json --out demo_stats
    """
    from tqdm import tqdm

    from exporters.cli_export import scene_dirs_or_fail
    from exporters.formats import ExportError
    from exporters.stats import DatasetStats, scene_stats, stats_json, text_table, write_histograms, write_stats_json

    scenes = scene_dirs_or_fail(dataset, focal_mm)
    out = out if out is not None else dataset / "stats"
    if png:
        check_out_folder(out)
    if json_path is not None:
        check_out_folder(json_path.parent, "--json")
    from exporters.formats import load_scene, read_scene_record

    result = DatasetStats()
    bar = tqdm(scenes, unit="scene", desc="stats", disable=not progress)
    for d in bar:
        try:
            s, cams, flags = scene_stats(load_scene(d, dataset, focal_mm), read_scene_record(d))
        except ExportError as exc:
            bar.close()
            fail(str(exc))
        result.scenes.append(s)
        result.cameras.extend(cams)
        result.flags.extend(flags)
    bar.close()
    summary = stats_json(result)
    typer.echo(text_table(summary), nl=False)
    if json_path is not None:
        typer.echo(f"wrote {write_stats_json(summary, json_path)}")
    if png:
        try:
            paths = write_histograms(summary, out)
        except ImportError:
            fail("--png: matplotlib is not installed (pip install matplotlib), or pass --no-png")
        typer.echo(f"wrote {len(paths)} histogram(s) to {out}")
    raise typer.Exit(1 if strict and result.flags else 0)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
