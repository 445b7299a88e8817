"""``multicam validate``: check a MultiCamVideo-format dataset on disk; ``multicam captions``: write its
``metadata.csv``."""

from __future__ import annotations

from pathlib import Path

import typer
from tqdm import tqdm

from multicam.errors import fail


def validate(
    dataset: Path = typer.Argument(..., help="Dataset root, a split folder or one scene folder."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every video (exact frame counts)."),
    frames: int | None = typer.Option(None, "--frames", help="Expected frames per video (e.g. 81)."),
    size: int | None = typer.Option(None, "--size", help="Expected square frame size in pixels (e.g. 1280)."),
) -> None:
    """Check every scene: camera file parses, one decodable mp4 per camera, frame counts match.

    Exit code 0 when every scene is complete, 1 when any problem was found (all are listed), 2 for
    bad arguments.
    """
    from exporters.validate import iter_scene_dirs, validate_scene_dir

    if size is not None and not 16 <= size <= 8192:
        fail(f"--size: must be an integer in 16..8192 pixels, got {size}")
    if frames is not None and frames < 1:
        fail(f"--frames: must be >= 1, got {frames}")
    if not dataset.exists():
        fail(f"{dataset}: no such file or folder")
    scenes = list(iter_scene_dirs(dataset))
    if not scenes:
        fail(f"{dataset}: no scene folders (no cameras/camera_extrinsics.json below it)")
    problems = 0
    cams = 0
    for scene in tqdm(scenes, unit="scene", desc="validate", disable=len(scenes) < 3):
        rep = validate_scene_dir(scene, decode=decode, expect_frames=frames,
                                 expect_size=(size, size) if size else None)
        cams += rep.cameras
        for p in rep.problems:
            typer.echo(p, err=True)
        problems += len(rep.problems)
    typer.echo(f"{len(scenes)} scenes, {cams} cameras checked: "
               + ("all complete" if not problems else f"{problems} problems"))
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
