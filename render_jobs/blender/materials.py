"""Procedural Cycles materials for the demo environments and characters (needs ``bpy``).

Every material is built from Blender's procedural texture nodes (brick, noise, wave, voronoi), so
nothing is downloaded and every frame has texture at all scales. Texture coordinates are object
space in metres unless noted, so patterns have a physical size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy

RGB = Sequence[float]


def _rgba(c: RGB) -> tuple[float, float, float, float]:
    return (float(c[0]), float(c[1]), float(c[2]), 1.0)


def _out(node: Any, *names: str) -> Any:
    """Output socket by the first name that exists (Blender renames sockets between versions)."""
    for n in names:
        if n in node.outputs:
            return node.outputs[n]
    return node.outputs[0]


def _fac(node: Any) -> Any:
    return _out(node, "Factor", "Fac")


class _Builder:
    """Tiny helper around a material node tree."""

    def __init__(self, name: str) -> None:
        self.mat = bpy.data.materials.new(name)
        self.nt = self.mat.node_tree
        self.nodes, self.links = self.nt.nodes, self.nt.links
        self.bsdf = self.nodes.get("Principled BSDF")
        self._coords: Any = None

    def node(self, kind: str, **inputs: Any) -> Any:
        n = self.nodes.new(kind)
        for k, v in inputs.items():
            key = k.replace("_", " ")
            if hasattr(v, "is_output"):
                self.links.new(v, n.inputs[key])
            else:
                n.inputs[key].default_value = v
        return n

    def link(self, a: Any, b: Any) -> None:
        self.links.new(a, b)

    def coords(self, space: str = "Object") -> Any:
        if self._coords is None:
            self._coords = self.nodes.new("ShaderNodeTexCoord")
        return self._coords.outputs[space]

    def mix(self, fac: Any, a: Any, b: Any) -> Any:
        m = self.nodes.new("ShaderNodeMix")
        m.data_type = "RGBA"
        self.link(fac, m.inputs[0])
        for sock, val in ((m.inputs[6], a), (m.inputs[7], b)):
            if hasattr(val, "is_output"):
                self.link(val, sock)
            else:
                sock.default_value = _rgba(val)
        return m.outputs[2]

    def ramp(self, fac: Any, stops: Sequence[tuple[float, RGB]]) -> Any:
        r = self.nodes.new("ShaderNodeValToRGB")
        self.link(fac, r.inputs[0])
        els = r.color_ramp.elements
        while len(els) < len(stops):
            els.new(0.5)
        for el, (pos, col) in zip(els, stops, strict=True):
            el.position = pos
            el.color = _rgba(col)
        return r.outputs[0]

    def bump(self, height: Any, strength: float = 0.3, distance: float = 0.02) -> None:
        b = self.node("ShaderNodeBump", Strength=strength, Distance=distance)
        self.link(height, b.inputs["Height"])
        self.link(b.outputs["Normal"], self.bsdf.inputs["Normal"])

    def set(self, **inputs: Any) -> bpy.types.Material:
        for k, v in inputs.items():
            key = k.replace("_", " ")
            if hasattr(v, "is_output"):
                self.link(v, self.bsdf.inputs[key])
            elif isinstance(v, tuple | list):
                self.bsdf.inputs[key].default_value = _rgba(v) if len(v) == 3 else v
            else:
                self.bsdf.inputs[key].default_value = v
        return self.mat


def plain(name: str, color: RGB, roughness: float = 0.6, metallic: float = 0.0,
          noise: float = 0.15) -> bpy.types.Material:
    """A coloured material with subtle noise in colour and roughness (painted plastic/cloth)."""
    b = _Builder(name)
    n = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=6.0, Detail=6.0)
    dark = tuple(c * (1 - noise) for c in color)
    col = b.mix(_fac(n), dark, color)
    b.bump(_fac(n), strength=0.08)
    return b.set(Base_Color=col, Roughness=roughness, Metallic=metallic)


def emissive(name: str, color: RGB, strength: float = 4.0, lights_scene: bool = False) -> bpy.types.Material:
    """Pure emission (markers, lamp globes, light panels). Decorative by default: it glows in view but
    is not sampled as a light (``lights_scene=False``), which keeps Cycles fast on the CPU."""
    mat = bpy.data.materials.new(name)
    mat.cycles.emission_sampling = "AUTO" if lights_scene else "NONE"
    nt = mat.node_tree
    for n in list(nt.nodes):
        if n.bl_idname != "ShaderNodeOutputMaterial":
            nt.nodes.remove(n)
    em = nt.nodes.new("ShaderNodeEmission")
    em.inputs["Color"].default_value = _rgba(color)
    em.inputs["Strength"].default_value = strength
    out = next(n for n in nt.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    nt.links.new(em.outputs[0], out.inputs["Surface"])
    return mat


def paving(name: str, stone: RGB, mortar: RGB, brick_m: float = 0.6) -> bpy.types.Material:
    """Paving stones / cobbles: brick pattern with per-stone tint, dirt noise and bumpy joints."""
    b = _Builder(name)
    mapping = b.node("ShaderNodeMapping", Vector=b.coords())
    mapping.inputs["Scale"].default_value = (1.0 / brick_m, 1.0 / brick_m, 1.0 / brick_m)
    brick = b.node("ShaderNodeTexBrick", Vector=mapping.outputs[0], Scale=1.0, Mortar_Size=0.03)
    brick.inputs["Brick Width"].default_value = 1.0
    brick.inputs["Row Height"].default_value = 0.5
    brick.inputs["Color1"].default_value = _rgba(stone)
    brick.inputs["Color2"].default_value = _rgba(tuple(c * 0.7 for c in stone))
    brick.inputs["Mortar"].default_value = _rgba(mortar)
    dirt = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=0.8, Detail=8.0, Roughness=0.6)
    col = b.mix(b.ramp(_fac(dirt), [(0.35, (0.55, 0.5, 0.45)), (0.75, (1, 1, 1))]), (0, 0, 0), _out(brick, "Color"))
    mult = b.nodes.new("ShaderNodeMix")
    mult.data_type = "RGBA"
    mult.blend_type = "MULTIPLY"
    mult.inputs[0].default_value = 1.0
    b.link(_out(brick, "Color"), mult.inputs[6])
    b.link(col, mult.inputs[7])
    b.bump(_fac(brick), strength=0.4)
    return b.set(Base_Color=mult.outputs[2], Roughness=0.75)


def grass(name: str, base: RGB = (0.08, 0.22, 0.04), tip: RGB = (0.22, 0.40, 0.08)) -> bpy.types.Material:
    """Lawn: multi-scale noise between two greens with dry patches."""
    b = _Builder(name)
    fine = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=40.0, Detail=4.0)
    coarse = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=0.35, Detail=3.0)
    col = b.mix(_fac(fine), base, tip)
    patches = b.ramp(_fac(coarse), [(0.55, (0, 0, 0)), (0.7, (1, 1, 1))])
    col = b.mix(patches, col, (0.35, 0.30, 0.12))
    b.bump(_fac(fine), strength=0.5)
    return b.set(Base_Color=col, Roughness=0.9)


def gravel(name: str, color: RGB = (0.45, 0.38, 0.30)) -> bpy.types.Material:
    """Gravel path: voronoi cells with noise."""
    b = _Builder(name)
    vor = b.node("ShaderNodeTexVoronoi", Vector=b.coords(), Scale=18.0)
    col = b.ramp(_out(vor, "Distance"), [(0.0, tuple(c * 0.6 for c in color)), (0.6, color)])
    b.bump(_out(vor, "Distance"), strength=0.5)
    return b.set(Base_Color=col, Roughness=0.85)


def wood(name: str, light: RGB = (0.45, 0.27, 0.12), dark: RGB = (0.22, 0.11, 0.04),
         plank_m: float = 0.2) -> bpy.types.Material:
    """Wooden planks: long bricks with wave-texture grain."""
    b = _Builder(name)
    mapping = b.node("ShaderNodeMapping", Vector=b.coords())
    mapping.inputs["Scale"].default_value = (1.0 / (plank_m * 6), 1.0 / plank_m, 1.0)
    brick = b.node("ShaderNodeTexBrick", Vector=mapping.outputs[0], Scale=1.0)
    brick.inputs["Mortar Size"].default_value = 0.02
    brick.inputs["Brick Width"].default_value = 1.0
    brick.inputs["Row Height"].default_value = 1.0
    brick.inputs["Color1"].default_value = _rgba((1, 1, 1))
    brick.inputs["Color2"].default_value = _rgba((0.7, 0.7, 0.7))
    brick.inputs["Mortar"].default_value = _rgba((0.1, 0.1, 0.1))
    wave = b.node("ShaderNodeTexWave", Vector=b.coords(), Scale=3.0, Distortion=6.0, Detail=3.0)
    grain = b.ramp(_fac(wave), [(0.2, dark), (0.8, light)])
    mult = b.nodes.new("ShaderNodeMix")
    mult.data_type = "RGBA"
    mult.blend_type = "MULTIPLY"
    mult.inputs[0].default_value = 1.0
    b.link(grain, mult.inputs[6])
    b.link(_out(brick, "Color"), mult.inputs[7])
    b.bump(_fac(brick), strength=0.2)
    return b.set(Base_Color=mult.outputs[2], Roughness=0.45)


def plaster(name: str, color: RGB) -> bpy.types.Material:
    """Painted wall: low-frequency blotches and fine grain."""
    b = _Builder(name)
    n1 = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=1.5, Detail=8.0, Roughness=0.7)
    col = b.mix(_fac(n1), tuple(c * 0.8 for c in color), color)
    fine = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=60.0)
    b.bump(_fac(fine), strength=0.1)
    return b.set(Base_Color=col, Roughness=0.8)


def facade(name: str, wall: RGB, glass: RGB = (0.05, 0.08, 0.12), floor_m: float = 3.2,
           bay_m: float = 2.4, lit: float = 0.0) -> bpy.types.Material:
    """Building facade: brick-textured wall with a grid of windows (bays x floors, object space)."""
    b = _Builder(name)
    sep = b.nodes.new("ShaderNodeSeparateXYZ")
    b.link(b.coords(), sep.inputs[0])
    horiz = b.nodes.new("ShaderNodeMath")
    horiz.operation = "ADD"
    b.link(sep.outputs["X"], horiz.inputs[0])
    b.link(sep.outputs["Y"], horiz.inputs[1])

    def cell(src: Any, size: float, lo: float, hi: float) -> Any:
        div = b.nodes.new("ShaderNodeMath")
        div.operation = "DIVIDE"
        b.link(src, div.inputs[0])
        div.inputs[1].default_value = size
        fr = b.nodes.new("ShaderNodeMath")
        fr.operation = "FRACT"
        b.link(div.outputs[0], fr.inputs[0])
        a = b.nodes.new("ShaderNodeMath")
        a.operation = "GREATER_THAN"
        b.link(fr.outputs[0], a.inputs[0])
        a.inputs[1].default_value = lo
        c = b.nodes.new("ShaderNodeMath")
        c.operation = "LESS_THAN"
        b.link(fr.outputs[0], c.inputs[0])
        c.inputs[1].default_value = hi
        m = b.nodes.new("ShaderNodeMath")
        m.operation = "MULTIPLY"
        b.link(a.outputs[0], m.inputs[0])
        b.link(c.outputs[0], m.inputs[1])
        return m.outputs[0]

    wx = cell(horiz.outputs[0], bay_m, 0.2, 0.8)
    wz = cell(sep.outputs["Z"], floor_m, 0.3, 0.85)
    win = b.nodes.new("ShaderNodeMath")
    win.operation = "MULTIPLY"
    b.link(wx, win.inputs[0])
    b.link(wz, win.inputs[1])
    # wall texture: small bricks
    mapping = b.node("ShaderNodeMapping", Vector=b.coords())
    mapping.inputs["Scale"].default_value = (4.0, 4.0, 8.0)
    brick = b.node("ShaderNodeTexBrick", Vector=mapping.outputs[0], Scale=1.0)
    brick.inputs["Color1"].default_value = _rgba(wall)
    brick.inputs["Color2"].default_value = _rgba(tuple(c * 0.8 for c in wall))
    brick.inputs["Mortar"].default_value = _rgba(tuple(min(1.0, c * 1.3 + 0.1) for c in wall))
    brick.inputs["Mortar Size"].default_value = 0.04
    grime = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=0.3, Detail=6.0)
    wall_col = b.mix(b.ramp(_fac(grime), [(0.3, (0.6, 0.6, 0.6)), (0.7, (1, 1, 1))]), (0, 0, 0), _out(brick, "Color"))
    col = b.mix(win.outputs[0], wall_col, glass)
    rough = b.nodes.new("ShaderNodeMapRange")
    b.link(win.outputs[0], rough.inputs[0])
    rough.inputs[3].default_value = 0.85
    rough.inputs[4].default_value = 0.05
    b.link(rough.outputs[0], b.bsdf.inputs["Roughness"])
    b.bump(_fac(brick), strength=0.15)
    if lit > 0:
        b.link(win.outputs[0], b.bsdf.inputs["Emission Strength"])
        b.bsdf.inputs["Emission Color"].default_value = _rgba((lit, lit * 0.8, lit * 0.5))
    return b.set(Base_Color=col)


def fabric(name: str, a: RGB, c: RGB, scale: float = 8.0) -> bpy.types.Material:
    """Rug / upholstery: wave stripes between two colours."""
    b = _Builder(name)
    wave = b.node("ShaderNodeTexWave", Vector=b.coords(), Scale=scale, Distortion=1.5)
    col = b.mix(_fac(wave), a, c)
    fine = b.node("ShaderNodeTexNoise", Vector=b.coords(), Scale=150.0)
    b.bump(_fac(fine), strength=0.2)
    return b.set(Base_Color=col, Roughness=0.95)


def bark(name: str) -> bpy.types.Material:
    b = _Builder(name)
    wave = b.node("ShaderNodeTexWave", Vector=b.coords(), Scale=4.0, Distortion=8.0, Detail=4.0)
    wave.wave_type = "BANDS"
    wave.bands_direction = "Z"
    col = b.ramp(_fac(wave), [(0.2, (0.06, 0.04, 0.02)), (0.8, (0.22, 0.15, 0.08))])
    b.bump(_fac(wave), strength=0.6)
    return b.set(Base_Color=col, Roughness=0.9)


def foliage(name: str, color: RGB) -> bpy.types.Material:
    b = _Builder(name)
    vor = b.node("ShaderNodeTexVoronoi", Vector=b.coords(), Scale=9.0)
    col = b.ramp(_out(vor, "Distance"), [(0.0, tuple(c * 1.4 for c in color)), (0.5, tuple(c * 0.5 for c in color))])
    b.bump(_out(vor, "Distance"), strength=0.8)
    return b.set(Base_Color=col, Roughness=0.8)


def sky_world(name: str, horizon: RGB, zenith: RGB, ground: RGB, strength: float = 1.0) -> bpy.types.World:
    """A gradient sky (zenith -> horizon -> ground) that also lights the scene."""
    w = bpy.data.worlds.new(name)
    # A smooth gradient needs only a coarse importance map (the default costs ~25 % of a frame).
    w.cycles.sampling_method = "MANUAL"
    w.cycles.sample_map_resolution = 64
    nt = w.node_tree
    bg = nt.nodes.get("Background") or nt.nodes.new("ShaderNodeBackground")
    coords = nt.nodes.new("ShaderNodeTexCoord")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(coords.outputs["Generated"], sep.inputs[0])
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    mr = nt.nodes.new("ShaderNodeMapRange")
    nt.links.new(sep.outputs["Z"], mr.inputs[0])
    mr.inputs[1].default_value = -1.0
    mr.inputs[2].default_value = 1.0
    nt.links.new(mr.outputs[0], ramp.inputs[0])
    els = ramp.color_ramp.elements
    els[0].position, els[0].color = 0.45, _rgba(ground)
    els[1].position, els[1].color = 1.0, _rgba(zenith)
    mid = els.new(0.5)
    mid.color = _rgba(horizon)
    nt.links.new(ramp.outputs[0], bg.inputs["Color"])
    bg.inputs["Strength"].default_value = strength
    out = nt.nodes.get("World Output") or nt.nodes.new("ShaderNodeOutputWorld")
    nt.links.new(bg.outputs[0], out.inputs["Surface"])
    return w
