"""``multicam presets`` and ``multicam sample-cameras``: camera files without rendering."""

from __future__ import annotations

from pathlib import Path

import typer
from tqdm import tqdm

from multicam.errors import (
    MAX_CAMERAS,
    MAX_FRAMES,
    MAX_SCENES,
    check_count,
    check_number,
    check_out_folder,
    check_seed,
    fail,
)
from trajectory.profiles import DEFAULT_CAMERA_PROFILE, PROFILE_HELP, profile_error

CHUNK_SCENES = 256


def presets(
    out: Path = typer.Option(..., "--out", help="Output folder; writes OUT/cameras/camera_extrinsics.json."),
    distance_m: float = typer.Option(4.0, "--distance-m", help="Distance from camera to subject, metres (> 2)."),
    frames: int = typer.Option(81, "--frames", help="Frames per camera (>= 2)."),
) -> None:
    """Write the ten validation trajectories (cam01..cam10 = cam_type 1..10)."""
    from exporters.camera_json import CAMERA_FILE, write_camera_json
    from trajectory.presets import DOLLY_M, preset_poses

    check_out_folder(out)
    check_count(frames, "--frames", 2, MAX_FRAMES)
    check_number(distance_m, "--distance-m", low=DOLLY_M, high=1000.0, low_open=True)
    if not distance_m > DOLLY_M:
        fail(f"--distance-m: must be > {DOLLY_M} m (the zoom-in preset dollies {DOLLY_M} m), got {distance_m}")
    poses = preset_poses(distance_m, frames)  # (10, F, 4, 4)
    path = write_camera_json(out / CAMERA_FILE, poses.swapaxes(0, 1))
    typer.echo(f"wrote {path}")


def sample_cameras(
    scenes: int = typer.Option(..., "--scenes", help="Number of scenes (scene1..sceneN)."),
    seed: int = typer.Option(..., "--seed", help="Dataset seed."),
    out: Path = typer.Option(..., "--out", help="Output folder; writes OUT/scene{i}/..."),
    frames: int = typer.Option(81, "--frames", help="Frames per camera (>= 2)."),
    radius_m: float | None = typer.Option(
        None, "--radius-m", help="Hemisphere radius: 3, 5, 7 or 10 m (default: drawn per scene)."
    ),
    cameras: int = typer.Option(10, "--cameras", help="Cameras per scene."),
    camera_profile: str = typer.Option(DEFAULT_CAMERA_PROFILE, "--camera-profile", help=PROFILE_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Sample camera trajectories for N scenes and write their camera files and scene.json.

    Example: multicam sample-cameras --scenes 100 --seed 0 --out cams --camera-profile released"""
    from exporters.scene_files import write_scene_cameras
    from trajectory.sampler import ALLOWED_RADII_M, sample_scenes

    check_out_folder(out)
    check_seed(seed)
    check_count(scenes, "--scenes", 1, MAX_SCENES)
    check_count(frames, "--frames", 2, MAX_FRAMES)
    check_count(cameras, "--cameras", 1, MAX_CAMERAS)
    if (profile_msg := profile_error(camera_profile)) is not None:
        fail(profile_msg)
    if radius_m is not None and radius_m not in ALLOWED_RADII_M:
        fail(f"--radius-m: must be one of {', '.join(f'{r:g}' for r in ALLOWED_RADII_M)}, got {radius_m:g}")
    with tqdm(total=scenes, unit="scene", desc="sample-cameras", disable=not progress) as bar:
        for start in range(1, scenes + 1, CHUNK_SCENES):
            ids = range(start, min(start + CHUNK_SCENES, scenes + 1))
            batch = sample_scenes(seed, ids, n_cameras=cameras, frames=frames, radius_m=radius_m,
                                  camera_profile=camera_profile)
            for sample in batch.scenes:
                write_scene_cameras(sample, out / f"scene{sample.scene_index}", durable=False)
                bar.update(1)
    typer.echo(f"wrote {scenes} scenes ({camera_profile} camera profile) to {out}")


def register(app: typer.Typer) -> None:
    app.command("presets", epilog="Example: multicam presets --out val_cams --distance-m 5")(presets)
    app.command("sample-cameras", epilog=("Example: multicam sample-cameras --scenes "
                              "4 --seed 7 --out cams"))(sample_cameras)
