"""Load and validate catalog files (YAML, TOML, JSON), reporting every problem at once.

``load_catalog(*paths)`` merges the files into one :class:`~scene_catalog.models.Catalog` or raises
:class:`CatalogError` whose ``problems`` list holds one :class:`Problem` per defect, each naming the
file, the entry (``environments[2] 'plaza'``) and the field.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scene_catalog.models import Animation, Catalog, Character, Environment

SECTIONS: dict[str, type[BaseModel]] = {
    "environments": Environment,
    "characters": Character,
    "animations": Animation,
}

#: Asset references with these suffixes are local files and must exist (for local backends).
FILE_ASSET_SUFFIXES = frozenset(
    {
        ".blend",
        ".glb",
        ".gltf",
        ".fbx",
        ".obj",
        ".usd",
        ".usda",
        ".usdc",
        ".usdz",
        ".abc",
        ".bvh",
        ".dae",
        ".ply",
        ".stl",
        ".x3d",
    }
)
BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str
    field: str
    message: str

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.entry) if p)
        fld = f" field '{self.field}'" if self.field else ""
        return f"{where}:{fld} {self.message}".strip()


class CatalogError(ValueError):
    """One or more problems in catalog files; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the catalog:\n{lines}")


def is_file_asset(asset: str) -> bool:
    """True for local file references (``.blend``, ``.glb``, ...); False for ``builtin:`` and engine paths."""
    if asset.startswith(BUILTIN_PREFIX):
        return False
    return Path(asset).suffix.lower() in FILE_ASSET_SUFFIXES


def _read_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    raise ValueError(f"unsupported catalog format {suffix!r}; use .yaml, .yml, .toml or .json")


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _entry_name(section: str, index: int, raw: Any) -> str:
    ident = raw.get("id") if isinstance(raw, dict) else None
    return f"{section}[{index}]" + (f" '{ident}'" if isinstance(ident, str) else "")


def _pydantic_problems(file: str, entry: str, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] in ("value_error", "assertion_error"):
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if (
            err["type"] not in ("missing", "extra_forbidden")
            and "input" in err
            and not isinstance(err["input"], dict | list)
        ):
            msg = f"{msg} (got {err['input']!r})"
        out.append(Problem(file, entry, _field_path(loc), msg))
    return out


def _resolve_asset(asset: str, base: Path) -> str:
    if not is_file_asset(asset):
        return asset
    p = Path(os.path.expanduser(asset))
    return str(p if p.is_absolute() else (base / p).resolve())


def _outside_roots(asset: str, resolved: str, base: Path, roots: tuple[Path, ...]) -> str | None:
    """Why a file asset may not be used: it resolves (``..``, absolute, ``~``, symlinks followed) outside the
    catalog's folder and every allowed asset root; None when it is inside one."""
    real = Path(resolved).resolve()
    if any(real.is_relative_to(r) for r in (base, *roots)):
        return None
    allowed = ", ".join(str(r) for r in roots)
    return (f"{asset} resolves to {real}, outside the catalog's folder {base}"
            + (f" and the asset roots {allowed}" if roots else "")
            + "; allow it with --asset-root DIR (a folder that holds it)")


def load_catalog(*paths: str | os.PathLike[str], check_assets: bool = True,
                 asset_roots: Iterable[str | os.PathLike[str]] = ()) -> Catalog:
    """Load, merge and validate catalog files; raise :class:`CatalogError` listing all problems.

    ``check_assets``: verify that file assets (``.blend``, ``.glb``, ...) exist. ``builtin:`` assets and
    engine object paths (``/Game/...``) are never checked here. File assets must lie below the catalog
    file's folder or one of ``asset_roots`` (after ``~``, ``..`` and symlinks are resolved).
    """
    roots = tuple(Path(r).expanduser().resolve() for r in asset_roots)
    problems: list[Problem] = []
    items: dict[str, list[tuple[str, str, BaseModel]]] = {s: [] for s in SECTIONS}
    raws: dict[str, list[tuple[str, str, dict[str, Any]]]] = {s: [] for s in SECTIONS}
    if not paths:
        raise CatalogError([Problem("", "", "", "no catalog files given")])
    # A file that cannot be read says so once; its sections are then not also reported as empty.
    unreadable = False
    for path_like in paths:
        path = Path(path_like)
        file = str(path)
        try:
            data = _read_file(path)
        except FileNotFoundError:
            problems.append(Problem(file, "", "", "file not found"))
            unreadable = True
            continue
        except IsADirectoryError:
            problems.append(Problem(file, "", "", "is a folder, expected a catalog file (.yaml, .yml, .toml, .json)"))
            unreadable = True
            continue
        except PermissionError:
            problems.append(Problem(file, "", "", "cannot be read (permission denied)"))
            unreadable = True
            continue
        except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = str(exc).strip().replace("\n", " ")
            problems.append(Problem(file, "", "", f"cannot parse file: {detail}"))
            unreadable = True
            continue
        except ValueError as exc:
            problems.append(Problem(file, "", "", str(exc)))
            unreadable = True
            continue
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    file,
                    "",
                    "",
                    f"top level must be a mapping with keys {', '.join(SECTIONS)}, got {type(data).__name__}",
                )
            )
            unreadable = True
            continue
        for key in data:
            if key not in SECTIONS:
                problems.append(
                    Problem(file, "", str(key), f"unknown top-level key; allowed: {', '.join(SECTIONS)}")
                )
        base = path.parent.resolve()
        for section, model in SECTIONS.items():
            entries = data.get(section, [])
            if entries is None:
                entries = []
            if not isinstance(entries, list):
                problems.append(Problem(file, section, "", f"must be a list, got {type(entries).__name__}"))
                continue
            for i, raw in enumerate(entries):
                entry = _entry_name(section, i, raw)
                if not isinstance(raw, dict):
                    problems.append(Problem(file, entry, "", f"must be a mapping, got {type(raw).__name__}"))
                    continue
                raw = dict(raw)
                if isinstance(raw.get("asset"), str):
                    given = raw["asset"]
                    raw["asset"] = _resolve_asset(given, base)
                    if is_file_asset(given) and (why := _outside_roots(given, raw["asset"], base, roots)):
                        problems.append(Problem(file, entry, "asset", why))
                raws[section].append((file, entry, raw))
                try:
                    obj = model.model_validate(raw)
                except ValidationError as exc:
                    problems.extend(_pydantic_problems(file, entry, exc))
                    continue
                items[section].append((file, entry, obj))
    problems.extend(_cross_checks(raws, check_assets, report_empty=not unreadable))
    if problems:
        raise CatalogError(problems)
    return Catalog(
        environments=tuple(o for _, _, o in items["environments"]),
        characters=tuple(o for _, _, o in items["characters"]),
        animations=tuple(o for _, _, o in items["animations"]),
        sources=tuple(str(Path(p)) for p in paths),
    )


def _cross_checks(
    raws: dict[str, list[tuple[str, str, dict[str, Any]]]], check_assets: bool, report_empty: bool = True
) -> Iterable[Problem]:
    """Checks across entries and files, on the raw entries so that they run even where an entry
    also has a field error (all problems are reported at once)."""
    for section, entries in raws.items():
        seen: dict[str, str] = {}
        for file, entry, raw in entries:
            ident = raw.get("id")
            if not isinstance(ident, str):
                continue
            if ident in seen:
                yield Problem(
                    file,
                    entry,
                    "id",
                    f"duplicate {section[:-1]} id {ident!r} (first defined in {seen[ident]})",
                )
            else:
                seen[ident] = f"{file}: {entry}"
        if not entries and report_empty:
            yield Problem("", section, "", f"the catalog has no {section}")
        if check_assets:
            for file, entry, raw in entries:
                asset = raw.get("asset")
                if isinstance(asset, str) and is_file_asset(asset) and not Path(asset).exists():
                    yield Problem(file, entry, "asset", f"asset file not found: {asset}")

    def skeleton(raw: dict[str, Any], default: str = "mannequin") -> str | None:
        sk = raw.get("skeleton", default)
        return sk if isinstance(sk, str) else None

    char_skeletons = {s for _, _, r in raws["characters"] if (s := skeleton(r))}
    anim_skeletons = {s for _, _, r in raws["animations"] if (s := skeleton(r))}
    for file, entry, raw in raws["animations"]:
        sk = skeleton(raw)
        if sk is not None and sk not in char_skeletons:
            have = ", ".join(sorted(char_skeletons)) or "none"
            yield Problem(
                file, entry, "skeleton", f"no character has skeleton {sk!r} (characters have: {have})"
            )
    if raws["animations"]:
        for file, entry, raw in raws["characters"]:
            sk = skeleton(raw)
            if sk is not None and sk not in anim_skeletons:
                have = ", ".join(sorted(anim_skeletons))
                yield Problem(
                    file, entry, "skeleton", f"no animation uses skeleton {sk!r} (animations use: {have})"
                )
