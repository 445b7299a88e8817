"""``metadata.csv``: datasets that ReCamMaster's own trainer reads as they are (issue 14).

Datasets are made by ``multicam generate`` / ``plan`` + ``render`` with the ``test-synthetic`` backend (real
H.264 mp4s, 81 frames, tiny frames) and read back by a transcription of the official loaders
(``tests/recammaster_official.py``, which imports nothing of ours).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import recammaster_official as official
from cli_support import SYNTHETIC, generate_synthetic
from typer.testing import CliRunner

from exporters.metadata import (
    COLUMNS,
    MetadataSync,
    cam_in_path_warning,
    camera_motion_label,
    scene_caption,
)
from multicam_app import app
from trajectory.sampler import TRAJECTORY_TYPES, sample_scene
from trajectory.speed import progress

runner = CliRunner()


def _rows(ds: Path) -> list[dict[str, str]]:
    with (ds / "metadata.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _scenes(ds: Path) -> list[Path]:
    return sorted(p for p in (ds / "train").glob("f*_aperture*/scene*") if p.is_dir())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two complete scenes x 10 cameras x 81 frames, made by ``multicam generate``."""
    ds = tmp_path_factory.mktemp("gen") / "ds"
    res = generate_synthetic(ds, scenes=2, size=16, frames=81, extra_args=("--seed", "5"))
    assert "warning" not in res.output
    return ds


def test_generate_writes_metadata_the_official_loaders_read(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    base_path = str(ds)  # --dataset_path
    paths, texts = official.read_metadata(base_path)
    assert len(paths) == 20 and len(set(paths)) == 20
    with (ds / "metadata.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == list(COLUMNS)  # file_name,text first: what upstream reads
    for path, text in zip(paths, texts, strict=True):
        assert Path(path).is_file(), path  # train/<file_name>
        assert official.video_is_used(path), path  # >= 81 frames: not skipped
        assert isinstance(text, str) and text.strip()
    # same caption for every camera of a scene
    by_scene: dict[str, set[str]] = {}
    for path, text in zip(paths, texts, strict=True):
        by_scene.setdefault(path.rsplit("/", 2)[0], set()).add(text)
    assert len(by_scene) == 2 and all(len(t) == 1 for t in by_scene.values())

    # data_process writes path + ".tensors.pth" next to each video (line 145); TensorDataset then finds them
    for path in paths:
        Path(path + ".tensors.pth").write_bytes(b"")
    tensors = official.tensor_paths(paths)
    assert len(tensors) == 20
    for path_tgt in tensors:
        cam = Path(path_tgt).name.split(".")[0]
        for cond_idx in range(1, 11):  # every camera upstream may draw as the condition
            if cond_idx == int(cam[3:]):
                continue
            item = official.get_item(path_tgt, cond_idx)
            assert item["tgt_idx"] == int(cam[3:])
            assert Path(item["path_cond"]).is_file()  # the condition camera's latents (and its video)
            assert item["camera_path"] == str(Path(path_tgt).parent.parent / "cameras" / "camera_extrinsics.json")
            assert item["c2ws"].shape == (2, 21, 4, 4) and np.all(np.isfinite(item["c2ws"]))


def test_metadata_missing_is_what_upstream_trips_on(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    (ds / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError):
        official.read_metadata(str(ds))
    res = runner.invoke(app, ["captions", str(ds)])
    assert res.exit_code == 0, res.output
    assert "20 videos of 2 scene(s)" in res.output
    assert (ds / "metadata.csv").read_bytes() == (dataset / "metadata.csv").read_bytes()  # what generate wrote
    assert len(official.read_metadata(str(ds))[0]) == 20


def test_rows_match_scene_json_caption_and_motion(dataset: Path) -> None:
    rows = _rows(dataset)
    assert [r["file_name"] for r in rows] == [
        f"{s.relative_to(dataset / 'train').as_posix()}/videos/cam{i:02d}.mp4" for s in _scenes(dataset)
        for i in range(1, 11)]
    for scene in _scenes(dataset):
        rec = json.loads((scene / "scene.json").read_text())
        rel = scene.relative_to(dataset / "train").as_posix()
        assert rec["caption"] == scene_caption(rec)
        assert rec["environment"]["description"] and rec["character"]["description"]
        assert rec["animation"]["description"] in rec["caption"]
        mine = [r for r in rows if r["file_name"].startswith(rel + "/")]
        assert {r["text"] for r in mine} == {rec["caption"]}
        for r in mine:
            cam = Path(r["file_name"]).stem
            assert r["camera_motion"] == rec["camera_motion"][cam] == camera_motion_label(rec["cameras"][cam])


def test_recam_reads_the_same_captions(dataset: Path) -> None:
    from recam.data import discover_scenes

    texts = {r["file_name"]: r["text"] for r in _rows(dataset)}
    for scene in discover_scenes(dataset):
        for cam in scene.cameras:
            assert scene.captions[cam] == texts[f"{scene.rel.removeprefix('train/')}/videos/{cam}.mp4"]


def test_render_lists_only_complete_scenes_and_catches_up(tmp_path: Path) -> None:
    from render_jobs.cli_generate import DEMO_CATALOG

    ds = tmp_path / "ds"
    res = runner.invoke(app, ["plan", "--catalog", str(DEMO_CATALOG), "--scenes", "3", "--seed", "1", "--out", str(ds),
                              "--width", "16", "--height", "16", "--frames", "4", "--cameras", "3"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC, "--max-attempts", "1", "-o", "fail_always=s000002"])
    assert res.exit_code == 1, res.output
    rows = _rows(ds)
    assert len(rows) == 6  # 2 complete scenes x 3 cameras; the failed job's scene is not listed
    scenes = {r["file_name"].rsplit("/", 2)[0] for r in rows}
    with (ds / "plan" / "manifest.jsonl").open() as fh:
        out = {json.loads(line)["job_id"]: json.loads(line)["output_dir"] for line in fh}
    assert scenes == {out["s000001"].removeprefix("train/"), out["s000003"].removeprefix("train/")}
    assert runner.invoke(app, ["retry", str(ds)]).exit_code == 0
    res = runner.invoke(app, ["render", str(ds), *SYNTHETIC])
    assert res.exit_code == 0, res.output
    assert len(_rows(ds)) == 9


def test_incomplete_and_hidden_folders_are_not_scenes(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    first = _scenes(ds)[0]
    broken = first.with_name("scene7")
    shutil.copytree(first, broken)
    (broken / "videos" / "cam04.mp4").unlink()  # a camera without its video
    shutil.copytree(first, first.with_name(".scene1.invalid-123"))  # moved aside by a run
    nojson = first.with_name("scene8")
    shutil.copytree(first, nojson)
    (nojson / "scene.json").write_text("{not json")
    res = runner.invoke(app, ["captions", str(ds)])
    assert res.exit_code == 0, res.output
    files = [r["file_name"] for r in _rows(ds)]
    assert len(files) == 20 and not any("scene7" in f or "scene8" in f or "invalid" in f for f in files)
    # a scene that finishes later (here: the broken one repaired) is picked up by the next write
    shutil.copy(first / "videos" / "cam04.mp4", broken / "videos" / "cam04.mp4")
    assert runner.invoke(app, ["captions", str(ds)]).exit_code == 0
    assert len(_rows(ds)) == 30


def test_sync_during_a_run_is_throttled_and_final_write_is_complete(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    (ds / "metadata.csv").unlink()
    sync = MetadataSync(ds, min_interval_s=3600)
    sync.scene_done()  # first completion: written
    assert len(_rows(ds)) == 20
    first = _scenes(ds)[0]
    shutil.copytree(first, first.with_name("scene5"))  # another scene renamed into place
    sync.scene_done()  # within the interval: not rewritten yet
    assert len(_rows(ds)) == 20
    sync.close()  # end of run: always
    assert len(_rows(ds)) == 30
    shutil.rmtree(first.with_name("scene5"))
    MetadataSync(ds, min_interval_s=0).scene_done()
    assert len(_rows(ds)) == 20


def test_captions_rejects_bad_input_with_exit_2(tmp_path: Path) -> None:
    for target, word in ((tmp_path / "missing", "no such folder"), (tmp_path, "no train/ folder")):
        res = runner.invoke(app, ["captions", str(target)])
        assert res.exit_code == 2 and word in res.output and len(res.output.strip().splitlines()) == 1, res.output
    (tmp_path / "train" / "f18_aperture10").mkdir(parents=True)
    res = runner.invoke(app, ["captions", str(tmp_path)])
    assert res.exit_code == 2 and "no complete scene" in res.output, res.output
    assert not (tmp_path / "metadata.csv").exists()


HOOKS = '''
def caption(record):
    return f"scene {record['scene_index']} with {len(record['cameras'])} cameras in {record['environment']['id']}"

def boom(record):
    raise RuntimeError("model not loaded\\nsecond line")

def empty(record):
    return None

not_callable = 3
'''


@pytest.fixture()
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"mycaptions_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(HOOKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_captioner_hook_is_called_with_the_scene_record(dataset: Path, tmp_path: Path, hooks: str) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    res = runner.invoke(app, ["captions", str(ds), "--captioner", f"{hooks}:caption"])
    assert res.exit_code == 0, res.output
    rows = _rows(ds)
    for scene in _scenes(ds):
        rec = json.loads((scene / "scene.json").read_text())
        rel = scene.relative_to(ds / "train").as_posix()
        want = f"scene {rec['scene_index']} with 10 cameras in {rec['environment']['id']}"
        assert {r["text"] for r in rows if r["file_name"].startswith(rel + "/")} == {want}
    assert official.read_metadata(str(ds))[1][0].startswith("scene ")


def test_bad_captioner_exits_2_naming_the_hook(dataset: Path, tmp_path: Path, hooks: str) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    before = (ds / "metadata.csv").read_bytes()
    for spec, word in (("nocolon", "expected module:function"), ("no_such_module_xyz:f", "cannot import"),
                       (f"{hooks}:missing", "no callable"), (f"{hooks}:not_callable", "no callable"),
                       (f"{hooks}:boom", "raised RuntimeError: model not loaded"),
                       (f"{hooks}:empty", "expected a non-empty str")):
        res = runner.invoke(app, ["captions", str(ds), "--captioner", spec])
        assert res.exit_code == 2, (spec, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --captioner") and word in lines[0], (spec, lines)
        assert spec in lines[0]
        assert (ds / "metadata.csv").read_bytes() == before  # nothing half-written


# -- camera motion labels -------------------------------------------------------------------------------


def _cameras_of_every_type() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {t: [] for t in TRAJECTORY_TYPES}
    for scene in range(1, 40):
        rec = sample_scene(11, scene, n_cameras=10, frames=81).record()
        for cam in rec["cameras"].values():
            found[cam["trajectory"]].append(cam)
        if all(len(v) >= 3 for v in found.values()):
            break
    assert all(found.values()), {k: len(v) for k, v in found.items()}
    return found


def test_camera_motion_label_for_each_trajectory_type() -> None:
    speed = r"(constant speed|speeding up|slowing down)"
    patterns = {
        "pan": rf"pan (left|right) (\d+) deg, {speed}",
        "tilt": rf"tilt (up|down) (\d+) deg, {speed}",
        "arc": rf"arc (left|right) (\d+) deg around the subject, {speed}",
        "translation": rf"move (forward|backward|left|right|up|down) (\d+\.\d) m, {speed}",
        "random": rf"free path (\d+\.\d) m through ([123]) points?, {speed}",
        "static": r"static",
    }
    for kind, cams in _cameras_of_every_type().items():
        for cam in cams:
            label = camera_motion_label(cam)
            m = re.fullmatch(patterns[kind], label)
            assert m, (kind, label)
            if kind in ("pan", "tilt", "arc"):
                assert m.group(1) == cam["direction"] and int(m.group(2)) == round(cam["angle_deg"])
            elif kind == "translation":
                assert m.group(1) == cam["direction"] and float(m.group(2)) == round(cam["distance_m"], 1)
            elif kind == "random":
                assert float(m.group(1)) == round(cam["length_m"], 1) and int(m.group(2)) == cam["n_points"]
            if kind != "static":
                assert (m.groups()[-1] == "constant speed") == (cam["speed"]["mode"] == "constant"), label


def test_speed_words_match_the_progress_curve() -> None:
    seen = set()
    for cams in _cameras_of_every_type().values():
        for cam in cams:
            if cam["trajectory"] == "static":
                continue
            label = camera_motion_label(cam)
            s = progress(81, cam["speed"]["a"])
            first, second = s[40] - s[0], s[80] - s[40]  # progress in each half of the clip
            if cam["speed"]["mode"] == "constant":
                assert label.endswith("constant speed") and first == pytest.approx(second)
            elif second > first:
                assert label.endswith("speeding up"), (cam["speed"], label)
            else:
                assert label.endswith("slowing down"), (cam["speed"], label)
            seen.add(label.rsplit(", ", 1)[1])
    assert seen == {"constant speed", "speeding up", "slowing down"}


def test_labels_and_captions_are_pure_functions_of_partial_records() -> None:
    assert camera_motion_label({"trajectory": "pan", "direction": "left", "angle_deg": 23.4,
                                "speed": {"mode": "variable", "a": -1.2}}) == "pan left 23 deg, speeding up"
    assert camera_motion_label({"trajectory": "tilt"}) == "tilt, constant speed"
    assert camera_motion_label({}) == "unknown, constant speed"
    assert scene_caption({}) == "A person moves in a scene."
    assert scene_caption({"environment": {"id": "plaza", "tags": ["outdoor", "urban"]},
                          "animation": {"id": "walk"}}) == "A person performs a walk motion in an outdoor urban scene."


# -- the path warning -----------------------------------------------------------------------------------


def test_warns_once_when_the_dataset_path_holds_cam_and_a_digit(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "renders_cam2" / "ds"
    res = generate_synthetic(ds, scenes=1, size=16, frames=2, cameras=2)
    assert res.output.count("warning: dataset path") == 1, res.output
    assert "'cam2'" in res.output and "camera 2" in res.output
    res = runner.invoke(app, ["captions", str(ds)])
    assert res.exit_code == 0 and res.output.count("warning: dataset path") == 1, res.output
    # what the warning is about: upstream reads the root's digit as every video's camera
    paths, _ = official.read_metadata(str(ds))
    assert {int(re.search(r"cam(\d+)", p).group(1)) for p in paths} == {2}  # type: ignore[union-attr]
    assert cam_in_path_warning(dataset) is None
    assert cam_in_path_warning("/data/camera_rigs/ds") is None  # "cam" without a digit is fine
    res = runner.invoke(app, ["captions", str(dataset)])
    assert "warning" not in res.output


def test_official_double_imports_nothing_of_ours() -> None:
    import ast

    src = Path(official.__file__).read_text()
    mods = {n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import | ast.ImportFrom)
            for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert mods <= {"__future__", "csv", "json", "os", "re", "typing", "cv2", "numpy", "pandas"}, mods
    assert "recammaster_official" in sys.modules


# -- catalog descriptions -------------------------------------------------------------------------------


def test_descriptions_reach_the_plan_but_not_the_catalog_hash(tmp_path: Path) -> None:
    import yaml

    from render_jobs.cli_generate import DEMO_CATALOG
    from render_jobs.planner import iter_manifest, plan_dataset, read_plan
    from scene_catalog.loader import CatalogError, load_catalog

    with_text = load_catalog(DEMO_CATALOG, check_assets=False)
    assert all(e.description for e in (*with_text.environments, *with_text.characters, *with_text.animations))
    raw = yaml.safe_load(DEMO_CATALOG.read_text())
    for section in ("environments", "characters", "animations"):
        for item in raw[section]:
            item.pop("description")
    bare_file = tmp_path / "bare.yaml"
    bare_file.write_text(yaml.safe_dump(raw))
    bare = load_catalog(bare_file, check_assets=False)
    assert bare.content_key() == with_text.content_key()  # descriptions do not change what is rendered

    plan_dataset(bare, 2, 4, tmp_path / "ds")
    assert all(e.descriptions is None for e in iter_manifest(tmp_path / "ds"))
    plan_dataset(with_text, 2, 4, tmp_path / "ds")  # same plan again: a no-op, not "a different plan"
    assert read_plan(tmp_path / "ds")["catalog_sha256"]
    plan_dataset(with_text, 2, 4, tmp_path / "ds2")
    for e in iter_manifest(tmp_path / "ds2"):
        assert e.descriptions is not None and set(e.descriptions) == {"environment", "character", "animation"}

    raw["characters"][0]["description"] = "two\nlines"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match="description"):
        load_catalog(bad_file, check_assets=False)


def test_a_dataset_without_scene_json_like_the_released_one(dataset: Path, tmp_path: Path) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    first = _scenes(ds)[0]
    (first / "scene.json").unlink()
    assert runner.invoke(app, ["captions", str(ds)]).exit_code == 0
    assert len(_rows(ds)) == 10  # planned by multicam: a scene without scene.json is not complete
    shutil.rmtree(ds / "plan")
    for scene in _scenes(ds):
        (scene / "scene.json").unlink(missing_ok=True)
    res = runner.invoke(app, ["captions", str(ds)])
    assert res.exit_code == 0, res.output
    rows = _rows(ds)
    assert len(rows) == 20 and {r["text"] for r in rows} == {"A person moves in a scene."}
    assert {r["camera_motion"] for r in rows} == {""}
    assert all(official.video_is_used(p) for p in official.read_metadata(str(ds))[0][:2])


def test_a_metadata_write_failure_is_one_warning_not_a_failed_run(dataset: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "copy"
    shutil.copytree(dataset, ds)
    (ds / "metadata.csv").unlink()
    (ds / "metadata.csv").mkdir()  # cannot be replaced by a file
    sync = MetadataSync(ds, min_interval_s=0)
    sync.scene_done()
    sync.scene_done()
    sync.close()
    err = capsys.readouterr().err
    assert err.count("not updated") == 1 and "multicam captions" in err, err
