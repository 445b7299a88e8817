"""``multicam validate``: check a MultiCamVideo-format dataset on disk; ``multicam captions``: write its
``metadata.csv``."""

from __future__ import annotations

from pathlib import Path

import typer
from tqdm import tqdm

from exporters.validate import MAX_STEP_M, MAX_TURN_DEG
from multicam.errors import check_number, fail


def validate(
    dataset: Path = typer.Argument(..., help="Dataset root, a split folder or one scene folder."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every video (exact frame counts, "
                                "codec, black or frozen pictures)."),
    frames: int | None = typer.Option(None, "--frames", help="Expected frames per video (e.g. 81)."),
    size: int | None = typer.Option(None, "--resolution", "--size", help="Expected square frame size in pixels "
                                    "(e.g. 1280; --size is the old name)."),
    max_step_m: float = typer.Option(MAX_STEP_M, "--max-step-m", help="Largest camera move between two frames, "
                                     "metres; more is a teleport."),
    max_turn_deg: float = typer.Option(MAX_TURN_DEG, "--max-turn-deg", help="Largest camera turn between two "
                                       "frames, degrees; more is a teleport."),
    json_report: Path | None = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Check every scene: camera file, rotations, teleports, scene.json, videos (H.264 yuv420p, frame counts,
    black or frozen), the plan's scene folders and metadata.csv. Each problem is one line starting with its code
    (docs/validate.md).

    Exit code 0 when every scene is complete, 1 when any problem was found (all are listed), 2 for
    bad arguments.

    Example: multicam validate demo_dataset --frames 81 --json report.json
    """
    from exporters.validate import Limits, iter_scene_dirs, validate_dataset
    from multicam.io import atomic_write_json

    if size is not None and not 16 <= size <= 8192:
        fail(f"--resolution: must be an integer in 16..8192 pixels, got {size}")
    if frames is not None and frames < 1:
        fail(f"--frames: must be >= 1, got {frames}")
    check_number(max_step_m, "--max-step-m", low=0.0, low_open=True)
    check_number(max_turn_deg, "--max-turn-deg", low=0.0, high=180.0, low_open=True)
    if json_report is not None and json_report.is_dir():
        fail(f"--json {json_report}: is a folder, expected a file name")
    if not dataset.exists():
        fail(f"{dataset}: no such file or folder")
    scenes = list(iter_scene_dirs(dataset))
    if not scenes:
        fail(f"{dataset}: no scene folders (no cameras/camera_extrinsics.json, scene.json or videos/ below it)")
    limits = Limits(decode, frames, (size, size) if size else None, max_step_m, max_turn_deg)
    with tqdm(total=len(scenes), unit="scene", desc="validate", disable=no_progress or len(scenes) < 3) as bar:
        rep = validate_dataset(dataset, limits, scenes, on_scene=lambda _: bar.update(1))
    problems = rep.all_problems()
    for p in problems:
        typer.echo(p.line(), err=True)
    if json_report is not None:
        try:
            atomic_write_json(json_report, rep.to_json())
        except OSError as exc:
            fail(f"--json {json_report}: cannot write ({exc.strerror or exc})")
    counts = rep.to_json()["counts"]
    cams = sum(s.cameras for s in rep.scenes)
    typer.echo(f"{len(rep.scenes)} scenes, {cams} cameras checked: "
               + ("all complete" if not problems else
                  f"{len(problems)} problems (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"))
    raise typer.Exit(1 if problems else 0)


def captions(
    dataset: Path = typer.Argument(..., help="Dataset root (the folder holding train/)."),
    captioner: str | None = typer.Option(None, "--captioner", help="Caption hook module:function, called with "
                                         "each scene's record (scene.json as a dict); returns the caption str."),
) -> None:
    """(Re)write DATASET/metadata.csv (columns file_name,text,camera_motion) from every complete scene: the
    file ReCamMaster's train_recammaster.py reads. Exit 2 for bad input (no dataset, no complete scene, a
    --captioner that cannot be imported, raises or returns no text)."""
    from exporters.metadata import load_captioner, warn_cam_in_path, write_metadata
    from multicam.errors import DatasetError

    if not dataset.is_dir():
        fail(f"{dataset}: no such folder")
    warn_cam_in_path(dataset)
    try:
        hook = load_captioner(captioner) if captioner is not None else None
        res = write_metadata(dataset, hook)
    except DatasetError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{dataset}: cannot write metadata.csv ({exc})")
    typer.echo(f"wrote {res.path}: {res.rows} videos of {res.scenes} scene(s)")


def register(app: typer.Typer) -> None:
    app.command("validate", epilog="Example: multicam validate demo_dataset --decode")(validate)
    app.command("captions", epilog=("Example: multicam captions "
                              "demo_dataset --captioner my_pkg.caption:describe"))(captions)
