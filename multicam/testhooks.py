"""Deterministic kill and pause points for tests of crash safety (no sleeps racing a process).

A point is named in code with :func:`hook` (``hook("plan-after-store")``) and armed from the environment:

- ``MULTICAM_HOOK_PLAN_AFTER_STORE=kill``: the process SIGKILLs itself there (as a crash or ``kill -9`` would);
- ``MULTICAM_HOOK_PLAN_AFTER_STORE=pause:/some/file``: it creates ``/some/file.reached`` and waits there until
  ``/some/file`` exists (a test then knows exactly where the process stands).

Unarmed points cost one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def env_name(point: str) -> str:
    return "MULTICAM_HOOK_" + point.upper().replace("-", "_")


def hook(point: str) -> None:
    action = os.environ.get(env_name(point))
    if not action:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("pause:"):
        gate = Path(action.removeprefix("pause:"))
        Path(f"{gate}.reached").write_text(str(os.getpid()))
        while not gate.exists():
            time.sleep(0.02)
