"""The ``unreal`` backend: renders a RenderJob with Unreal Engine 5 (Movie Render Queue), headless.

Per job it

1. converts the job into the plain JSON the editor script reads (:func:`ue_job_dict`): asset
   paths, settings, and per camera and frame the UE location (cm) and rotator (deg), computed here
   with :func:`multicam.conventions.ue_matrix_to_location_rotator` and unwrapped over time so
   that sub-frame evaluation never swings through 360 degrees (the editor script has no numpy);
2. launches ``UnrealEditor-Cmd <project> -ExecutePythonScript=ue_scripts/render_job.py -unattended
   -nosplash -RenderOffscreen ... -abslog=<log>`` (:func:`build_command`) with a time limit; the
   editor script renders one PNG sequence per camera and writes a result JSON;
3. turns every way it can end into an outcome (:func:`interpret_run`): time limit, crash (signal),
   non-zero exit, an error reported by the script, or success; engine errors are parsed from the
   log (:func:`parse_engine_log`) into the :class:`~render_jobs.backend.RenderError` message;
4. encodes the frames with the shared :class:`exporters.video.Mp4Writer`, writes
   ``cameras/camera_extrinsics.json`` from the poses the sequences actually evaluated (checked
   against the job's poses and against our conventions), ``scene.json``, and verifies the videos.

Configuration (:class:`UnrealConfig`): a YAML/JSON file (argument ``config=`` or environment
``MULTICAM_UE_CONFIG``), then environment ``MULTICAM_UE_EDITOR``, ``MULTICAM_UE_PROJECT``,
``MULTICAM_UE_TIMEOUT_S``, then keyword options (``get_backend("unreal", editor=..., ...)``).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporters.camera_json import CAMERA_FILE, write_camera_json
from exporters.video import Mp4Writer
from multicam.conventions import (
    CM_PER_M,
    DEPTH_PNG_MM_PER_M,
    planar_depth_m_to_png_mm,
    ue_location_rotator_to_matrix,
    ue_matrix_to_location_rotator,
)
from multicam.io import atomic_write_json
from render_jobs.backend import RenderError
from render_jobs.blender.exr import read_exr
from render_jobs.schema import RenderJob
from ue_scripts.job_file import (
    ENGINE_DEPTH_MATERIAL,
    CameraSpec,
    UeJob,
    has_passes,
    job_to_dict,
    material_name,
    pass_frame_path,
    rgb_frame_path,
)

SCRIPT = Path(__file__).resolve().parent.parent / "ue_scripts" / "render_job.py"
CONFIG_ENV = "MULTICAM_UE_CONFIG"
ENV_OVERRIDES = {"MULTICAM_UE_EDITOR": "editor", "MULTICAM_UE_PROJECT": "project",
                 "MULTICAM_UE_TIMEOUT_S": "timeout_s"}


#: Engine errors that make a render untrustworthy even if every frame was written.
FATAL_LOG_PATTERNS = ("LogMovieRenderPipeline:", "Fatal error", "Assertion failed", "Unhandled Exception",
                      "appError called", "LogD3D12RHI:", "LogVulkanRHI:")


class UnrealConfigError(ValueError):
    """Bad or missing configuration of the Unreal install; the message says where and what."""


class UnrealConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Path of ``UnrealEditor-Cmd`` (``UnrealEditor-Cmd.exe`` on Windows).
    editor: Path
    #: The ``.uproject`` holding the maps and assets the catalog references.
    project: Path
    #: Wall-clock limit per job (editor start + render); the process group is killed after it.
    timeout_s: float = Field(3600.0, gt=0)
    #: Content folder for the temporary LevelSequences (a sub-folder per job, deleted afterwards).
    content_folder: str = Field("/Game/MultiCamTemp", pattern=r"^/Game(/[A-Za-z0-9_]+)*$")
    image_format: Literal["png"] = "png"
    #: Key interpolation of camera transforms: no auto tangents (they overshoot).
    interpolation: Literal["linear", "constant"] = "linear"
    #: Focus point height above the character's anchor, as a fraction of its height.
    #: Post-process material of the depth pass (``extra_passes: [depth]``): the engine's scene depth material.
    depth_material: str = Field(ENGINE_DEPTH_MATERIAL, pattern=r"^/[A-Za-z0-9_/]+\.[A-Za-z0-9_]+$")
    #: Post-process material of the mask pass (``extra_passes: [mask]``): a project asset that outputs the custom
    #: stencil (one-time setup: docs/unreal.md, "Depth and mask passes").
    mask_material: str = Field("/Game/MultiCam/PP_CustomStencil.PP_CustomStencil",
                               pattern=r"^/[A-Za-z0-9_/]+\.[A-Za-z0-9_]+$")
    #: The character's custom depth stencil value (1-255) that the mask pass keeps.
    mask_stencil_value: int = Field(1, ge=1, le=255)
    #: Extra command-line arguments (e.g. ``-dx12``, ``-ResX=..``, ``-ini:...``).
    extra_args: list[str] = Field(default_factory=list)
    #: Where frames and logs of running jobs go (default: the system temp folder).
    work_root: Path | None = None
    #: Jobs per editor process: 1 starts an editor per job; N > 1 keeps one editor up for up to N
    #: jobs (a session, saving the start-up); a session is restarted after a crash or time limit.
    session_jobs: int = Field(1, ge=1)
    #: Keep the work folder (frames, logs, job JSON) of successful jobs too.
    keep_work: bool = False
    num_cpus: float = Field(4.0, gt=0)
    num_gpus: float = Field(1.0, ge=0)
    #: Engine errors that fail a job even when the script reported success (substring match on
    #: the parsed error lines, see :func:`parse_engine_log`).
    fatal_log_patterns: list[str] = Field(default_factory=lambda: list(FATAL_LOG_PATTERNS))
    #: Plugins checked in the .uproject before each job ([] to skip the check).
    required_plugins: list[str] = Field(default_factory=lambda: list(REQUIRED_PLUGINS))
    #: The editor script (override only for testing).
    script: Path = SCRIPT


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UnrealConfigError(f"{path}: cannot read Unreal config ({exc})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UnrealConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UnrealConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    section = data.get("unreal", data)
    if not isinstance(section, dict):
        raise UnrealConfigError(f"{path}: 'unreal' must be a mapping")
    return dict(section)


def load_config(config: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
                **overrides: Any) -> UnrealConfig:
    """File (``config`` or ``$MULTICAM_UE_CONFIG``) < environment < keyword overrides."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    source = "keyword options"
    path = config if config is not None else env.get(CONFIG_ENV)
    if path:
        values.update(_read_config_file(Path(path)))
        source = str(path)
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            values[key] = env[var]
    values.update({k: v for k, v in overrides.items() if v is not None})
    missing = [k for k in ("editor", "project") if k not in values]
    if missing:
        raise UnrealConfigError(
            f"Unreal backend: {' and '.join(missing)} not configured; set them in a config file "
            f"(--backend-option config=PATH or ${CONFIG_ENV}), or via $MULTICAM_UE_EDITOR / $MULTICAM_UE_PROJECT"
        )
    try:
        return UnrealConfig.model_validate(values)
    except ValidationError as exc:
        errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UnrealConfigError(f"{source}: invalid Unreal config: {errs}") from None


# ------------------------------------------------------------------------------------------------
# Job -> editor job JSON, command line
# ------------------------------------------------------------------------------------------------


def _engine_ref(ref: str, what: str) -> str:
    if ref.startswith("builtin:"):
        raise RenderError(f"{what} {ref!r} is a Blender demo asset; the unreal backend needs a UE object path "
                          "such as /Game/Characters/Hero.Hero")
    if not ref.startswith("/"):
        raise RenderError(f"{what} {ref!r} is not a UE object path (expected /Game/... or /<Plugin>/...)")
    return ref


def camera_locations_rotators(poses_ue: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """UE poses ``(F, 4, 4)`` -> locations ``(F, 3)`` cm and rotators ``(F, 3)`` (pitch, yaw, roll) deg,
    unwrapped along time so consecutive frames never differ by ~360 degrees."""
    loc, rot = ue_matrix_to_location_rotator(poses_ue)
    rot = np.degrees(np.unwrap(np.radians(rot), axis=0))
    return loc, rot


def asset_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def focus_height_above_character_cm(job: RenderJob) -> float:
    """The plan's focus points as the editor script replays them: tracking focus on the character with a vertical
    offset. Every camera's focus point must therefore sit at one fixed height above the character's placement
    (what the planner writes: the aim point); anything else is refused rather than approximated."""
    place = np.asarray(job.placement.location_cm, dtype=np.float64)
    off = np.stack([c.focus_array_cm() for c in job.cameras]) - place  # (C, F, 3)
    if np.abs(off[..., :2]).max() > 1e-3 or np.ptp(off[..., 2]) > 1e-3:
        raise RenderError(f"{job.job_id}: the Unreal backend replays focus points at a fixed height above the "
                          "character only; this job's focus points move relative to it")
    return float(off[0, 0, 2])


def ue_job(job: RenderJob, cfg: UnrealConfig, work_dir: Path) -> UeJob:
    """Everything the editor script needs, as the one job-file definition (ue_scripts/job_file.py) holds it."""
    s = job.settings
    cams = []
    for c in job.cameras:
        loc, rot = camera_locations_rotators(c.poses_array())
        cams.append(CameraSpec(name=c.name, focal_mm=c.focal_mm, aperture=c.aperture,
                               sensor_width_mm=c.sensor_width_mm, sensor_height_mm=c.sensor_height_mm,
                               locations=loc.tolist(), rotators=rot.tolist()))
    return UeJob(
        job_id=job.job_id,
        map=_engine_ref(job.environment.asset, "environment"),
        character_mesh=_engine_ref(job.character.asset, "character"),
        animation=_engine_ref(job.animation.asset, "animation"),
        animation_start_frame=job.animation.start_frame,
        animation_fps=job.animation.fps,
        character_location_cm=[float(v) for v in job.placement.location_cm],
        character_yaw_deg=job.placement.yaw_deg,
        focus_height_cm=focus_height_above_character_cm(job),
        frames=s.frames,
        fps=s.fps,
        width=s.width,
        height=s.height,
        spatial_samples=s.samples,
        warmup_frames=s.warmup_frames,
        depth_of_field=s.depth_of_field,
        image_format=cfg.image_format,
        interpolation=cfg.interpolation,
        content_folder=f"{cfg.content_folder}/{asset_safe(job.job_id)}",
        frames_dir=str(work_dir / "frames"),
        result_path=str(work_dir / "result.json"),
        cameras=cams,
        markers_cm=[],
        marker_radius_cm=0.0,
        add_light=False,
        depth_material=cfg.depth_material if "depth" in s.extra_passes else "",
        mask_material=cfg.mask_material if "mask" in s.extra_passes else "",
        mask_stencil_value=cfg.mask_stencil_value,
    )


def ue_job_dict(job: RenderJob, cfg: UnrealConfig, work_dir: Path) -> dict[str, Any]:
    """The job file's JSON object (:func:`ue_scripts.job_file.job_to_dict` of :func:`ue_job`)."""
    return job_to_dict(ue_job(job, cfg, work_dir))


def ue_pythonpath(cfg: UnrealConfig) -> str:
    """``UE_PYTHONPATH`` for the editor: the folder holding the ``ue_scripts`` package (the job-file definition
    the script imports), before any path the user set."""
    root = str(Path(cfg.script).resolve().parent.parent)
    old = os.environ.get("UE_PYTHONPATH")
    return root if not old else os.pathsep.join([root, old])


def build_command(cfg: UnrealConfig, log_path: Path) -> list[str]:
    """The exact command line; the job file travels in ``$MULTICAM_UE_JOB`` (no quoting issues)."""
    return [
        str(cfg.editor), str(cfg.project),
        f"-ExecutePythonScript={cfg.script}",
        "-unattended", "-nosplash", "-nopause", "-nosound", "-NoLoadingScreen",
        "-RenderOffscreen",
        "-stdout", "-FullStdOutLogOutput",
        f"-abslog={log_path}",
        *cfg.extra_args,
    ]


# ------------------------------------------------------------------------------------------------
# Running and interpreting
# ------------------------------------------------------------------------------------------------

_ERROR_PATTERNS = [
    re.compile(r"\b(Log\w+): Error: (.*)"),
    re.compile(r"(Fatal error!?.*)"),
    re.compile(r"(Assertion failed: .*)"),
    re.compile(r"(Unhandled Exception: .*)"),
    re.compile(r"(appError called: .*)"),
    re.compile(r"(Ensure condition failed: .*)"),
]


def parse_engine_log(text: str, limit: int = 10) -> list[str]:
    """Engine errors from a UE log, in order, without duplicates or timestamps, at most ``limit``."""
    out: list[str] = []
    for line in text.splitlines():
        for pat in _ERROR_PATTERNS:
            m = pat.search(line)
            if m:
                msg = ": ".join(g for g in m.groups() if g).strip() if len(m.groups()) > 1 else m.group(1).strip()
                if msg not in out:
                    out.append(msg)
                break
        if len(out) >= limit:
            break
    return out


@dataclass
class RunOutcome:
    returncode: int | None
    timed_out: bool
    duration_s: float
    result: dict[str, Any] | None
    engine_errors: list[str]
    log_path: Path


def run_editor(cmd: list[str], env: dict[str, str], timeout_s: float, work_dir: Path, log_path: Path) -> RunOutcome:
    """Run the editor in its own process group; kill the whole group at the time limit."""
    stdout_path = work_dir / "editor_stdout.log"
    t0 = time.monotonic()
    timed_out = False
    with open(stdout_path, "wb") as out:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work_dir,
                                    start_new_session=True)
        except OSError as exc:
            raise RenderError(f"cannot start {cmd[0]}: {exc}") from None
        try:
            rc: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            rc = proc.returncode
    duration = time.monotonic() - t0
    text = ""
    for p in (log_path, stdout_path):
        if p.is_file():
            text += p.read_text(errors="replace") + "\n"
    result_path = work_dir / "result.json"
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text())
        except json.JSONDecodeError:
            result = None
    return RunOutcome(rc, timed_out, duration, result, parse_engine_log(text), log_path)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the editor's whole process group (shader workers included)."""
    if not hasattr(os, "killpg"):  # Windows: no process groups; kill the editor itself
        proc.kill()
        proc.wait()
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def interpret_run(o: RunOutcome, timeout_s: float,
                  fatal_log_patterns: tuple[str, ...] | list[str] = FATAL_LOG_PATTERNS) -> dict[str, Any]:
    """Successful result dict, or :class:`RenderError` explaining what went wrong."""
    errs = f" Engine errors: {' | '.join(o.engine_errors)}." if o.engine_errors else ""
    where = f" Log: {o.log_path}"
    if o.timed_out:
        raise RenderError(f"UnrealEditor-Cmd exceeded the time limit of {timeout_s:g} s and was killed.{errs}{where}")
    if o.result is not None and o.result.get("status") == "error":
        raise RenderError(f"Unreal job failed: {o.result.get('error', '?')}.{errs}{where}")
    if o.returncode is not None and o.returncode < 0:
        name = signal.Signals(-o.returncode).name if -o.returncode in signal.Signals._value2member_map_ else "?"
        raise RenderError(f"UnrealEditor-Cmd crashed (signal {-o.returncode} {name}).{errs}{where}")
    if o.returncode not in (0, None):
        raise RenderError(f"UnrealEditor-Cmd exited with code {o.returncode}.{errs}{where}")
    if o.result is None:
        raise RenderError("UnrealEditor-Cmd exited without a result file: the script did not run or was "
                          f"interrupted (check that the Python Editor Script Plugin is enabled).{errs}{where}")
    if o.result.get("status") != "ok":
        raise RenderError(f"Unreal job returned unexpected status {o.result.get('status')!r}.{where}")
    fatal = [e for e in o.engine_errors if any(p in e for p in fatal_log_patterns)]
    if fatal:
        raise RenderError(f"the engine logged errors during the render: {' | '.join(fatal)}.{where}")
    return o.result


# ------------------------------------------------------------------------------------------------
# Collecting
# ------------------------------------------------------------------------------------------------


def read_rgb_frame(path: Path, width: int, height: int) -> NDArray[np.uint8]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RenderError(f"cannot read frame {path}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3][:, :, ::-1]  # BGR(A) -> RGB
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0).round()
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.shape[:2] != (height, width):
        raise RenderError(f"frame {path} is {img.shape[1]}x{img.shape[0]}, expected {width}x{height}")
    return np.ascontiguousarray(img)


def frame_files(expected: list[Path], cam: str) -> list[Path]:
    """``expected`` (one folder, one extension), checked against what the folder holds."""
    folder, ext = expected[0].parent, expected[0].suffix
    files = sorted(folder.glob(f"*{ext}"))
    if files != expected:
        missing = sorted(set(expected) - set(files))
        extra = sorted(set(files) - set(expected))
        raise RenderError(f"{cam}: expected frames {expected[0].name}..{expected[-1].name} in {folder}; "
                          f"missing {[p.name for p in missing[:3]]} ({len(missing)}), "
                          f"unexpected {[p.name for p in extra[:3]]} ({len(extra)})")
    return files


def _pass_layer(channels: dict[str, NDArray[np.float32]], material: str, path: Path) -> NDArray[np.float32]:
    """The red channel of a post-process material's layer in an MRQ multilayer EXR. The layer is named after its
    pass: "FinalImage" + the material's name (MoviePipelineDeferredPasses.cpp, PassIdentifier.Name +
    GetNameForPostProcessMaterial), so it is matched on the material's name at the end."""
    name = material_name(material)
    for key, value in channels.items():
        if key.endswith(f"{name}.R"):
            return value
    raise RenderError(f"{path}: no layer of the {name} pass (channels {sorted(channels)[:8]})")


def write_pass_frames(ue: UeJob, cam: str, out_dir: Path, width: int, height: int, fps: float, crf: int) -> None:
    """One camera's depth PNGs and mask video from the passes in MRQ's EXRs, in the Blender backend's files and
    encodings: ``depth/<cam>/00000.png`` (uint16 planar depth in mm, 0 = no surface or >= 65 m) and
    ``masks/<cam>.mp4`` (255 on the character, 0 elsewhere)."""
    mask_writer = (Mp4Writer(out_dir / "masks" / f"{cam}.mp4", width, height, fps, crf)
                   if ue.mask_material else None)
    try:
        for f in range(ue.frames):
            path = Path(pass_frame_path(ue, cam, f))
            try:
                channels = read_exr(path)
            except (OSError, ValueError) as exc:
                raise RenderError(f"cannot read the passes of {cam} frame {f}: {exc}") from None
            if ue.depth_material:
                # MovieRenderQueue_WorldDepth shows SceneDepth in cm: the engine's SceneDepth is the linear view-space
                # depth along the camera's forward axis (Common.ush ConvertFromDeviceZ), i.e. planar already, the
                # Blender backend's Z pass kind; only the unit changes (cm -> m -> mm).
                depth_cm = _pass_layer(channels, ue.depth_material, path)
                dst = out_dir / "depth" / cam / f"{f:05d}.png"
                dst.parent.mkdir(parents=True, exist_ok=True)
                _write_png16(dst, planar_depth_m_to_png_mm(depth_cm / CM_PER_M))
            if mask_writer is not None:
                stencil = _pass_layer(channels, ue.mask_material, path)
                m = np.where(np.abs(stencil - ue.mask_stencil_value) < 0.5, 255, 0).astype(np.uint8)
                mask_writer.write(np.repeat(m[..., None], 3, axis=2))
    except BaseException:
        if mask_writer is not None:
            mask_writer.abort()
        raise
    if mask_writer is not None:
        mask_writer.close()


def _write_png16(dst: Path, mm: NDArray[np.uint16]) -> None:
    import cv2

    tmp = dst.with_name(f".{dst.name}.part.png")
    if not cv2.imwrite(str(tmp), mm):
        raise RenderError(f"cannot write {dst}")
    os.replace(tmp, dst)


def evaluated_poses(result: dict[str, Any], names: list[str], frames: int) -> NDArray[np.float64]:
    """Camera poses ``(F, C, 4, 4)`` the sequences evaluated (the result's ``cameras``), in the order of ``names``;
    the engine's matrices are checked against its own locations and rotators through our conventions."""
    F = frames
    try:
        cams = result["cameras"]
        mats = np.stack([np.asarray(cams[n]["matrix"], dtype=np.float64) for n in names], axis=1)
        locs = np.stack([np.asarray(cams[n]["location_cm"], dtype=np.float64) for n in names], axis=1)
        rots = np.stack([np.asarray(cams[n]["rotator_deg"], dtype=np.float64) for n in names], axis=1)
    except (KeyError, TypeError, ValueError) as exc:
        raise RenderError(f"result JSON lacks evaluated camera poses ({type(exc).__name__}: {exc})") from None
    if mats.shape != (F, len(names), 4, 4) or locs.shape != (F, len(names), 3) or rots.shape != locs.shape:
        raise RenderError(f"result JSON camera poses have shape {mats.shape}, expected {(F, len(names), 4, 4)}")
    ours = ue_location_rotator_to_matrix(locs, rots)
    if not np.allclose(ours, mats, atol=1e-4, rtol=0):
        bad = float(np.abs(ours - mats).max())
        raise RenderError(f"the engine's matrices differ from multicam.conventions by up to {bad:.3g}: "
                          "rotator convention mismatch; do not trust these cameras")
    # Against the job's poses they are compared once, with one tolerance, by render_jobs.verify.
    return mats


@dataclass
class _Session:
    """A running editor serving job requests from ``inbox`` (``session_jobs`` > 1)."""

    proc: subprocess.Popen[bytes]
    folder: Path
    inbox: Path
    log_path: Path
    stdout_path: Path
    stdout: IO[bytes]
    jobs: int = 0
    failed: bool = False


def _read_from(path: Path, offset: int) -> str:
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode("utf-8", errors="replace")


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


#: Plugins that must be enabled in the .uproject's "Plugins" list (neither is on by default).
#: Sequencer Scripting is needed too, but it can come in as a dependency without being listed.
REQUIRED_PLUGINS: tuple[str, ...] = ("PythonScriptPlugin", "MovieRenderPipeline")


def project_plugin_problems(project: Path, required: tuple[str, ...] | list[str] = REQUIRED_PLUGINS) -> list[str]:
    """Problems with the .uproject for this backend: unreadable, or required plugins not enabled."""
    try:
        data = json.loads(project.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{project}: cannot read the .uproject ({exc})"]
    enabled = {p.get("Name") for p in data.get("Plugins", []) if isinstance(p, dict) and p.get("Enabled")}
    missing = [p for p in required if p not in enabled]
    if missing:
        return [f"{project}: plugins not enabled: {', '.join(missing)} (enable them in Edit > Plugins "
                "or add {\"Name\": ..., \"Enabled\": true} to the .uproject's \"Plugins\")"]
    return []


class UnrealBackend:
    """:class:`~render_jobs.backend.Backend` for Unreal Engine 5: one editor process per job, or
    one editor session for up to ``session_jobs`` jobs."""

    name = "unreal"

    def __init__(self, config: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self.cfg = load_config(config, **options)
        self._session: _Session | None = None
        atexit.register(self.close)

    def resources(self) -> dict[str, float]:
        return {"num_cpus": self.cfg.num_cpus, "num_gpus": self.cfg.num_gpus}

    def close(self) -> None:
        self._end_session(graceful=True)

    # -- sessions ---------------------------------------------------------------------------------
    def _start_session(self) -> _Session:
        cfg = self.cfg
        folder = Path(tempfile.mkdtemp(prefix="multicam-ue-session-", dir=cfg.work_root))
        inbox = folder / "inbox"
        inbox.mkdir()
        log_path, stdout_path = folder / "editor.log", folder / "editor_stdout.log"
        env = {**os.environ, "MULTICAM_UE_INBOX": str(inbox), "MULTICAM_UE_HARD_EXIT": "0",
               "UE_PYTHONPATH": ue_pythonpath(cfg),
               "MULTICAM_UE_PARENT_PID": str(os.getpid())}
        env.pop("MULTICAM_UE_JOB", None)
        out = open(stdout_path, "wb")  # noqa: SIM115 - lives as long as the session
        try:
            proc = subprocess.Popen(build_command(cfg, log_path), stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=folder, start_new_session=True)
        except OSError as exc:
            out.close()
            raise RenderError(f"cannot start {cfg.editor}: {exc}") from None
        return _Session(proc, folder, inbox, log_path, stdout_path, out)

    def _end_session(self, graceful: bool) -> None:
        s, self._session = self._session, None
        if s is None:
            return
        if s.proc.poll() is None:
            if graceful:
                atomic_write_json(s.inbox / "quit.json", {})
                try:
                    s.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    _kill_group(s.proc)
            else:
                _kill_group(s.proc)
        s.stdout.close()
        if graceful and not s.failed and not self.cfg.keep_work:
            shutil.rmtree(s.folder, ignore_errors=True)

    def _run_in_session(self, ue_job: dict[str, Any], work: Path) -> RunOutcome:
        cfg = self.cfg
        s = self._session
        if s is not None and (s.proc.poll() is not None or s.jobs >= cfg.session_jobs):
            self._end_session(graceful=True)
            s = None
        if s is None:
            s = self._session = self._start_session()
        s.jobs += 1
        offsets = (_size(s.log_path), _size(s.stdout_path))
        result_path = Path(ue_job["result_path"])
        t0 = time.monotonic()
        atomic_write_json(s.inbox / f"{s.jobs:06d}.json", ue_job, indent=1)
        timed_out = False
        rc: int | None = None
        while not result_path.is_file():
            rc = s.proc.poll()
            if rc is not None:
                break
            if time.monotonic() - t0 > cfg.timeout_s:
                timed_out = True
                break
            time.sleep(0.1)
        if timed_out or rc is not None:
            s.failed = True
            self._end_session(graceful=False)
            rc = s.proc.returncode
        text = _read_from(s.log_path, offsets[0]) + "\n" + _read_from(s.stdout_path, offsets[1])
        log_path = work / "editor.log"  # this job's part of the session log
        log_path.write_text(text)
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
        if result is not None and result.get("status") != "ok":
            s.failed = True
        return RunOutcome(rc, timed_out, time.monotonic() - t0, result, parse_engine_log(text), log_path)

    def check_install(self) -> None:
        cfg = self.cfg
        if not cfg.editor.is_file() or not os.access(cfg.editor, os.X_OK):
            raise RenderError(f"UnrealEditor-Cmd not found or not executable: {cfg.editor} (config key 'editor')")
        if not cfg.project.is_file():
            raise RenderError(f".uproject not found: {cfg.project} (config key 'project')")
        problems = project_plugin_problems(cfg.project, cfg.required_plugins)
        if problems:
            raise RenderError("; ".join(problems))
        if not cfg.script.is_file():
            raise RenderError(f"editor script missing: {cfg.script}")

    def run_job_file(self, ue_job: dict[str, Any], work: Path) -> dict[str, Any]:
        """Write ``ue_job`` (a :func:`ue_scripts.job_file.job_to_dict`) to ``work/job.json``, run it in the editor
        (this backend's session, or an editor of its own) and return the script's successful result; every other
        ending is a :class:`RenderError` (:func:`interpret_run`)."""
        cfg = self.cfg
        job_path = work / "job.json"
        atomic_write_json(job_path, ue_job, indent=1)
        if cfg.session_jobs > 1:
            outcome = self._run_in_session(ue_job, work)
        else:
            log_path = work / "editor.log"
            env = {**os.environ, "MULTICAM_UE_JOB": str(job_path), "MULTICAM_UE_HARD_EXIT": "1",
                   "UE_PYTHONPATH": ue_pythonpath(cfg)}
            outcome = run_editor(build_command(cfg, log_path), env, cfg.timeout_s, work, log_path)
        return interpret_run(outcome, cfg.timeout_s, cfg.fatal_log_patterns)

    def render(self, job: RenderJob, out_dir: Path) -> dict[str, Any]:
        cfg = self.cfg
        self.check_install()
        out_dir = Path(out_dir)
        if cfg.work_root is not None:
            cfg.work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"multicam-ue-{asset_safe(job.job_id)}-", dir=cfg.work_root))
        ok = False
        try:
            ue = ue_job(job, cfg, work)
            result = self.run_job_file(job_to_dict(ue), work)
            record = self._collect(job, result, ue, out_dir)
            ok = True
        finally:
            if ok and not cfg.keep_work:
                shutil.rmtree(work, ignore_errors=True)
        return record

    def _collect(self, job: RenderJob, result: dict[str, Any], ue: UeJob, out_dir: Path) -> dict[str, Any]:
        s, cfg = job.settings, self.cfg
        poses = evaluated_poses(result, [c.name for c in job.cameras], s.frames)
        for cam in job.cameras:
            files = frame_files([Path(rgb_frame_path(ue, cam.name, f)) for f in range(s.frames)], cam.name)
            with Mp4Writer(out_dir / "videos" / f"{cam.name}.mp4", s.width, s.height, s.fps, s.video_crf) as w:
                for p in files:
                    w.write(read_rgb_frame(p, s.width, s.height))
            if has_passes(ue):
                write_pass_frames(ue, cam.name, out_dir, s.width, s.height, s.fps, s.video_crf)
        write_camera_json(out_dir / CAMERA_FILE, poses, [c.name for c in job.cameras])
        if s.keep_frames:
            shutil.move(ue.frames_dir, str(out_dir / "frames"))
        # Videos and poses against the job are checked once, by render_jobs.verify (run by execute).
        renderer: dict[str, Any] = {"engine_version": result.get("engine_version"), "samples": s.samples,
                                    "warmup_frames": s.warmup_frames, "interpolation": cfg.interpolation,
                                    "resolution": [s.width, s.height], "extra_passes": list(s.extra_passes)}
        if ue.depth_material:
            renderer["depth"] = {"format": "png16", "unit": "mm", "scale": DEPTH_PNG_MM_PER_M,
                                 "kind": "planar (distance along the optical axis)", "invalid": 0,
                                 "material": ue.depth_material}
        if ue.mask_material:
            renderer["mask"] = {"material": ue.mask_material, "stencil_value": ue.mask_stencil_value}
        return {"renderer": renderer}
