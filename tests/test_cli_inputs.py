"""Bad numbers are rejected at the first command, with a one-line error naming the option and the allowed range,
exit code 2, and nothing planned."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import SYNTHETIC, generate_synthetic
from typer.testing import CliRunner

from multicam_app import app
from render_jobs.cli_generate import DEMO_CATALOG

runner = CliRunner()


@pytest.mark.parametrize(("args", "words"), [
    (["--fps", "inf"], ["--fps", "finite"]),
    (["--fps", "nan"], ["--fps"]),
    (["--fps", "1e308"], ["--fps", "240"]),
    (["--width", "33"], ["--width", "even"]),
    (["--height", "31"], ["--height", "even"]),
    (["--resolution", "33"], ["--resolution", "even"]),
    (["--resolution", "64", "--width", "64"], ["--resolution", "--width", "not both"]),
    (["--height", "64", "--resolution", "64"], ["--resolution", "--height", "not both"]),
])
def test_plan_rejects_bad_settings(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0",
                              "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for w in words:
        assert w in lines[0], res.output
    assert not (out / "plan").exists()


def test_plan_resolution_is_the_square_size(tmp_path: Path) -> None:
    from render_jobs.planner import load_settings

    base = ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0", "--no-progress"]
    for name, args, size in (("sq", ["--resolution", "48"], (48, 48)), ("wh", ["--width", "64"], (64, 1280))):
        res = runner.invoke(app, [*base, "--out", str(tmp_path / name), *args])
        assert res.exit_code == 0, res.output
        st, _ = load_settings(tmp_path / name)
        assert (st.width, st.height) == size


def _planned(tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0",
                              "--out", str(out), "--width", "32", "--height", "32", "--frames", "4"])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize(("args", "word"), [
    (["--backoff", "-1"], "--backoff"),
    (["--backoff", "inf"], "--backoff"),
    (["--timeout", "inf"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
])
def test_render_rejects_bad_numbers(tmp_path: Path, args: list[str], word: str) -> None:
    ds = _planned(tmp_path)
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC, *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {word}: must be a finite number"), res.output


@pytest.mark.parametrize(("value", "executor", "says"), [
    ("{render: 1}", "ray", "not JSON"),
    ("[1]", "ray", "expected a JSON object"),
    ('{"CPU": 2}', "ray", "'CPU' is not a custom resource"),
    ('{"render": 0}', "ray", "'render' must be a finite number > 0, got 0"),
    ('{"render": true}', "ray", "'render' must be a finite number > 0, got True"),
    ('{"render": 1}', "local", "applies to --executor ray only"),
])
def test_render_rejects_bad_ray_resources(tmp_path: Path, value: str, executor: str, says: str) -> None:
    ds = _planned(tmp_path)
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC, "--executor", executor, "--ray-resources", value])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: --ray-resources: ") and says in res.output, res.output
    assert res.output.count("\n") == 1


def test_generate_no_progress_shows_no_bars(tmp_path: Path) -> None:
    res = generate_synthetic(tmp_path / "ds", scenes=1, size=32, frames=4, cameras=2)
    assert "it/s" not in res.output and "scene/s" not in res.output and "%|" not in res.output, res.output
    assert "ok: 1 scene(s)" in res.output


@pytest.mark.parametrize("seed", ["-1", str(2**64)])
@pytest.mark.parametrize("command", ["plan", "generate", "sample-cameras"])
def test_seeds_outside_64_bits_are_one_line_errors(tmp_path: Path, seed: str, command: str) -> None:
    args = {"plan": ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1"],
            "generate": ["generate", "--backend", "test-synthetic"],
            "sample-cameras": ["sample-cameras", "--scenes", "1"]}[command]
    res = runner.invoke(app, [*args, "--seed", seed, "--out", str(tmp_path / "ds")])
    assert res.exit_code == 2, res.output
    assert res.output == f"error: --seed: must be an integer in 0..2**64-1, got {seed}\n"
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["presets", "--distance-m", "inf"], "error: --distance-m: must be a finite number > 2 and <= 1000, got inf\n"),
    (["presets", "--distance-m", "nan"], "error: --distance-m: must be a finite number > 2 and <= 1000, got nan\n"),
    (["validate", "--size", "0"], "error: --resolution: must be an integer in 16..8192 pixels, got 0\n"),
    (["validate", "--resolution", "0"], "error: --resolution: must be an integer in 16..8192 pixels, got 0\n"),
    (["validate", "--frames", "0"], "error: --frames: must be >= 1, got 0\n"),
])
def test_camera_and_validate_numbers(tmp_path: Path, args: list[str], expected: str) -> None:
    cmd = [*args, "--out", str(tmp_path / "p")] if args[0] == "presets" else [args[0], str(tmp_path), *args[1:]]
    res = runner.invoke(app, cmd)
    assert res.exit_code == 2, res.output
    assert res.output == expected


def test_out_below_a_regular_file_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for args in (["sample-cameras", "--scenes", "1", "--seed", "0"], ["presets"],
                 ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0"],
                 ["generate", "--backend", "test-synthetic"]):
        res = runner.invoke(app, [*args, "--out", str(tmp_path / "afile" / "sub")])
        assert res.exit_code == 2, res.output
        assert res.output == (f"error: --out {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, "
                              "so no folder can be made below it\n"), res.output


def test_a_folder_or_unparsable_file_as_catalog_is_one_problem(tmp_path: Path) -> None:
    res = runner.invoke(app, ["catalog", "validate", str(tmp_path)])
    assert res.exit_code == 2
    assert "is a folder, expected a catalog file" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(": [\n")
    res = runner.invoke(app, ["plan", "--catalog", str(bad), "--scenes", "1", "--seed", "0",
                              "--out", str(tmp_path / "ds")])
    assert res.exit_code == 2
    assert "cannot parse file" in res.output and "the catalog has no" not in res.output, res.output
    assert "1 problem(s) found" in res.output


def test_missing_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    ds = _planned(tmp_path)
    res = runner.invoke(app, ["render", str(ds), "--backend", "test-synthetic", "--executor", "ray"])
    assert res.exit_code == 2 and "Ray is not installed" in res.output and ".[cluster]" in res.output, res.output
    assert "Traceback" not in res.output


_CATALOG = """
environments:
  - {{id: e, asset: "builtin:plaza", anchors: [{{location_cm: {loc}, free_radius_m: {free}}}]}}
characters:
  - {{id: c, asset: "builtin:mannequin_slim"}}
animations:
  - {{id: a, asset: "builtin:walk", length_frames: {length}}}
"""


@pytest.mark.parametrize(("field", "values", "words"), [
    ("loc", "[.inf, 0, 0]", ["location_cm", "finite"]),
    ("loc", "[0, 1e308, 0]", ["location_cm", "1e+08 cm"]),
    ("loc", "[0, 0, .nan]", ["location_cm", "finite"]),
    ("free", ".inf", ["free_radius_m", "finite"]),
    ("free", "1e308", ["free_radius_m", "100000"]),
    ("length", "100000000000", ["length_frames", "10000000"]),
])
def test_catalog_numbers_out_of_range_are_refused_at_validate_and_plan(
        tmp_path: Path, field: str, values: str, words: list[str]) -> None:
    args = {"loc": "[0, 0, 0]", "free": "12", "length": "120", field: values}
    cat = tmp_path / "cat.yaml"
    cat.write_text(_CATALOG.format(**args))
    for cmd in (["catalog", "validate", str(cat)],
                ["plan", "--catalog", str(cat), "--scenes", "1", "--seed", "0", "--out", str(tmp_path / "ds")]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2, res.output
        first = res.output.splitlines()[0]
        assert first.startswith(f"error: {cat}: environments[0] 'e'" if field != "length"
                                else f"error: {cat}: animations[0] 'a'"), res.output
        for w in words:
            assert w in first, res.output
        assert "1 problem(s) found" in res.output
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "home", "symlink"])
def test_catalog_assets_outside_the_catalog_folder_need_an_asset_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    cat_dir, elsewhere = tmp_path / "catalog", tmp_path / "elsewhere"
    cat_dir.mkdir()
    elsewhere.mkdir()
    (elsewhere / "env.blend").write_bytes(b"BLENDER")
    monkeypatch.setenv("HOME", str(tmp_path))
    if how == "symlink":
        (cat_dir / "env.blend").symlink_to(elsewhere / "env.blend")
    asset = {"dotdot": "../elsewhere/env.blend", "absolute": str(elsewhere / "env.blend"),
             "home": "~/elsewhere/env.blend", "symlink": "env.blend"}[how]
    cat = cat_dir / "cat.yaml"
    cat.write_text(_CATALOG.format(loc="[0, 0, 0]", free="12", length="120").replace('"builtin:plaza"', f'"{asset}"'))
    plan = ["plan", "--catalog", str(cat), "--scenes", "1", "--seed", "0", "--out", str(tmp_path / "ds")]
    for cmd in (["catalog", "validate", str(cat)], ["catalog", "stats", str(cat)], plan,
                ["generate", "--catalog", str(cat), "--backend", "test-synthetic", "--out", str(tmp_path / "ds")]):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 2, res.output
        assert res.output.splitlines()[0] == (
            f"error: {cat}: environments[0] 'e': field 'asset' {asset} resolves to {elsewhere / 'env.blend'}, "
            f"outside the catalog's folder {cat_dir}; allow it with --asset-root DIR (a folder that holds it)"
        ), res.output
    assert not (tmp_path / "ds").exists()
    res = runner.invoke(app, ["catalog", "validate", str(cat), "--asset-root", str(elsewhere)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*plan, "--asset-root", str(elsewhere), "--width", "32", "--height", "32"])
    assert res.exit_code == 0, res.output


def test_errors_name_the_real_option(tmp_path: Path) -> None:
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0",
                              "--out", str(tmp_path / "ds"), "--pass", "bogus"])
    assert res.exit_code == 2 and res.output == "error: --pass: Input should be 'depth' or 'mask' (got 'bogus')\n"
    res = runner.invoke(app, ["generate", "--out", str(tmp_path / "ds"), "--backend", "test-synthetic",
                              "--resolution", "16384"])
    assert res.exit_code == 2 and res.output.startswith("error: --resolution: "), res.output


@pytest.mark.parametrize(("command", "option", "value", "allowed"), [
    ("plan", "--scenes", "99999999999", "1..1000000"),
    ("plan", "--cameras", "1000000000", "1..1000"),
    ("plan", "--frames", "1000000000", "2..100000"),
    ("generate", "--scenes", "0", "1..1000000"),
    ("generate", "--frames", "1000000000", "2..100000"),
    ("sample-cameras", "--cameras", "0", "1..1000"),
    ("presets", "--frames", "1000000000", "2..100000"),
    ("catalog-stats", "--scenes", "99999999999", "0..1000000"),
])
def test_counts_have_an_upper_bound(tmp_path: Path, command: str, option: str, value: str, allowed: str) -> None:
    """A typo'd count fails at once (instead of planning for hours or exhausting memory)."""
    base = {"plan": ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "1", "--seed", "0"],
            "generate": ["generate", "--backend", "test-synthetic"],
            "sample-cameras": ["sample-cameras", "--scenes", "1", "--seed", "0"], "presets": ["presets"],
            "catalog-stats": ["catalog", "stats", str(DEMO_CATALOG)]}[command]
    out = [] if command == "catalog-stats" else ["--out", str(tmp_path / "ds")]
    res = runner.invoke(app, [*base, *out, option, value])
    assert res.exit_code == 2, res.output
    assert res.output == f"error: {option}: must be an integer in {allowed}, got {value}\n"
    assert not (tmp_path / "ds").exists()


def test_catalog_stats_seed_is_checked() -> None:
    res = runner.invoke(app, ["catalog", "stats", str(DEMO_CATALOG), "--scenes", "3", "--seed", "-1"])
    assert res.exit_code == 2 and res.output == "error: --seed: must be an integer in 0..2**64-1, got -1\n"
