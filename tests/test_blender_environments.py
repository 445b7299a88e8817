"""Built-in environments: no two flat pieces (rugs, floors) overlap on one plane.

Cycles renders such an overlap pure black (shadow and bounce rays leaving one surface start on the other's plane
and are blocked): the hall's small rugs did exactly that before each got its own height."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def _flat_pieces(coll) -> list[tuple[str, float, np.ndarray]]:  # type: ignore[no-untyped-def]
    """(name, height, world-space xy polygon) of every mesh whose vertices all lie on one horizontal plane."""
    out = []
    for ob in coll.all_objects:
        if ob.type != "MESH" or len(ob.data.vertices) < 3:
            continue
        pts = np.array([(ob.matrix_world @ v.co)[:] for v in ob.data.vertices])
        if np.ptp(pts[:, 2]) < 1e-6:
            out.append((ob.name, float(pts[0, 2]), pts[:, :2]))
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two convex xy polygons (vertex sets) intersect (separating-axis test)."""
    from scipy.spatial import ConvexHull

    ha, hb = a[ConvexHull(a).vertices], b[ConvexHull(b).vertices]
    for poly in (ha, hb):
        edges = np.roll(poly, -1, axis=0) - poly
        for nx, ny in np.stack([-edges[:, 1], edges[:, 0]], 1):
            pa, pb = ha @ (nx, ny), hb @ (nx, ny)
            if pa.max() <= pb.min() or pb.max() <= pa.min():
                return False
    return True


@pytest.mark.parametrize("asset", ["builtin:hall", "builtin:plaza", "builtin:park"])
def test_no_two_overlapping_flat_pieces_share_a_plane(asset: str) -> None:
    import bpy

    from render_jobs.blender.environments import EnvContext, build_environment

    n_rugs = 0
    for seed in range(6):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        coll = bpy.context.scene.collection
        ctx = EnvContext(np.zeros(3), 4.0, np.zeros((0, 2)), np.random.default_rng(seed), coll)
        rec = build_environment(asset, ctx)
        n_rugs += rec.get("rugs", 0)
        bpy.context.view_layer.update()  # matrix_world of objects placed by setting .location
        flat = _flat_pieces(coll)
        assert flat, "no flat pieces found: the check would be empty"
        for (na, za, pa), (nb, zb, pb) in itertools.combinations(flat, 2):
            if abs(za - zb) < 5e-4:  # 1 mm apart renders correctly (the park paths, the rugs)
                assert not _overlap(pa, pb), f"{asset} seed {seed}: {na} and {nb} overlap at z = {za:.4f} m"
    if asset == "builtin:hall":
        assert n_rugs >= 6  # the small rugs are there (and were checked against each other and the big one)
