"""Procedural demo environments (``builtin:plaza``, ``builtin:park``, ``builtin:hall``,
``builtin:calibration``) and user environment files (.blend, .glb/.gltf, .fbx).

Layouts are drawn from a numpy Generator seeded by the job, so a scene is reproducible. Every
environment is built around the character's placement: tall things (buildings, trees, walls) stay
outside ``clear_m`` (the farthest horizontal camera distance of the job plus a margin) so that no
camera sits inside a wall; low props may stand closer but never within ``PROP_CAMERA_GAP_M`` of a
camera path. Every prop placed is recorded (``obstacles``: UE world xy in cm and the radius kept free around it),
so that cameras added later (``multicam extend``) keep the same gap from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
from numpy.typing import NDArray

from multicam.conventions import CM_PER_M, rh_to_ue_points, ue_to_rh_points
from render_jobs.blender import materials as M
from render_jobs.blender.calibration import MARKER_COLOURS, MARKER_RADIUS_CM, MARKERS_CM
from render_jobs.blender.meshes import box, cylinder, plane, sphere
from trajectory.clearance import PROP_CAMERA_GAP_M

__all__ = ["PROP_CAMERA_GAP_M"]  # the environments' rule, from trajectory.clearance
#: Keep this much floor free around the character (metres).
CHARACTER_GAP_M = 1.8
#: Rugs: the central one this high above the floor, each further one another step higher (no two coplanar).
RUG_Z_M = 0.005
RUG_STEP_M = 0.002


@dataclass
class EnvContext:
    center: NDArray[np.float64]  # placement in the Blender world (m)
    clear_m: float  # horizontal radius kept free of tall objects
    camera_xy: NDArray[np.float64]  # (N, 2) all camera positions over all frames (m)
    rng: np.random.Generator
    coll: bpy.types.Collection
    record: dict[str, Any] = field(default_factory=dict)

    def free_for_prop(self, xy: NDArray[np.float64], radius: float) -> bool:
        """Whether a prop of footprint ``radius`` may stand at ``xy``; True records it in ``obstacles`` (every
        caller places the prop when this says True)."""
        d_char = np.hypot(*(xy - self.center[:2]))
        if d_char < CHARACTER_GAP_M + radius:
            return False
        if self.camera_xy.size and not np.min(np.hypot(*(self.camera_xy - xy).T)) > PROP_CAMERA_GAP_M + radius:
            return False
        ue = rh_to_ue_points([float(xy[0]), float(xy[1]), 0.0])
        self.record.setdefault("obstacles", []).append(
            {"xy_cm": [float(ue[0]), float(ue[1])], "radius_m": float(radius)})
        return True

    def ring_points(self, n: int, r_min: float, r_max: float) -> NDArray[np.float64]:
        ang = self.rng.uniform(0, 2 * np.pi, n)
        r = np.sqrt(self.rng.uniform(r_min**2, r_max**2, n))
        return self.center[:2] + np.stack([r * np.cos(ang), r * np.sin(ang)], -1)


def _sun(ctx: EnvContext, elevation_deg: float, azimuth_deg: float, strength: float, color: tuple[float, float, float],
         angle_deg: float = 2.0) -> None:
    light = bpy.data.lights.new("sun", "SUN")
    light.energy = strength
    light.color = color
    light.angle = math.radians(angle_deg)
    ob = bpy.data.objects.new("sun", light)
    ob.rotation_euler = (math.radians(90 - elevation_deg), 0.0, math.radians(azimuth_deg + 90))
    ctx.coll.objects.link(ob)
    ctx.record["sun"] = {"elevation_deg": round(elevation_deg, 2), "azimuth_deg": round(azimuth_deg, 2),
                         "strength": round(strength, 3)}


def _bench(ctx: EnvContext, name: str, xy: NDArray[np.float64], yaw: float, wood_mat: Any, metal: Any) -> None:
    z = ctx.center[2]
    ob = box(f"{name}_seat", (1.6, 0.45, 0.06), (xy[0], xy[1], z + 0.42), ctx.coll, wood_mat, yaw)
    back = box(f"{name}_back", (1.6, 0.06, 0.4), (0, 0.22, 0.06), ctx.coll, wood_mat)
    back.parent = ob
    for sx in (-0.7, 0.7):
        leg = box(f"{name}_leg", (0.06, 0.45, 0.42), (sx, 0, -0.42), ctx.coll, metal)
        leg.parent = ob


def _lamp(ctx: EnvContext, name: str, xy: NDArray[np.float64], metal: Any, glow: Any) -> None:
    z = ctx.center[2]
    cylinder(f"{name}_pole", 0.06, 3.6, (xy[0], xy[1], z), ctx.coll, metal, segments=10)
    sphere(f"{name}_globe", 0.22, (xy[0], xy[1], z + 3.8), ctx.coll, glow, subdiv=2)


def _tree(ctx: EnvContext, name: str, xy: NDArray[np.float64], scale: float, bark_mat: Any, leaves: list[Any]) -> None:
    z = ctx.center[2]
    h = 3.0 * scale
    cylinder(f"{name}_trunk", 0.18 * scale, h, (xy[0], xy[1], z), ctx.coll, bark_mat, segments=10, radius2=0.1 * scale)
    for k in range(3):
        off = ctx.rng.normal(0, 0.5 * scale, 2)
        r = scale * ctx.rng.uniform(1.0, 1.5)
        sphere(f"{name}_crown{k}", r, (xy[0] + off[0], xy[1] + off[1], z + h + r * (0.4 + 0.5 * k)), ctx.coll,
               leaves[int(ctx.rng.integers(len(leaves)))], subdiv=2, scale=(1, 1, 0.85))


def build_plaza(ctx: EnvContext) -> None:
    """A city square: paved ground, a ring of buildings with window grids, lamps, benches, planters."""
    rng, c = ctx.rng, ctx.center
    bpy.context.scene.world = M.sky_world("plaza_sky", (0.75, 0.85, 1.0), (0.18, 0.35, 0.85), (0.35, 0.33, 0.3), 1.0)
    _sun(ctx, rng.uniform(30, 60), rng.uniform(0, 360), 3.5, (1.0, 0.95, 0.88))
    stone = tuple(rng.uniform(0.35, 0.55) * np.array([1.0, 0.95, 0.85]))
    plane("ground", 240, 240, tuple(c), ctx.coll, M.paving("paving", stone, (0.15, 0.14, 0.13)))
    plane("road", 240, 8, (c[0], c[1] + ctx.clear_m + 4, c[2] + 0.005), ctx.coll,
          M.paving("asphalt", (0.08, 0.08, 0.085), (0.06, 0.06, 0.06), brick_m=0.2))
    walls = [(0.55, 0.35, 0.25), (0.75, 0.7, 0.6), (0.4, 0.42, 0.45), (0.7, 0.55, 0.35), (0.6, 0.25, 0.2),
             (0.85, 0.82, 0.75)]
    facades = [M.facade(f"facade{i}", w, lit=0.0) for i, w in enumerate(walls)]
    d = ctx.clear_m + 9.0
    n_build = 0
    for side in range(4):
        yaw = side * math.pi / 2
        t = -d - 10
        while t < d + 10:
            width = rng.uniform(7, 16)
            if rng.random() < 0.15:
                t += width * 0.5  # a street gap
                continue
            depth, height = rng.uniform(8, 14), rng.uniform(7, 28)
            local = np.array([t + width / 2, d + depth / 2])
            cs, sn = math.cos(yaw), math.sin(yaw)
            xy = c[:2] + np.array([cs * local[0] - sn * local[1], sn * local[0] + cs * local[1]])
            box(f"building{n_build}", (width - 0.4, depth, height), (xy[0], xy[1], c[2]), ctx.coll,
                facades[int(rng.integers(len(facades)))], yaw)
            n_build += 1
            t += width
    metal = M.plain("metal", (0.08, 0.09, 0.1), roughness=0.35, metallic=0.8)
    wood_mat = M.wood("bench_wood", plank_m=0.08)
    glow = M.emissive("lamp_glow", (1.0, 0.85, 0.6), 3.0)
    planter = M.plain("planter", (0.45, 0.42, 0.4), roughness=0.8)
    bush = M.foliage("bush", (0.08, 0.25, 0.06))
    props = 0
    for xy in ctx.ring_points(60, CHARACTER_GAP_M + 1.0, ctx.clear_m + 8):
        kind = rng.integers(3)
        if not ctx.free_for_prop(xy, 1.0):
            continue
        if kind == 0:
            _bench(ctx, f"bench{props}", xy, rng.uniform(0, 2 * np.pi), wood_mat, metal)
        elif kind == 1:
            _lamp(ctx, f"lamp{props}", xy, metal, glow)
        else:
            box(f"planter{props}", (1.0, 1.0, 0.5), (xy[0], xy[1], c[2]), ctx.coll, planter, rng.uniform(0, 3))
            sphere(f"bush{props}", 0.55, (xy[0], xy[1], c[2] + 0.8), ctx.coll, bush, subdiv=2)
        props += 1
    ctx.record.update({"buildings": n_build, "props": props, "ground": "paving"})


def build_park(ctx: EnvContext) -> None:
    """A park: lawn, crossing gravel paths, trees, bushes, rocks, benches, distant hills."""
    rng, c = ctx.rng, ctx.center
    bpy.context.scene.world = M.sky_world("park_sky", (0.9, 0.85, 0.75), (0.25, 0.45, 0.9), (0.2, 0.25, 0.12), 1.1)
    _sun(ctx, rng.uniform(20, 45), rng.uniform(0, 360), 3.2, (1.0, 0.9, 0.75))
    plane("ground", 300, 300, tuple(c), ctx.coll, M.grass("lawn"))
    path_mat = M.gravel("gravel")
    a0 = rng.uniform(0, np.pi)
    for k, ang in enumerate((a0, a0 + rng.uniform(1.0, 2.1))):
        plane(f"path{k}", 200, 2.4, (c[0], c[1], c[2] + 0.004 + 0.001 * k), ctx.coll, path_mat, yaw=float(ang))
    bark_mat = M.bark("bark")
    leaves = [M.foliage(f"leaves{i}", col) for i, col in
              enumerate([(0.08, 0.25, 0.05), (0.15, 0.3, 0.04), (0.25, 0.22, 0.04), (0.05, 0.18, 0.08)])]
    n_trees = 0
    for xy in ctx.ring_points(70, ctx.clear_m + 2.0, ctx.clear_m + 40):
        _tree(ctx, f"tree{n_trees}", xy, rng.uniform(0.8, 1.6), bark_mat, leaves)
        n_trees += 1
    rock = M.plain("rock", (0.35, 0.34, 0.32), roughness=0.9, noise=0.4)
    wood_mat = M.wood("bench_wood", plank_m=0.08)
    metal = M.plain("metal", (0.1, 0.1, 0.1), roughness=0.4, metallic=0.7)
    props = 0
    for xy in ctx.ring_points(40, CHARACTER_GAP_M + 1.0, ctx.clear_m + 2):
        if not ctx.free_for_prop(xy, 0.8):
            continue
        kind = rng.integers(3)
        if kind == 0:
            sphere(f"bush{props}", rng.uniform(0.3, 0.7), (xy[0], xy[1], c[2] + 0.2), ctx.coll,
                   leaves[int(rng.integers(len(leaves)))], subdiv=2, scale=(1.2, 1.0, 0.8))
        elif kind == 1:
            sphere(f"rock{props}", rng.uniform(0.15, 0.45), (xy[0], xy[1], c[2]), ctx.coll, rock, subdiv=1,
                   scale=(1.3, 1.0, 0.6))
        else:
            _bench(ctx, f"bench{props}", xy, rng.uniform(0, 2 * np.pi), wood_mat, metal)
        props += 1
    hill = M.grass("hill", (0.06, 0.16, 0.05), (0.12, 0.25, 0.06))
    for k in range(8):
        ang = 2 * np.pi * k / 8 + rng.uniform(-0.2, 0.2)
        r = 110
        sphere(f"hill{k}", rng.uniform(25, 40), (c[0] + r * np.cos(ang), c[1] + r * np.sin(ang), c[2] - 12), ctx.coll,
               hill, subdiv=3, scale=(1.6, 1.6, 0.6))
    ctx.record.update({"trees": n_trees, "props": props, "ground": "grass"})


def build_hall(ctx: EnvContext) -> None:
    """A large furnished indoor hall: wood floor, plaster walls, ceiling lights, sofas, tables,
    shelves with books, rugs, plants and columns."""
    rng, c = ctx.rng, ctx.center
    half = ctx.clear_m + 1.5
    height = max(5.0, 0.8 * half + 1.5)
    # Indoors the world is seen only through Fast GI's AO replacement of deep bounces: a warm, moderately
    # bright one fills contact shadows under furniture (a dark one left them pure black).
    world = M.sky_world("hall_world", (0.6, 0.56, 0.5), (0.5, 0.48, 0.45), (0.35, 0.3, 0.25), 0.8)
    world["multicam_ao_distance_m"] = 1.0  # see render.py: short AO indoors
    bpy.context.scene.world = world
    floor = M.wood("floor", (0.55, 0.36, 0.18), (0.3, 0.17, 0.07), plank_m=0.18)
    plane("floor", 2 * half + 1, 2 * half + 1, tuple(c), ctx.coll, floor)
    wall_col = [(0.8, 0.75, 0.65), (0.55, 0.65, 0.7), (0.75, 0.55, 0.45)][int(rng.integers(3))]
    wall = M.plaster("wall", wall_col)
    ceiling = M.plaster("ceiling", (0.85, 0.85, 0.85))
    for k in range(4):
        yaw = k * math.pi / 2
        off = np.array([math.cos(yaw), math.sin(yaw)]) * (half + 0.15)
        box(f"wall{k}", (0.3, 2 * half + 0.6, height), (c[0] + off[0], c[1] + off[1], c[2]), ctx.coll, wall, yaw)
    box("ceiling", (2 * half + 1, 2 * half + 1, 0.2), (c[0], c[1], c[2] + height), ctx.coll, ceiling)
    # ceiling lights (area lights) + visible light panels
    panel = M.emissive("panel", (1.0, 0.95, 0.85), 6.0)
    n_l = 3
    for i in range(n_l):
        for j in range(n_l):
            x = c[0] + (i - (n_l - 1) / 2) * (2 * half / n_l)
            y = c[1] + (j - (n_l - 1) / 2) * (2 * half / n_l)
            light = bpy.data.lights.new(f"area{i}{j}", "AREA")
            light.energy = 80.0 * half**2 / n_l**2
            light.size = 1.2
            light.color = (1.0, 0.93, 0.82)
            ob = bpy.data.objects.new(f"area{i}{j}", light)
            ob.location = (x, y, c[2] + height - 0.05)
            ctx.coll.objects.link(ob)
            pn = plane(f"panel{i}{j}", 1.2, 1.2, (x, y, c[2] + height - 0.02), ctx.coll, panel)
            pn.rotation_euler = (math.pi, 0, 0)
    # furniture along the walls and scattered low pieces
    shelf = M.wood("shelf", (0.3, 0.18, 0.08), (0.15, 0.08, 0.03), plank_m=0.3)
    books = [M.plain(f"book{i}", col, roughness=0.5) for i, col in
             enumerate([(0.6, 0.1, 0.1), (0.1, 0.3, 0.6), (0.8, 0.7, 0.2), (0.1, 0.4, 0.2), (0.5, 0.5, 0.5)])]
    n_items = n_rugs = 0
    for k in range(4):
        yaw = k * math.pi / 2
        normal = np.array([math.cos(yaw), math.sin(yaw)])
        along = np.array([-normal[1], normal[0]])
        for t in np.arange(-half + 2.0, half - 2.0, 3.2):
            if rng.random() < 0.35:
                continue
            xy = c[:2] + normal * (half - 0.35) + along * t
            sh = box(f"shelf{n_items}", (0.4, 2.0, 2.2), (xy[0], xy[1], c[2]), ctx.coll, shelf, yaw)
            for level in range(4):
                xs = -0.9
                while xs < 0.85:
                    w = rng.uniform(0.04, 0.09)
                    bh = rng.uniform(0.22, 0.35)
                    bk = box(f"book{n_items}_{level}_{xs:.2f}", (0.28, w, bh), (-0.3, xs + w / 2, 0.12 + 0.52 * level),
                             ctx.coll, books[int(rng.integers(len(books)))])
                    bk.parent = sh
                    xs += w + 0.005
            n_items += 1
    sofa = [M.fabric(f"sofa{i}", a, b_, 12.0) for i, (a, b_) in
            enumerate([((0.5, 0.1, 0.08), (0.35, 0.06, 0.05)), ((0.1, 0.2, 0.35), (0.07, 0.14, 0.25))])]
    table = M.wood("table", (0.5, 0.3, 0.15), (0.25, 0.12, 0.05), plank_m=0.12)
    leaves = M.foliage("plant", (0.06, 0.3, 0.06))
    pot = M.plain("pot", (0.6, 0.3, 0.15), roughness=0.7)
    for xy in ctx.ring_points(45, CHARACTER_GAP_M + 0.8, half - 1.0):
        if not ctx.free_for_prop(xy, 0.9):
            continue
        yaw = float(rng.uniform(0, 2 * np.pi))
        kind = rng.integers(4)
        if kind == 0:
            base = box(f"sofa{n_items}", (0.9, 2.0, 0.45), (xy[0], xy[1], c[2]), ctx.coll,
                       sofa[int(rng.integers(2))], yaw)
            back = box(f"sofaback{n_items}", (0.25, 2.0, 0.45), (-0.35, 0, 0.45), ctx.coll, base.data.materials[0])
            back.parent = base
        elif kind == 1:
            top = box(f"table{n_items}", (1.4, 0.8, 0.05), (xy[0], xy[1], c[2] + 0.72), ctx.coll, table, yaw)
            for sx in (-0.62, 0.62):
                for sy in (-0.33, 0.33):
                    leg = box(f"tleg{n_items}", (0.05, 0.05, 0.72), (sx, sy, -0.72), ctx.coll, table)
                    leg.parent = top
        elif kind == 2:
            cylinder(f"pot{n_items}", 0.25, 0.45, (xy[0], xy[1], c[2]), ctx.coll, pot, radius2=0.3)
            sphere(f"plant{n_items}", 0.5, (xy[0], xy[1], c[2] + 0.95), ctx.coll, leaves, subdiv=2, scale=(1, 1, 1.3))
        else:
            # Every rug lies at its own height: where two coplanar rugs overlap, Cycles' shadow and bounce rays
            # leaving one start on the other's plane and are all blocked, so the overlap renders pure black.
            rug = M.fabric(f"rug{n_items}", tuple(rng.uniform(0.15, 0.6, 3)), tuple(rng.uniform(0.05, 0.35, 3)), 5.0)
            plane(f"rug{n_items}", 2.5, 1.6, (xy[0], xy[1], c[2] + RUG_Z_M + RUG_STEP_M * (1 + n_rugs)), ctx.coll,
                  rug, yaw)
            n_rugs += 1
        n_items += 1
    plane("rug_center", 3.5, 2.5, (c[0], c[1], c[2] + RUG_Z_M), ctx.coll,
          M.fabric("rug_center", (0.6, 0.45, 0.2), (0.35, 0.1, 0.1), 4.0), float(rng.uniform(0, np.pi)))
    ctx.record.update({"half_size_m": round(half, 2), "height_m": round(height, 2), "items": n_items, "rugs": n_rugs})


def build_calibration(ctx: EnvContext) -> None:
    """Black void with small emissive markers at :data:`MARKERS_CM` around the placement."""
    build_void(ctx)
    pts = ctx.center + ue_to_rh_points(MARKERS_CM)
    for i, (p, col) in enumerate(zip(pts, MARKER_COLOURS, strict=True)):
        sphere(f"marker{i}", MARKER_RADIUS_CM / CM_PER_M, tuple(p), ctx.coll, M.emissive(f"marker{i}", tuple(col), 5.0),
               subdiv=3)
    ctx.record.update({"markers": len(pts)})


def build_void(ctx: EnvContext) -> None:
    """Black void (the synchronisation test's backdrop for the beacon)."""
    w = bpy.data.worlds.new("black")
    w.node_tree.nodes["Background"].inputs["Color"].default_value = (0, 0, 0, 1)
    bpy.context.scene.world = w


#: Built-in environments with tall things (buildings, trees, walls) outside ``clear_m``.
WITH_TALL_THINGS = frozenset({"plaza", "park", "hall"})
BUILTIN_ENVIRONMENTS = {"plaza": build_plaza, "park": build_park, "hall": build_hall,
                        "calibration": build_calibration, "void": build_void}


def build_environment(asset: str, ctx: EnvContext) -> dict[str, Any]:
    """Build ``builtin:<name>`` or import a user file; returns the record for scene.json."""
    from render_jobs.blender.user_assets import import_environment

    ctx.record["asset"] = asset
    if asset.startswith("builtin:"):
        name = asset.split(":", 1)[1]
        if name in WITH_TALL_THINGS:
            ctx.record["clear_radius_m"] = ctx.clear_m  # tall things stand outside it (cameras added later stay in)
        try:
            fn = BUILTIN_ENVIRONMENTS[name]
        except KeyError:
            raise KeyError(f"unknown built-in environment {name!r}; available: "
                           f"{', '.join(sorted(BUILTIN_ENVIRONMENTS))}") from None
        fn(ctx)
    else:
        import_environment(asset, ctx.coll)
        if bpy.context.scene.world is None:
            bpy.context.scene.world = M.sky_world("default_sky", (0.75, 0.85, 1.0), (0.2, 0.35, 0.8), (0.3, 0.3, 0.3))
    return ctx.record
