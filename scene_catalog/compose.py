"""Scene composition: draw N (environment, anchor, character, animation, start offset) tuples.

Rules:

- **Balanced**: only the least-used environments and the least-used characters are eligible for the
  next scene, so every environment and every character is used within +-1 of equal at every prefix.
  The animation is the least-used one among those whose skeleton matches the character's.
- **Compatible**: never an animation on a character with another skeleton.
- **No repeats**: among the eligible (environment, character) pairs (random order) the first that still
  has an (animation, anchor) combination not used in that environment's current cycle is taken; a cycle
  ends when all tuples of the environment were used. Balance wins over novelty: only when no eligible
  pair has an unused combination left (tiny catalogs) does a tuple repeat, and then only a tuple whose
  character has used all its combinations in that environment. With the paper's catalog the space is far
  larger than the plan and nothing repeats at all.
- **Prefix-stable**: scene ``k`` depends only on the catalog, the seed and ``k`` (draws come from a
  generator seeded with ``(seed, k)``), so scene ``k`` is the same whatever ``N`` is.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from scene_catalog.models import Animation, Catalog

_COMPOSE_TAG = 0x5CE7E  # separates these draws from the trajectory sampler's (seed, scene) streams


@dataclass(frozen=True)
class SceneDraw:
    scene_index: int  # 1-based
    environment: str
    anchor: int  # index into the environment's anchors
    character: str
    animation: str
    #: First animation frame (at the animation's own fps) shown at render frame 0.
    start_frame: int
    #: Character yaw (UE degrees).
    yaw_deg: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def animation_start_range(anim: Animation, frames: int, fps: float) -> int:
    """Number of valid start frames: any frame for a loopable animation; for a one-shot, the starts that
    keep the whole render (``frames`` at ``fps``) inside the animation (at least 1: frame 0)."""
    if anim.loopable:
        return anim.length_frames
    needed = math.ceil((frames - 1) / fps * anim.fps) + 1
    return max(1, anim.length_frames - needed + 1)


def compose_scenes(
    catalog: Catalog, n_scenes: int, seed: int, *, frames: int = 81, fps: float = 15.0, start: int = 1
) -> list[SceneDraw]:
    """Draw scenes ``start .. start + n_scenes - 1`` (1-based)."""
    envs = catalog.environments
    chars = catalog.characters
    anims = catalog.animations
    n_e, n_c, n_a = len(envs), len(chars), len(anims)
    env_count = np.zeros(n_e)
    char_count = np.zeros(n_c)
    anim_count = np.zeros(n_a)
    anchor_count = [np.zeros(len(e.anchors)) for e in envs]
    by_skeleton: dict[str, np.ndarray] = {}
    for sk in {c.skeleton for c in chars}:
        by_skeleton[sk] = np.array([i for i, a in enumerate(anims) if a.skeleton == sk], dtype=np.int64)
    char_anims = [by_skeleton[c.skeleton] for c in chars]
    per_env_tuples = sum(len(a) for a in char_anims)
    used: list[set[tuple[int, int, int]]] = [set() for _ in envs]
    starts = [animation_start_range(a, frames, fps) for a in anims]

    out: list[SceneDraw] = []
    last = start + n_scenes - 1
    for k in range(1, last + 1):
        rng = np.random.default_rng([seed, k, _COMPOSE_TAG])
        u = rng.random(n_e + n_c + n_a + 2)
        env_order = np.lexsort((u[:n_e], env_count))
        char_order = np.lexsort((u[n_e : n_e + n_c], char_count))
        tie_a = u[n_e + n_c : n_e + n_c + n_a]
        e, c, a, x = _pick(env_order, env_count, char_order, char_count, char_anims, anim_count, tie_a,
                           anchor_count, used)
        used[e].add((c, a, x))
        if len(used[e]) >= per_env_tuples * len(envs[e].anchors):
            used[e].clear()  # every tuple of this environment was used: a new cycle
        env_count[e] += 1
        char_count[c] += 1
        anim_count[a] += 1
        anchor_count[e][x] += 1
        if k >= start:
            start_frame = int(u[-2] * starts[a]) if starts[a] > 1 else 0
            out.append(
                SceneDraw(
                    k,
                    envs[e].id,
                    x,
                    chars[c].id,
                    anims[a].id,
                    min(start_frame, starts[a] - 1),
                    round(float(u[-1] * 360.0), 3),
                )
            )
    return out


def _pick(
    env_order: np.ndarray,
    env_count: np.ndarray,
    char_order: np.ndarray,
    char_count: np.ndarray,
    char_anims: list[np.ndarray],
    anim_count: np.ndarray,
    tie_a: np.ndarray,
    anchor_count: list[np.ndarray],
    used: list[set[tuple[int, int, int]]],
) -> tuple[int, int, int, int]:
    """Balance first: only least-used environments and least-used characters are eligible (in random
    order). Among them, the first (environment, character) with a combination of animation (least-used
    first) and anchor (least-used first) not yet used in that environment's cycle. Only when no eligible
    pair has one left does a combination repeat (the first eligible pair's least-used one)."""
    envs = [int(e) for e in env_order if env_count[e] == env_count[env_order[0]]]
    chars = [int(c) for c in char_order if char_count[c] == char_count[char_order[0]]]
    first: tuple[int, int, int, int] | None = None
    for e in envs:
        anchors = np.argsort(anchor_count[e], kind="stable").tolist()
        for c in chars:
            cand = char_anims[c]
            for a in cand[np.lexsort((tie_a[cand], anim_count[cand]))].tolist():
                for x in anchors:
                    if first is None:
                        first = (e, c, a, x)
                    if (c, a, x) not in used[e]:
                        return (e, c, a, x)
    assert first is not None
    return first


@dataclass(frozen=True)
class Spread:
    kind: str
    items: int
    min: int
    max: int
    unused: int

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.items} used {self.min}..{self.max} times each (spread {self.max - self.min})"
            + (f", {self.unused} unused" if self.unused else "")
        )


def usage_spread(catalog: Catalog, draws: list[SceneDraw]) -> list[Spread]:
    """How evenly environments, characters and animations are used."""
    out = []
    for kind, ids, key in (
        ("environments", [e.id for e in catalog.environments], "environment"),
        ("characters", [c.id for c in catalog.characters], "character"),
        ("animations", [a.id for a in catalog.animations], "animation"),
    ):
        cnt = Counter(getattr(d, key) for d in draws)
        vals = [cnt.get(i, 0) for i in ids]
        out.append(
            Spread(kind, len(ids), min(vals, default=0), max(vals, default=0), sum(v == 0 for v in vals))
        )
    return out
