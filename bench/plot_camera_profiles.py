"""Top-down plot of a few sampled scenes of each camera profile (docs/trajectories_topdown.png).

    python bench/plot_camera_profiles.py --out docs/trajectories_topdown.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trajectory.clearance import BODY_RADIUS_M  # noqa: E402
from trajectory.sampler import sample_scene  # noqa: E402

COLOURS = plt.get_cmap("tab10").colors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("docs/trajectories_topdown.png"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenes", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    profiles = ("released", "independent")
    fig, axes = plt.subplots(len(profiles), len(args.scenes), figsize=(4.2 * len(args.scenes), 8.6))
    for row, prof in enumerate(profiles):
        for col, k in enumerate(args.scenes):
            ax = axes[row, col]
            sc = sample_scene(args.seed, k, radius_m=5.0, camera_profile=prof)
            loc = sc.poses_ue[..., 3, :3] / 100.0
            fwd = sc.poses_ue[..., 0, :3]
            ax.add_patch(plt.Circle((0, 0), BODY_RADIUS_M, color="0.6", alpha=0.5, lw=0))
            ax.add_patch(plt.Circle((0, 0), sc.radius_m, fill=False, ls=":", color="0.7"))
            for c, cam in enumerate(sc.cameras):
                colour = COLOURS[c % 10]
                x, y = loc[c, :, 0], -loc[c, :, 1]  # UE +Y is to the right seen from above: draw it downward
                label = f"cam{c + 1:02d} {cam['trajectory']}"
                ax.plot(x, y, color=colour, lw=1.6, label=label)
                ax.plot(x[0], y[0], "o", color=colour, ms=4)
                for f in (0, sc.frames - 1):
                    ax.arrow(x[f], y[f], 0.6 * fwd[c, f, 0], -0.6 * fwd[c, f, 1], color=colour, width=0.02,
                             head_width=0.15, alpha=0.8 if f else 0.35, length_includes_head=True)
            ax.set_aspect("equal")
            ax.set_xlim(-6, 6)
            ax.set_ylim(-6, 6)
            ax.set_title(f"{prof}: seed {args.seed}, scene {k} (R = {sc.radius_m:g} m)", fontsize=9)
            ax.legend(fontsize=5.5, loc="lower left", ncol=2, framealpha=0.6)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel("UE -Y (m)", fontsize=8)
            if row == len(profiles) - 1:
                ax.set_xlabel("UE X (m)", fontsize=8)
    fig.suptitle("Camera paths seen from above (grey disc: the body capsule, r = 0.5 m; arrows: view at the first "
                 "and last frame)", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({np.round(args.out.stat().st_size / 1024)} KiB)")


if __name__ == "__main__":
    main()
