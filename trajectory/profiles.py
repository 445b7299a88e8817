"""The trajectory sampler's camera profiles (a light module: the CLI and the planner import it without SciPy).

``released`` (default): the structure of the released MultiCamVideo scenes (one start per scene, roles per
camera). ``independent``: every camera its own start and a type drawn uniformly. See ``trajectory/sampler.py``
and docs/trajectories.md.
"""

from __future__ import annotations

CAMERA_PROFILES: tuple[str, ...] = ("released", "independent")
#: The sampler's trajectory types (``trajectory.sampler`` draws them; ``multicam extend --trajectory`` asks for one).
TRAJECTORY_TYPES: tuple[str, ...] = ("pan", "tilt", "translation", "arc", "random", "static")
DEFAULT_CAMERA_PROFILE = "released"
#: ``--camera-profile``'s help text (sample-cameras, plan, generate).
PROFILE_HELP = ("Camera trajectories: released (the released scenes' structure: one start per scene, cam01 pan, "
                "cam02 tilt, cam10 static) or independent (every camera its own start and type); "
                "see docs/trajectories.md.")


def profile_error(name: str, option: str = "--camera-profile") -> str | None:
    """The one-line error for an unknown profile name, or None."""
    if name in CAMERA_PROFILES:
        return None
    return f"{option}: must be one of {', '.join(CAMERA_PROFILES)}, got {name!r}"
