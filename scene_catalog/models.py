"""The scene catalog: environments, characters and animations as plain typed data.

A catalog file (YAML, TOML or JSON) has three lists::

    environments:
      - id: plaza
        asset: builtin:plaza            # UE map path, .blend/.glb path, or builtin:<name>
        size: medium                    # small | medium | large | huge -> allowed hemisphere radii
        radii_m: [3, 5]                 # optional: explicit subset of {3, 5, 7, 10} (overrides size)
        tags: [outdoor, urban]
        anchors:                        # where a character may stand
          - id: center                  # optional, defaults to a0, a1, ...
            location_cm: [0, 0, 0]      # UE world cm; z is the ground height
            free_radius_m: 10           # obstacle-free radius around the anchor
    characters:
      - {id: ada, asset: builtin:mannequin, height_m: 1.75, skeleton: mannequin}
    animations:
      - {id: walk, asset: builtin:walk, skeleton: mannequin, length_frames: 120, fps: 30, loopable: true}

Every environment, character and animation may have a ``description`` (optional) from which the scene's
caption is composed (``exporters/metadata.py`` ``scene_caption``: "<character> <animation> in
<environment>."): a character's is a noun phrase ("a slim mannequin in a blue shirt"), an animation's a
present-tense verb phrase ("walks in a slow circle"), an environment's a noun phrase read after "in"
("a paved city square ringed by buildings"). Descriptions do not change what is rendered, so they are
left out of :meth:`Catalog.content_key` (a plan stays valid when only descriptions change).

Relative asset paths resolve against the folder of the catalog file that names them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from multicam.conventions import default_aim_height_m

#: The hemisphere radii (metres) of MultiCamVideo.
ALLOWED_RADII_M: tuple[float, ...] = (3.0, 5.0, 7.0, 10.0)

#: Environment size class -> allowed hemisphere radii (metres).
SIZE_RADII_M: dict[str, tuple[float, ...]] = {
    "small": (3.0,),
    "medium": (3.0, 5.0),
    "large": (3.0, 5.0, 7.0),
    "huge": (3.0, 5.0, 7.0, 10.0),
}

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

#: Bounds of catalog numbers (beyond them a value is a typo, and the renderers' float maths breaks down).
MAX_LOCATION_CM = 1e8  # 1000 km from the world origin
MAX_FREE_RADIUS_M = 1e5
MAX_LENGTH_FRAMES = 10_000_000


def _description() -> Any:
    """An optional caption text of a catalog entry (one line)."""
    return Field(None, min_length=1, max_length=300, pattern=r"^[^\n\r]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)


class Anchor(_Model):
    """A point where the character stands: UE world cm (z = ground height) and its free radius."""

    id: str = Field("", pattern=r"^$|" + ID_PATTERN)
    location_cm: tuple[float, float, float]
    free_radius_m: float = Field(10.0, gt=0, le=MAX_FREE_RADIUS_M)

    @field_validator("location_cm", mode="before")
    @classmethod
    def _xyz(cls, v: object) -> object:
        if not isinstance(v, list | tuple) or len(v) != 3:
            raise ValueError(f"must be [x, y, z] in UE cm (z = ground height), got {v!r}")
        return v

    @field_validator("location_cm")
    @classmethod
    def _in_world(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(abs(c) <= MAX_LOCATION_CM for c in v):
            raise ValueError(f"each coordinate must be within +-{MAX_LOCATION_CM:g} cm, got {list(v)!r}")
        return v


class Environment(_Model):
    id: str = Field(pattern=ID_PATTERN)
    asset: str = Field(min_length=1)
    size: str = "huge"
    radii_m: tuple[float, ...] | None = None
    tags: tuple[str, ...] = ()
    anchors: tuple[Anchor, ...]
    #: Caption noun phrase read after "in" (e.g. "a paved city square ringed by buildings").
    description: str | None = _description()

    @field_validator("anchors")
    @classmethod
    def _has_anchors(cls, v: tuple[Anchor, ...]) -> tuple[Anchor, ...]:
        if not v:
            raise ValueError("needs at least one anchor (where the character stands)")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        if v not in SIZE_RADII_M:
            raise ValueError(f"size {v!r} is not one of {', '.join(SIZE_RADII_M)}")
        return v

    @field_validator("radii_m")
    @classmethod
    def _radii(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("radii_m must not be empty")
        bad = [r for r in v if r not in ALLOWED_RADII_M]
        if bad:
            allowed = ", ".join(f"{r:g}" for r in ALLOWED_RADII_M)
            raise ValueError(
                f"radii {', '.join(f'{r:g}' for r in bad)} not in the allowed set {{{allowed}}} m"
            )
        if len(set(v)) != len(v):
            raise ValueError(f"radii_m has duplicates: {list(v)}")
        return tuple(sorted(v))

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if "indoor" in v and "outdoor" in v:
            raise ValueError("an environment cannot be tagged both indoor and outdoor")
        return v

    @model_validator(mode="after")
    def _anchors(self) -> Environment:
        ids = [a.id for a in self.anchors if a.id]
        dup = sorted(k for k, n in Counter(ids).items() if n > 1)
        if dup:
            raise ValueError(f"duplicate anchor ids: {', '.join(dup)}")
        smallest = min(self.allowed_radii_m)
        for i, a in enumerate(self.anchors):
            if a.free_radius_m < smallest:
                raise ValueError(
                    f"anchor {a.id or i} has free_radius_m {a.free_radius_m:g} < the smallest allowed "
                    f"radius {smallest:g} m; no camera hemisphere fits"
                )
        return self

    @property
    def allowed_radii_m(self) -> tuple[float, ...]:
        return self.radii_m if self.radii_m is not None else SIZE_RADII_M[self.size]

    def anchor_id(self, index: int) -> str:
        return self.anchors[index].id or f"a{index}"

    def anchor_radii_m(self, index: int) -> tuple[float, ...]:
        """Radii allowed at one anchor: the environment's radii that fit in its free radius."""
        free = self.anchors[index].free_radius_m
        return tuple(r for r in self.allowed_radii_m if r <= free)


class Character(_Model):
    id: str = Field(pattern=ID_PATTERN)
    asset: str = Field(min_length=1)
    height_m: float = Field(1.8, gt=0.2, le=5.0)
    skeleton: str = Field("mannequin", min_length=1)
    #: Where cameras aim, metres above the ground point (default: ``multicam.conventions.default_aim_height_m``
    #: of the height, the body's centre); at most the height.
    aim_height_m: float | None = Field(None, gt=0.0, le=5.0)
    #: Caption noun phrase, the subject (e.g. "a slim mannequin in a blue shirt").
    description: str | None = _description()

    @model_validator(mode="after")
    def _aim_within_body(self) -> Character:
        if self.aim_height_m is not None and self.aim_height_m > self.height_m:
            raise ValueError(f"aim_height_m {self.aim_height_m:g} is above the character's height_m "
                             f"{self.height_m:g}")
        return self

    @property
    def resolved_aim_height_m(self) -> float:
        """``aim_height_m``, else the default fraction of the height."""
        return float(self.aim_height_m) if self.aim_height_m is not None else float(default_aim_height_m(self.height_m))


class Animation(_Model):
    id: str = Field(pattern=ID_PATTERN)
    asset: str = Field(min_length=1)
    skeleton: str = Field("mannequin", min_length=1)
    #: Length in frames at ``fps``.
    length_frames: int = Field(ge=1, le=MAX_LENGTH_FRAMES)
    fps: float = Field(30.0, gt=0, le=1000)
    loopable: bool = False
    #: Caption verb phrase, present tense (e.g. "walks in a slow circle").
    description: str | None = _description()

    @property
    def duration_s(self) -> float:
        return self.length_frames / self.fps


class Catalog(_Model):
    environments: tuple[Environment, ...] = ()
    characters: tuple[Character, ...] = ()
    animations: tuple[Animation, ...] = ()
    #: Files it was loaded from (informational).
    sources: tuple[str, ...] = ()

    def environment(self, id: str) -> Environment:
        return next(e for e in self.environments if e.id == id)

    def character(self, id: str) -> Character:
        return next(c for c in self.characters if c.id == id)

    def animation(self, id: str) -> Animation:
        return next(a for a in self.animations if a.id == id)

    def content_key(self) -> str:
        """A stable JSON of the content (sources and descriptions excluded), for plan idempotency checks.

        Descriptions only feed captions, so editing them does not make an existing plan "different"."""
        no_text = {"__all__": {"description"}}
        return self.model_dump_json(exclude={"sources": True, "environments": no_text, "characters": no_text,
                                             "animations": no_text})
