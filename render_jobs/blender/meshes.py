"""Small mesh primitives built with ``bmesh`` (no operators, no context), linked to a collection."""

from __future__ import annotations

from collections.abc import Sequence

import bmesh
import bpy
from mathutils import Matrix, Vector


def _finish(name: str, bm: bmesh.types.BMesh, mat: bpy.types.Material | None, coll: bpy.types.Collection,
            smooth: bool) -> bpy.types.Object:
    me = bpy.data.meshes.new(name)
    bm.to_mesh(me)
    bm.free()
    if smooth:
        me.shade_smooth()
    if mat is not None:
        me.materials.append(mat)
    ob = bpy.data.objects.new(name, me)
    coll.objects.link(ob)
    return ob


def box(name: str, size: Sequence[float], location: Sequence[float], coll: bpy.types.Collection,
        mat: bpy.types.Material | None = None, yaw: float = 0.0) -> bpy.types.Object:
    """Axis-aligned box of ``size`` (x, y, z) whose *bottom centre* is at ``location``, turned by ``yaw``."""
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.scale(bm, vec=Vector(size), verts=bm.verts)
    bmesh.ops.translate(bm, vec=Vector((0, 0, size[2] / 2)), verts=bm.verts)
    ob = _finish(name, bm, mat, coll, smooth=False)
    ob.location = location
    ob.rotation_euler = (0, 0, yaw)
    return ob


def cylinder(name: str, radius: float, depth: float, location: Sequence[float], coll: bpy.types.Collection,
             mat: bpy.types.Material | None = None, segments: int = 16, radius2: float | None = None,
             matrix: Matrix | None = None) -> bpy.types.Object:
    """Cylinder (or cone with ``radius2``) along +z from ``location`` (its base centre)."""
    bm = bmesh.new()
    bmesh.ops.create_cone(bm, cap_ends=True, segments=segments, radius1=radius,
                          radius2=radius if radius2 is None else radius2, depth=depth)
    bmesh.ops.translate(bm, vec=Vector((0, 0, depth / 2)), verts=bm.verts)
    if matrix is not None:
        bmesh.ops.transform(bm, matrix=matrix, verts=bm.verts)
    ob = _finish(name, bm, mat, coll, smooth=True)
    ob.location = location
    return ob


def sphere(name: str, radius: float, location: Sequence[float], coll: bpy.types.Collection,
           mat: bpy.types.Material | None = None, subdiv: int = 3,
           scale: Sequence[float] = (1.0, 1.0, 1.0)) -> bpy.types.Object:
    bm = bmesh.new()
    bmesh.ops.create_icosphere(bm, subdivisions=subdiv, radius=radius)
    bmesh.ops.scale(bm, vec=Vector(scale), verts=bm.verts)
    ob = _finish(name, bm, mat, coll, smooth=True)
    ob.location = location
    return ob


def capsule(name: str, radius: float, length: float, coll: bpy.types.Collection,
            mat: bpy.types.Material | None = None, scale: Sequence[float] = (1.0, 1.0, 1.0)) -> bpy.types.Object:
    """A rounded limb along +y from the origin to ``length`` (the direction of a Blender bone)."""
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=16, v_segments=10, radius=radius)
    for v in bm.verts:
        if v.co.z > 0:
            v.co.z += max(length - 2 * radius, 0.0)
        v.co.z += radius
    bmesh.ops.rotate(bm, cent=Vector((0, 0, 0)), matrix=Matrix.Rotation(-1.5707963267948966, 3, "X"), verts=bm.verts)
    bmesh.ops.scale(bm, vec=Vector(scale), verts=bm.verts)
    return _finish(name, bm, mat, coll, smooth=True)


def plane(name: str, size_x: float, size_y: float, location: Sequence[float], coll: bpy.types.Collection,
          mat: bpy.types.Material | None = None, yaw: float = 0.0) -> bpy.types.Object:
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=0.5)
    bmesh.ops.scale(bm, vec=Vector((size_x, size_y, 1.0)), verts=bm.verts)
    ob = _finish(name, bm, mat, coll, smooth=False)
    ob.location = location
    ob.rotation_euler = (0, 0, yaw)
    return ob
