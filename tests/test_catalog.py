"""Scene catalog: loading, validation messages, balanced composition at the paper's scale."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from multicam_app import app
from scene_catalog.compose import animation_start_range, compose_scenes, usage_spread
from scene_catalog.loader import CatalogError, load_catalog
from scene_catalog.models import Catalog

BASE: dict[str, Any] = {
    "environments": [
        {"id": "plaza", "asset": "builtin:plaza", "size": "huge", "tags": ["outdoor"],
         "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 10},
                     {"id": "corner", "location_cm": [500, 200, 10], "free_radius_m": 5}]},
        {"id": "room", "asset": "builtin:room", "size": "small", "tags": ["indoor"],
         "anchors": [{"location_cm": [0, 0, 0], "free_radius_m": 4}]},
    ],
    "characters": [
        {"id": "ada", "asset": "builtin:mannequin", "height_m": 1.7},
        {"id": "bob", "asset": "builtin:mannequin", "height_m": 1.9},
    ],
    "animations": [
        {"id": "walk", "asset": "builtin:walk", "length_frames": 120, "fps": 30, "loopable": True},
        {"id": "wave", "asset": "builtin:wave", "length_frames": 200, "fps": 30},
    ],
}


def write(tmp_path: Path, data: Any, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data))
    elif isinstance(data, str):
        path.write_text(data)
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def problems_of(*paths: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(*paths)
    return [str(p) for p in info.value.problems]


def test_valid_catalog_loads_from_yaml_toml_json(tmp_path: Path) -> None:
    y = load_catalog(write(tmp_path, BASE))
    j = load_catalog(write(tmp_path, BASE, "c.json"))
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[[environments]]\nid = "plaza"\nasset = "builtin:plaza"\n'
        '[[environments.anchors]]\nlocation_cm = [0, 0, 0]\n'
        '[[characters]]\nid = "ada"\nasset = "builtin:m"\n'
        '[[animations]]\nid = "walk"\nasset = "builtin:walk"\nlength_frames = 30\n')
    t = load_catalog(toml)
    assert y.content_key() == j.content_key()
    assert [e.id for e in y.environments] == ["plaza", "room"]
    assert y.environment("room").allowed_radii_m == (3.0,)
    assert y.environment("plaza").anchor_radii_m(1) == (3.0, 5.0)  # free radius 5 m
    assert t.environments[0].allowed_radii_m == (3.0, 5.0, 7.0, 10.0)


def test_relative_assets_resolve_against_catalog_folder_and_builtin_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "sub" / "envs").mkdir(parents=True)
    (tmp_path / "sub" / "envs" / "plaza.blend").write_bytes(b"x")
    data = copy.deepcopy(BASE)
    data["environments"][0]["asset"] = "envs/plaza.blend"
    cat = load_catalog(write(tmp_path / "sub", data))
    assert cat.environments[0].asset == str((tmp_path / "sub" / "envs" / "plaza.blend").resolve())
    assert cat.environments[1].asset == "builtin:room"
    # An engine object path is not a file and is not checked.
    data["environments"][1]["asset"] = "/Game/Maps/Room.Room"
    assert load_catalog(write(tmp_path / "sub", data)).environments[1].asset == "/Game/Maps/Room.Room"


def test_missing_asset_file_check_can_be_disabled(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["characters"][0]["asset"] = "chars/ada.glb"
    path = write(tmp_path, data)
    assert any("asset file not found" in p for p in problems_of(path))
    assert load_catalog(path, check_assets=False).characters[0].asset.endswith("chars/ada.glb")


def _mutate(path: str, value: Any) -> Any:
    """Return BASE with the dotted ``path`` set to ``value`` (``None`` value with '-' deletes)."""
    data = copy.deepcopy(BASE)
    parts = path.split(".")
    node: Any = data
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if value == "<delete>":
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


MALFORMED: list[tuple[str, str, Any, str]] = [
    # (case id, dotted path, new value, expected message fragment)
    ("unknown-top-level-key", "props", [], "field 'props' unknown top-level key; allowed: environments"),
    ("unknown-entry-key", "characters.0.colour", "red", "characters[0] 'ada': field 'colour' unknown key"),
    ("unknown-anchor-key", "environments.0.anchors.0.height", 1, "field 'anchors[0].height' unknown key"),
    ("wrong-type", "characters.0.height_m", "tall", "field 'height_m' Input should be a valid number"),
    ("radius-outside-set", "environments.0.radii_m", [3, 4], "radii 4 not in the allowed set {3, 5, 7, 10} m"),
    ("unknown-size-class", "environments.0.size", "gigantic", "size 'gigantic' is not one of small, medium"),
    ("missing-required", "animations.1.asset", "<delete>", "animations[1] 'wave': field 'asset' required field"),
    ("missing-length", "animations.0.length_frames", "<delete>", "field 'length_frames' required field is missing"),
    ("no-anchors", "environments.1.anchors", [], "environments[1] 'room': field 'anchors' needs at least one anchor"),
    ("anchor-too-small", "environments.1.anchors.0.free_radius_m", 2,
     "free_radius_m 2 < the smallest allowed radius 3 m"),
    ("anchor-location-shape", "environments.0.anchors.0.location_cm", [1, 2],
     "field 'anchors[0].location_cm' must be [x, y, z] in UE cm (z = ground height), got [1, 2]"),
    ("height-too-small", "characters.1.height_m", 0, "field 'height_m' Input should be greater than 0.2"),
    ("length-zero", "animations.0.length_frames", 0, "field 'length_frames' Input should be greater than or equal"),
    ("fps-negative", "animations.0.fps", -30, "field 'fps' Input should be greater than 0"),
    ("bad-id", "characters.0.id", "ada smith", "field 'id' String should match pattern"),
    ("indoor-and-outdoor", "environments.0.tags", ["indoor", "outdoor"], "cannot be tagged both indoor and outdoor"),
    ("duplicate-id", "characters.1.id", "ada", "duplicate character id 'ada' (first defined in"),
    ("duplicate-anchor-id", "environments.0.anchors.1.id", "", "duplicate anchor ids"),  # replaced below
    ("anim-skeleton-unknown", "animations.1.skeleton", "quadruped",
     "animations[1] 'wave': field 'skeleton' no character has skeleton 'quadruped'"),
    ("char-skeleton-unused", "characters.1.skeleton", "bird", "characters[1] 'bob': field 'skeleton' no animation "
     "uses skeleton 'bird'"),
    ("missing-asset-file", "environments.0.asset", "maps/plaza.blend", "field 'asset' asset file not found: "),
    ("section-not-a-list", "animations", {"id": "walk"}, "animations: must be a list, got dict"),
    ("entry-not-a-mapping", "characters.1", "bob", "characters[1]: must be a mapping, got str"),
    ("empty-section", "characters", [], "the catalog has no characters"),
]


@pytest.mark.parametrize("case,path,value,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_catalog_gives_its_specific_message(tmp_path: Path, case: str, path: str, value: Any,
                                                      message: str) -> None:
    data = _mutate(path, value)
    if case == "duplicate-anchor-id":
        data["environments"][0]["anchors"][0]["id"] = "spot"
        data["environments"][0]["anchors"][1]["id"] = "spot"
    file = write(tmp_path, data)
    probs = problems_of(file)
    hits = [p for p in probs if message in p]
    assert hits, f"{case}: no problem contains {message!r}; got {probs}"
    assert all(p.startswith(str(file)) or p.startswith(("characters:", "animations:", "environments:"))
               for p in hits)
    # Every other case yields exactly the problems it caused: the valid base has none.
    if case not in ("empty-section", "char-skeleton-unused", "anim-skeleton-unknown", "duplicate-id",
                    "section-not-a-list"):
        assert len(probs) == 1, probs


@pytest.mark.parametrize("content,name,message", [
    ("environments: [unclosed", "bad.yaml", "cannot parse file"),
    ("[environments\n", "bad.toml", "cannot parse file"),
    ("{\"environments\": ", "bad.json", "cannot parse file"),
    ("- just\n- a list\n", "list.yaml", "top level must be a mapping"),
    ("environments = []", "cat.txt", "unsupported catalog format '.txt'"),
])
def test_unreadable_files_are_reported(tmp_path: Path, content: str, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    probs = problems_of(path, write(tmp_path, BASE))
    assert any(message in p and p.startswith(str(path)) for p in probs), probs


def test_missing_file_is_reported(tmp_path: Path) -> None:
    probs = problems_of(tmp_path / "nope.yaml")
    assert any("nope.yaml: file not found" in p for p in probs)


def test_all_problems_reported_at_once_across_files(tmp_path: Path) -> None:
    a = copy.deepcopy(BASE)
    a["environments"][0]["radii_m"] = [11]
    a["characters"][0]["height_m"] = "tall"
    a["animations"][0]["fps"] = 0
    b = {"characters": [{"id": "bob", "asset": "builtin:x"}], "extra": 1}
    fa, fb = write(tmp_path, a, "a.yaml"), write(tmp_path, b, "b.yaml")
    probs = problems_of(fa, fb)
    assert len(probs) == 5, probs
    assert any("b.yaml: characters[0] 'bob': field 'id' duplicate character id 'bob'" in p and "a.yaml" in p
               for p in probs)
    assert any(p.startswith(str(fb)) and "extra" in p for p in probs)


def test_cli_validate_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = write(tmp_path, BASE)
    res = runner.invoke(app, ["catalog", "validate", str(good)])
    assert res.exit_code == 0, res.output
    assert "2 environments (3 anchors), 2 characters, 2 animations" in res.output
    bad = write(tmp_path, _mutate("environments.0.radii_m", [4]), "bad.yaml")
    res = runner.invoke(app, ["catalog", "validate", str(bad)])
    assert res.exit_code == 2
    assert "radii 4 not in the allowed set" in res.output
    res = runner.invoke(app, ["catalog", "stats", str(good), "--scenes", "12", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "environments: 2 used 6..6 times each (spread 0)" in res.output


def test_plan_with_bad_catalog_writes_nothing(tmp_path: Path) -> None:
    bad = write(tmp_path, _mutate("characters.0.height_m", -1))
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["plan", "--catalog", str(bad), "--scenes", "3", "--seed", "1", "--out", str(out)])
    assert res.exit_code == 2
    assert "height_m" in res.output
    assert not out.exists()


# -- composition ------------------------------------------------------------------------------------------


def paper_catalog(n_env: int = 37, n_char: int = 66, n_anim: int = 93) -> Catalog:
    """Synthetic ids at the paper's scale: two skeletons, 1-3 anchors per environment."""
    sizes = ["small", "medium", "large", "huge"]
    skel = ["mannequin", "quadruped"]
    data = {
        "environments": [{"id": f"env{i:02d}", "asset": f"/Game/Maps/E{i}.E{i}", "size": sizes[i % 4],
                          "anchors": [{"location_cm": [300.0 * j, 100.0 * i, 5.0 * j], "free_radius_m": 3 + 3 * j}
                                      for j in range(1 + i % 3)]} for i in range(n_env)],
        "characters": [{"id": f"char{i:02d}", "asset": f"/Game/C/C{i}", "height_m": 1.5 + i / 100,
                        "skeleton": skel[i % 2]} for i in range(n_char)],
        "animations": [{"id": f"anim{i:02d}", "asset": f"/Game/A/A{i}", "skeleton": skel[i % 2],
                        "length_frames": 40 + 3 * i, "fps": 30, "loopable": i % 3 == 0} for i in range(n_anim)],
    }
    return Catalog.model_validate(data)


def test_paper_scale_composition_is_balanced_and_compatible() -> None:
    cat = paper_catalog()
    draws = compose_scenes(cat, 13_600, seed=2025)
    assert [d.scene_index for d in draws] == list(range(1, 13_601))
    env_counts = Counter(d.environment for d in draws)
    char_counts = Counter(d.character for d in draws)
    assert len(env_counts) == 37 and max(env_counts.values()) - min(env_counts.values()) <= 1
    assert len(char_counts) == 66 and max(char_counts.values()) - min(char_counts.values()) <= 1
    spread = {s.kind: s for s in usage_spread(cat, draws)}
    assert spread["animations"].unused == 0
    # Per skeleton the animations are within +-1 of that skeleton's share.
    skel = {a.id: a.skeleton for a in cat.animations}
    for sk in ("mannequin", "quadruped"):
        counts = [n for a, n in Counter(d.animation for d in draws).items() if skel[a] == sk]
        assert max(counts) - min(counts) <= 1
    chars = {c.id: c for c in cat.characters}
    anims = {a.id: a for a in cat.animations}
    assert all(chars[d.character].skeleton == anims[d.animation].skeleton for d in draws)
    tuples = [(d.environment, d.character, d.animation, d.anchor) for d in draws]
    assert len(set(tuples)) == len(tuples)
    for d in draws[:500]:
        assert 0 <= d.start_frame < animation_start_range(anims[d.animation], 81, 15.0)
        assert 0 <= d.anchor < len(cat.environment(d.environment).anchors)


def test_composition_is_prefix_stable_and_seeded() -> None:
    cat = paper_catalog(7, 9, 11)
    full = compose_scenes(cat, 300, seed=5)
    assert compose_scenes(cat, 120, seed=5) == full[:120]
    assert compose_scenes(cat, 30, seed=5, start=91) == full[90:120]
    assert compose_scenes(cat, 120, seed=6) != full[:120]


def _assert_repeats_only_when_exhausted(cat: Catalog, draws: list[Any]) -> None:
    """A tuple repeats in an environment only after every (animation, anchor) of its character was drawn
    there."""
    skel = {a.id: a.skeleton for a in cat.animations}
    seen: set[tuple[str, str, str, int]] = set()
    for d in draws:
        t = (d.environment, d.character, d.animation, d.anchor)
        if t in seen:
            sk = cat.character(d.character).skeleton
            env = cat.environment(d.environment)
            every = {(d.environment, d.character, a, x) for a in skel if skel[a] == sk for x in range(len(env.anchors))}
            assert every <= seen, f"scene {d.scene_index} repeats {t} before using {sorted(every - seen)}"
        seen.add(t)


def test_no_tuple_repeats_until_its_combinations_are_used() -> None:
    cat = load_catalog_dict(BASE)  # plaza: 2 anchors x 2 characters x 2 animations = 8 tuples; room: 4
    draws = compose_scenes(cat, 48, seed=1)
    assert Counter(d.environment for d in draws) == {"plaza": 24, "room": 24}
    assert Counter(d.character for d in draws) == {"ada": 24, "bob": 24}
    _assert_repeats_only_when_exhausted(cat, draws)
    assert len({(d.environment, d.character, d.animation, d.anchor) for d in draws}) == 12  # all used


def test_asymmetric_skeletons_stay_balanced() -> None:
    """Characters of a skeleton with few animations are not starved or favoured."""
    data = copy.deepcopy(BASE)
    data["characters"][1]["skeleton"] = "quadruped"
    data["animations"].append({"id": "trot", "asset": "builtin:trot", "skeleton": "quadruped", "length_frames": 40})
    cat = load_catalog_dict(data)
    draws = compose_scenes(cat, 97, seed=4)
    counts = Counter(d.character for d in draws)
    assert sorted(counts.values()) == [48, 49]
    _assert_repeats_only_when_exhausted(cat, draws)


def test_one_shot_animation_start_keeps_render_inside_clip() -> None:
    cat = load_catalog_dict(BASE)
    wave = cat.animation("wave")  # 200 frames at 30 fps, one-shot; 81 frames at 15 fps need 161 of them
    assert animation_start_range(wave, 81, 15.0) == 200 - 161 + 1
    for d in compose_scenes(cat, 60, seed=9):
        if d.animation == "wave":
            assert d.start_frame + 161 <= 200


def load_catalog_dict(data: dict[str, Any]) -> Catalog:
    return Catalog.model_validate(data)


@settings(max_examples=40, deadline=None)
@given(n_env=st.integers(1, 5), n_char=st.integers(1, 4), n_anim=st.integers(1, 5), n_skel=st.integers(1, 2),
       anchors=st.lists(st.integers(1, 3), min_size=5, max_size=5), n=st.integers(1, 80), seed=st.integers(0, 99))
def test_composition_invariants_on_random_catalogs(n_env: int, n_char: int, n_anim: int, n_skel: int,
                                                   anchors: list[int], n: int, seed: int) -> None:
    n_skel = min(n_skel, n_char, n_anim)
    data = {
        "environments": [{"id": f"e{i}", "asset": "builtin:e",
                          "anchors": [{"location_cm": [j, 0, 0]} for j in range(anchors[i])]} for i in range(n_env)],
        "characters": [{"id": f"c{i}", "asset": "builtin:c", "skeleton": f"s{i % n_skel}"} for i in range(n_char)],
        "animations": [{"id": f"a{i}", "asset": "builtin:a", "skeleton": f"s{i % n_skel}", "length_frames": 30}
                       for i in range(n_anim)],
    }
    cat = Catalog.model_validate(data)
    draws = compose_scenes(cat, n, seed)
    env_counts = Counter(d.environment for d in draws)
    assert max(env_counts.values()) - min(env_counts.get(e.id, 0) for e in cat.environments) <= 1
    skel_c = {c.id: c.skeleton for c in cat.characters}
    skel_a = {a.id: a.skeleton for a in cat.animations}
    assert all(skel_c[d.character] == skel_a[d.animation] for d in draws)
    char_counts = Counter(d.character for d in draws)
    assert max(char_counts.values()) - min(char_counts.get(c.id, 0) for c in cat.characters) <= 1
    _assert_repeats_only_when_exhausted(cat, draws)
    assert compose_scenes(cat, max(1, n // 2), seed) == draws[:max(1, n // 2)]
