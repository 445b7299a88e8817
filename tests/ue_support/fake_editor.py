"""A fake ``UnrealEditor-Cmd``: runs the real ``ue_scripts/render_job.py`` on the fake ``unreal``.

Invoked exactly like the real editor (``<project> -ExecutePythonScript=<script> ... -abslog=<log>``);
it writes an engine-style log, executes the script as ``__main__``, then "ticks" (runs pending
Movie Render Queue work) until the script asks the editor to quit, like the real one. If nothing
asks it to quit it keeps ticking forever, as the real editor would.

The ``.uproject`` is a JSON file; its ``FakeAssets`` key maps object paths to asset classes
(``World``, ``SkeletalMesh``, ``AnimSequence``, ``Material:CustomStencil`` for a post-process material showing that
scene texture): the project's content.

With ``MULTICAM_UE_INBOX`` set it serves a session (several jobs, one process) like the real editor
running the script in session mode.

Behaviour comes from ``FAKE_UE_MODE`` (see :func:`write_fake_editor`): one mode for every job, or
per job id ``s000002=crash,s000003=hang,*=ok`` (the job id is read from ``$MULTICAM_UE_JOB``):

``ok``            render and exit 0
``exit_nonzero``  log a D3D device-removed fatal error and exit 1 before running the script
``crash``         render a few frames, log a fatal error, die by SIGSEGV
``hang``          start and never finish (the launcher's time limit must kill it)
``mrq_error``     the Movie Render Queue job of cam02 fails (script reports it, exits 3)
``no_quit``       run the script but ignore its quit request and its hard exit (a hung shutdown)
``log_error``     render every frame but log a Movie Render Queue error (e.g. a failed write)
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import stat
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_fake_editor(folder: Path, mode: str = "ok") -> Path:
    """An executable ``UnrealEditor-Cmd`` in ``folder`` that runs this module in ``mode``."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "UnrealEditor-Cmd"
    exe.write_text(f'#!/bin/sh\nFAKE_UE_MODE="{mode}" exec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


PLUGINS = ("PythonScriptPlugin", "MovieRenderPipeline", "SequencerScripting")


def write_fake_project(path: Path, assets: dict[str, str], plugins: tuple[str, ...] = PLUGINS) -> Path:
    path.write_text(json.dumps({
        "FileVersion": 3, "EngineAssociation": "5.6",
        "Plugins": [{"Name": p, "Enabled": True} for p in plugins],
        "FakeAssets": assets,
    }))
    return path


def job_mode(spec: str, job_id: str) -> str:
    if "=" not in spec:
        return spec
    modes = dict(item.split("=", 1) for item in spec.split(",") if item)
    return modes.get(job_id, modes.get("*", "ok"))


def main(argv: list[str]) -> int:
    job_id = ""  # (a session has no single job: modes apply per request, see the main loop)
    if os.environ.get("MULTICAM_UE_JOB"):
        job_id = json.loads(Path(os.environ["MULTICAM_UE_JOB"]).read_text()).get("job_id", "")
    mode = job_mode(os.environ.get("FAKE_UE_MODE", "ok"), job_id)
    project = Path(argv[0])
    opts = dict(a[1:].split("=", 1) for a in argv[1:] if a.startswith("-") and "=" in a)
    log_path = opts.get("abslog")
    log_fh = open(log_path, "a", buffering=1) if log_path else sys.stdout  # noqa: SIM115
    frame = [0]

    def log(line: str) -> None:
        frame[0] += 1
        log_fh.write(f"[2026.11.25-12.00.00:{frame[0] % 1000:03d}][{frame[0] % 1000:3d}]{line}\n")
        log_fh.flush()

    log("LogInit: Display: Running engine for game: MultiCamProject (fake)")
    log(f"LogInit: Command Line: {' '.join(argv)}")
    (Path.cwd() / "fake_editor.pid").write_text(str(os.getpid()))
    if not project.is_file():
        log(f"LogInit: Error: Could not find a valid project file: {project}")
        return 1
    if mode == "exit_nonzero":
        log("LogD3D12RHI: Error: GPU crash detected: DXGI_ERROR_DEVICE_REMOVED")
        log("LogWindows: Error: appError called: Fatal error: [File:D3D12Util.cpp] [Line: 913] D3D Device Removed")
        return 1
    if mode == "hang":
        log("LogShaderCompilers: Display: Compiling shaders ...")
        while True:
            time.sleep(1)

    sys.path.insert(0, str(HERE.parent))
    from ue_support import fake_unreal

    state = fake_unreal._reset()
    fake_unreal._install()
    for path, kind in json.loads(project.read_text())["FakeAssets"].items():
        # "Material:CustomStencil": a post-process material whose graph outputs that scene texture
        cls, _, output = kind.partition(":")
        fake_unreal._add_asset(path, getattr(fake_unreal, cls)(*([output] if output else [])))
    state.log_sink = lambda level, msg: log(f"LogPython: {'' if level == 'Display' else level + ': '}{msg}")
    def crash() -> None:
        log("LogWindows: Error: Fatal error: [File:D3D12Util.cpp] Unhandled Exception: EXCEPTION_ACCESS_VIOLATION")
        os.kill(os.getpid(), signal.SIGSEGV)

    def device_removed() -> None:
        log("LogD3D12RHI: Error: GPU crash detected: DXGI_ERROR_DEVICE_REMOVED")
        log("LogWindows: Error: appError called: Fatal error: [File:D3D12Util.cpp] [Line: 913] D3D Device Removed")

    def apply(job_mode_: str) -> None:
        if job_mode_ == "exit_nonzero":  # (in a session: the editor dies during this job)
            device_removed()
            os._exit(1)
        state.crash = crash
        state.crash_after_frames = state.frames_written + 4 if job_mode_ == "crash" else None
        state.fail_jobs = {"cam02"} if job_mode_ == "mrq_error" else set()
        state.hang = job_mode_ == "hang"

    if not os.environ.get("MULTICAM_UE_INBOX"):
        apply(mode)
    inbox = os.environ.get("MULTICAM_UE_INBOX", "")
    seen: set[str] = set()
    if mode == "no_quit":
        os.environ["MULTICAM_UE_HARD_EXIT"] = "0"
    script = opts.get("ExecutePythonScript", "")
    log(f"LogPython: Running script {script}")
    sys.argv = [script]  # what the editor's Python sees for -ExecutePythonScript=<script>
    runpy.run_path(script, run_name="__main__")
    def session_modes() -> None:
        # Session: per-job behaviour, set when the script has taken a request, before it renders.
        for name in sorted(os.listdir(inbox)):
            stem, ext = os.path.splitext(name)
            if ext == ".taken" and stem not in seen:
                seen.add(stem)
                request = json.loads((Path(inbox) / name).read_text())
                apply(job_mode(os.environ.get("FAKE_UE_MODE", "ok"), request["job_id"]))

    if inbox:
        state.before_render = session_modes
    while True:  # the editor's main loop
        if state.quit_requested and mode == "log_error":
            log("LogMovieRenderPipeline: Error: Failed to write output file cam01/0002.png (disk full)")
        if state.quit_requested and mode != "no_quit":
            log("LogExit: Exiting.")
            return 0
        if not fake_unreal._tick():
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
