"""``multicam catalog validate FILE...`` and ``multicam catalog stats FILE...``."""

from __future__ import annotations

from pathlib import Path

import typer

from multicam.errors import MAX_SCENES, check_count, check_seed, fail
from scene_catalog.models import Catalog

catalog_app = typer.Typer(help="Check and summarise scene catalogs (environments, characters, animations).",
                          no_args_is_help=True)


def asset_root_option() -> list[Path]:
    return typer.Option([], "--asset-root", help="Also allow catalog asset files below this folder (repeatable; by "
                        "default they must lie below the catalog file's folder).")


def load_or_exit(files: list[Path], check_assets: bool = True, asset_roots: list[Path] | None = None) -> Catalog:
    """Load catalog files for a command: on problems print each one and exit with code 2."""
    from scene_catalog.loader import CatalogError, load_catalog

    for root in asset_roots or []:
        if not root.expanduser().is_dir():
            fail(f"--asset-root {root}: not a folder")
    try:
        return load_catalog(*files, check_assets=check_assets, asset_roots=asset_roots or [])
    except CatalogError as exc:
        for p in exc.problems:
            typer.echo(f"error: {p}", err=True)
        typer.echo(f"{len(exc.problems)} problem(s) found; nothing was written", err=True)
        raise typer.Exit(2) from None


@catalog_app.command("validate", epilog="Example: multicam catalog validate my_catalog.yaml --no-check-assets")
def validate(
    files: list[Path] = typer.Argument(..., help="Catalog files (.yaml, .yml, .toml, .json); merged in order."),
    check_assets: bool = typer.Option(True, "--check-assets/--no-check-assets",
                                      help="Check that local asset files (.blend, .glb, ...) exist."),
    asset_roots: list[Path] = asset_root_option(),
) -> None:
    """Validate catalog files; print every problem (file, entry, field) and exit 2 if there is any.

    Example: multicam catalog validate my_catalog.yaml --asset-root ~/assets
    """
    cat = load_or_exit(files, check_assets, asset_roots)
    anchors = sum(len(e.anchors) for e in cat.environments)
    typer.echo(f"ok: {len(cat.environments)} environments ({anchors} anchors), {len(cat.characters)} characters, "
               f"{len(cat.animations)} animations")


@catalog_app.command("stats", epilog="Example: multicam catalog stats scene_catalog/demo_catalog.yaml --scenes 1000")
def stats(
    files: list[Path] = typer.Argument(..., help="Catalog files; merged in order."),
    scenes: int = typer.Option(0, "--scenes", help="Also draw N scenes and report how evenly items are used."),
    seed: int = typer.Option(0, "--seed", help="Seed for --scenes."),
    check_assets: bool = typer.Option(True, "--check-assets/--no-check-assets"),
    asset_roots: list[Path] = asset_root_option(),
) -> None:
    """Summarise a catalog: counts, skeletons, radii, tags, and (with --scenes) the usage spread."""
    from collections import Counter

    from scene_catalog.compose import compose_scenes, usage_spread

    check_count(scenes, "--scenes", 0, MAX_SCENES)
    check_seed(seed)
    cat = load_or_exit(files, check_assets, asset_roots)
    typer.echo(f"environments: {len(cat.environments)}  characters: {len(cat.characters)}  "
               f"animations: {len(cat.animations)}")
    sizes = Counter(e.size if e.radii_m is None else "custom" for e in cat.environments)
    typer.echo("environment sizes: " + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items())))
    radii = Counter(r for e in cat.environments for r in e.allowed_radii_m)
    typer.echo("environments allowing radius: " + ", ".join(f"{r:g} m: {n}" for r, n in sorted(radii.items())))
    tags = Counter(t for e in cat.environments for t in e.tags)
    if tags:
        typer.echo("tags: " + ", ".join(f"{k} {v}" for k, v in sorted(tags.items())))
    typer.echo(f"anchors: {sum(len(e.anchors) for e in cat.environments)}")
    for sk in sorted({c.skeleton for c in cat.characters}):
        nc = sum(c.skeleton == sk for c in cat.characters)
        na = sum(a.skeleton == sk for a in cat.animations)
        typer.echo(f"skeleton {sk}: {nc} characters, {na} animations")
    combos = sum(len(e.anchors) for e in cat.environments) * sum(
        sum(a.skeleton == c.skeleton for a in cat.animations) for c in cat.characters)
    typer.echo(f"distinct (environment, character, animation, anchor) tuples: {combos}")
    if scenes:
        draws = compose_scenes(cat, scenes, seed)
        typer.echo(f"{scenes} scenes, seed {seed}:")
        for s in usage_spread(cat, draws):
            typer.echo(f"  {s}")


_load = load_or_exit  # the name other commands imported first


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
