"""``multicam generate``: plan + render (Blender) + verify, the one command from nothing to a dataset."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from multicam.errors import DatasetError, check_out_folder, check_seed, fail
from scene_catalog.cli import asset_root_option
from trajectory.profiles import DEFAULT_CAMERA_PROFILE, PROFILE_HELP, profile_error

#: The built-in demo catalog (procedural Blender assets).
DEMO_CATALOG = Path(__file__).resolve().parent.parent / "scene_catalog" / "demo_catalog.yaml"

#: ``--quality`` presets: (resolution, samples, denoise, denoiser quality). ``demo`` (the default) is the first run:
#: ten cameras x 81 frames of one scene in well under a minute on 2 cores (small and smooth, the exact layout and
#: camera files; measured ~41 CPU-s, 810 camera-frames in 81 render calls, OIDN's fast mode);
#: ``full`` is MultiCamVideo's 1280 px at a clean sample count. ``--resolution``/``--samples``/``--denoise`` override.
QUALITY: dict[str, tuple[int, int, bool, str]] = {"demo": (64, 1, True, "fast"), "full": (1280, 32, True, "high")}


def generate(
    out: Path = typer.Option(..., "--out", help="Dataset folder (created; run again to resume)."),
    scenes: int = typer.Option(1, "--scenes", help="Number of scenes (10 synchronized videos each)."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed (composition and camera trajectories)."),
    quality: str = typer.Option("demo", "--quality", help="Preset of resolution, samples and denoiser: demo "
                                f"{QUALITY['demo'][0]} px, {QUALITY['demo'][1]} sample, denoised (fast mode; under a "
                                f"minute for one scene on 2 cores); full {QUALITY['full'][0]} px, "
                                f"{QUALITY['full'][1]} samples, denoised."),
    resolution: int | None = typer.Option(None, "--resolution", help="Video width and height in pixels (even; "
                                          "default: the --quality preset's)."),
    frames: int = typer.Option(81, "--frames", help="Frames per video (MultiCamVideo: 81)."),
    fps: float = typer.Option(15.0, "--fps", help="Video frame rate (MultiCamVideo: 15)."),
    samples: int | None = typer.Option(None, "--samples", help="Cycles path-tracing samples per pixel (default: "
                                       "the --quality preset's)."),
    denoise: bool | None = typer.Option(None, "--denoise/--no-denoise", help="OpenImageDenoise on each frame "
                                        "(default: the --quality preset's)."),
    dof: bool = typer.Option(True, "--dof/--no-dof", help="Depth of field (focus on the character)."),
    device: str = typer.Option("auto", "--device", help="auto (GPU when present), CPU, OPTIX, CUDA, HIP, METAL."),
    cameras: int = typer.Option(10, "--cameras", help="Cameras per scene."),
    camera_profile: str = typer.Option(DEFAULT_CAMERA_PROFILE, "--camera-profile", help=PROFILE_HELP),
    extra_passes: list[str] = typer.Option([], "--pass", help="Extra outputs: depth, mask (repeatable)."),
    keep_frames: bool = typer.Option(False, "--keep-frames", help="Also keep the PNG frames (frames/camNN/)."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    workers: int = typer.Option(1, "--workers", help="Parallel jobs (each renders with all its threads)."),
    catalog: list[Path] = typer.Option([], "--catalog", help="Catalog file(s) (default: the built-in demo "
                                       "catalog); repeat to merge several."),
    backend: str = typer.Option("blender", "--backend", help="Renderer backend (blender; test-* for tests)."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Re-check every scene folder at the end "
                                "(decodes every video)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    asset_roots: list[Path] = asset_root_option(),
) -> None:
    """Make a MultiCamVideo-format dataset from nothing: plan scenes from a catalog (the built-in demo
    catalog by default), render them with Blender, verify the output. Resumable: run the same command
    again after an interruption and it continues where it stopped."""
    from pydantic import ValidationError

    from multicam.errors import MAX_CAMERAS, MAX_FRAMES, MAX_SCENES, check_count
    from render_jobs.backends import BACKENDS
    from render_jobs.cli import check_executor, fail_settings, report_run
    from render_jobs.planner import iter_manifest, load_settings, materialize, plan_dataset
    from render_jobs.runner import RunError, run_dataset
    from render_jobs.schema import RenderSettings
    from render_jobs.verify import verify_scene_dir
    from scene_catalog.cli import _load

    check_seed(seed)
    if quality not in QUALITY:
        fail(f"--quality: must be one of {', '.join(QUALITY)}, got {quality!r}")
    preset = QUALITY[quality]
    resolution = preset[0] if resolution is None else resolution
    samples = preset[1] if samples is None else samples
    denoise = preset[2] if denoise is None else denoise
    check_count(scenes, "--scenes", 1, MAX_SCENES)
    check_count(frames, "--frames", 2, MAX_FRAMES)
    if resolution < 16 or resolution % 2:
        fail(f"--resolution: must be an even number >= 16, got {resolution}")
    check_count(cameras, "--cameras", 1, MAX_CAMERAS)
    if (profile_msg := profile_error(camera_profile)) is not None:
        fail(profile_msg)
    if samples < 1:
        fail(f"--samples: must be >= 1, got {samples}")
    check_executor(executor)
    if workers < 1:
        fail(f"--workers: must be >= 1, got {workers}")
    if backend not in BACKENDS:
        fail(f"--backend: must be one of {', '.join(sorted(BACKENDS))}, got {backend!r}")
    devices = ("AUTO", "CPU", "OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
    if device.upper() not in devices:
        fail(f"--device: must be one of {', '.join(d.lower() if d == 'AUTO' else d for d in devices)}, got {device!r}")
    bad = [p for p in extra_passes if p not in ("depth", "mask")]
    if bad:
        fail(f"--pass: must be depth or mask, got {bad[0]!r}")
    check_out_folder(out)
    try:
        settings = RenderSettings(width=resolution, height=resolution, frames=frames, fps=fps, samples=samples,
                                  denoise=denoise, denoise_quality=preset[3], depth_of_field=dof, device=device,
                                  extra_passes=extra_passes, keep_frames=keep_frames)
    except ValidationError as exc:
        fail_settings(exc, {"width": "--resolution", "height": "--resolution"})
    cat = _load(catalog or [DEMO_CATALOG], True, asset_roots)
    t0 = time.perf_counter()
    try:
        plan_dataset(cat, scenes, seed, out, settings, n_cameras=cameras, camera_profile=camera_profile)
    except DatasetError as exc:
        fail(str(exc))
    typer.echo(f"planned {scenes} scene(s) x {cameras} cameras x {frames} frames at {resolution}x{resolution}, "
               f"{samples} samples{', denoised' if denoise else ''} into {out}")
    if quality == "demo":
        typer.echo("  (--quality demo: a quick look; --quality full renders 1280 px, 32 samples, denoised)")
    options: dict[str, object] = {}
    if backend == "blender":
        options = {"device": device, "progress": progress and executor == "local" and workers == 1}
    try:
        summary = run_dataset(out, backend, executor=executor, workers=workers, backend_options=options,
                              progress=progress)
    except (DatasetError, RunError) as exc:
        fail(str(exc), code=1)
    report_run(summary)
    c = summary.counts
    problems = 0
    if verify:
        from tqdm import tqdm

        st, n_cams = load_settings(out)
        entries = list(iter_manifest(out))
        for entry in tqdm(entries, desc="verify", unit="scene", disable=not progress):
            folder = out / entry.output_dir
            if not folder.is_dir():
                continue
            for p in verify_scene_dir(materialize(entry, st, n_cams), folder):
                typer.echo(f"  {entry.output_dir}: {p}", err=True)
                problems += 1
    if c["failed"] or problems:
        typer.echo("some scenes failed or did not verify: see `multicam status`, then `multicam retry`", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {c['done']} scene(s) in {out} ({time.perf_counter() - t0:.1f} s)")
    _print_outputs(out)


def _print_outputs(out: Path) -> None:
    """Where the outputs are, and one command to look at them."""
    from render_jobs.planner import iter_manifest

    folders = [out / e.output_dir for e in iter_manifest(out) if (out / e.output_dir / "videos").is_dir()]
    if not folders:
        return
    first = folders[0]
    videos = sorted((first / "videos").glob("*.mp4"))
    typer.echo(f"outputs: {first}/videos/ ({len(videos)} synchronized mp4s), {first}/cameras/camera_extrinsics.json"
               + (f", {out / 'metadata.csv'}" if (out / "metadata.csv").is_file() else ""))
    preview = out / "preview" / first.name
    typer.echo(f"look at it: multicam preview {first} --out {preview}   (then open {preview / 'index.html'})")


def register(app: typer.Typer) -> None:
    app.command("generate", epilog="Example: multicam generate --out demo_dataset --scenes 1")(generate)
