"""ue_scripts/render_job.py run against the fake ``unreal`` module (tests/ue_support/fake_unreal.py).

The fake records what the script builds and renders frames by evaluating the sequences the way the
engine would, so these tests check the keyed transforms, the sequence set-up, the MRQ settings,
the exported poses and the clean-up, frame by frame, without Unreal.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from exporters.camera_json import read_camera_json, write_camera_json
from multicam.conventions import ue_location_rotator_to_matrix
from render_jobs.backend import RenderError
from render_jobs.schema import RenderJob
from render_jobs.unreal_backend import UnrealConfig, evaluated_poses, ue_job_dict
from render_jobs.verify import verify_scene_dir

sys.path.insert(0, str(Path(__file__).parent))
from ue_support import fake_unreal  # noqa: E402
from ue_support.jobs import ANIM, MAP, MESH, make_job, populate_assets  # noqa: E402

CFG = UnrealConfig(editor=Path("/nonexistent/UnrealEditor-Cmd"), project=Path("/nonexistent/P.uproject"))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    fake_unreal._reset()
    populate_assets(fake_unreal)
    monkeypatch.setitem(sys.modules, "unreal", fake_unreal)
    monkeypatch.setenv("MULTICAM_UE_HARD_EXIT", "0")
    sys.modules.pop("ue_scripts.render_job", None)
    yield fake_unreal
    sys.modules.pop("ue_scripts.render_job", None)


def run_script(job: RenderJob, tmp_path: Path, cfg: UnrealConfig = CFG) -> tuple[dict[str, Any], dict[str, Any]]:
    ue_job = ue_job_dict(job, cfg, tmp_path)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(ue_job))
    script = importlib.import_module("ue_scripts.render_job")
    assert script.main([str(path)]) == 0
    while fake_unreal._tick():  # the editor's ticks
        pass
    result = json.loads((tmp_path / "result.json").read_text())
    return ue_job, result


def _camera_binding(seq: Any) -> Any:
    return seq._cut_camera()


def test_keys_sequences_and_mrq_settings(fake: ModuleType, tmp_path: Path) -> None:
    job = make_job(n_cameras=3, frames=6, size=32)
    ue_job, result = run_script(job, tmp_path)
    st = fake._STATE
    assert result["status"] == "ok", result["error"]
    assert st.loaded_map == MAP and st.quit_requested

    assert list(st.rendered) == ["cam01", "cam02", "cam03"]  # rendered MRQ jobs, in queue order
    jobs = st.queue.get_jobs()
    assert [j.job_name for j in jobs] == ["cam01", "cam02", "cam03"]
    F = job.settings.frames
    for cam, mrq in zip(job.cameras, jobs, strict=True):
        cfg = mrq.get_configuration()._settings
        out = next(s for s in cfg if isinstance(s, fake.MoviePipelineOutputSetting))
        assert (out.output_resolution.x, out.output_resolution.y) == (32, 32)
        assert out.use_custom_playback_range and (out.custom_start_frame, out.custom_end_frame) == (0, F)
        assert (out.output_frame_rate.numerator, out.output_frame_rate.denominator) == (15, 1)
        assert out.file_name_format == f"{cam.name}/{{frame_number}}"
        assert out.output_directory.path == ue_job["frames_dir"]
        aa = next(s for s in cfg if isinstance(s, fake.MoviePipelineAntiAliasingSetting))
        assert (aa.spatial_sample_count, aa.temporal_sample_count) == (4, 1)
        assert (aa.engine_warm_up_count, aa.render_warm_up_count) == (2, 2)
        assert aa.anti_aliasing_method is fake.AntiAliasingMethod.AAM_NONE
        kinds = {type(s).__name__ for s in cfg}
        assert {"MoviePipelineDeferredPassBase", "MoviePipelineImageSequenceOutput_PNG"} <= kinds
        cam_setting = next(s for s in cfg if isinstance(s, fake.MoviePipelineCameraSetting))
        assert cam_setting.render_all_cameras is False
        assert cam_setting.override_camera_overscan is True and cam_setting.overscan_percentage == 0.0
        assert mrq.map._p == MAP
        files = st.rendered[cam.name]
        assert [Path(f).name for f in files] == [f"{f:04d}.png" for f in range(F)]
        assert all(Path(f).parent == tmp_path / "frames" / cam.name for f in files)


def test_passes_configure_post_process_materials_exr_and_stencil(fake: ModuleType, tmp_path: Path) -> None:
    mask = "/Game/MultiCam/PP_CustomStencil.PP_CustomStencil"
    fake._add_asset(mask, fake.Material("CustomStencil"))
    job = make_job(n_cameras=2, frames=3, size=32, extra_passes=["depth", "mask"])
    cfg = CFG.model_copy(update={"mask_stencil_value": 7})
    ue_job, result = run_script(job, tmp_path, cfg)
    assert result["status"] == "ok", result["error"]
    st = fake._STATE
    character = next(a for a in st.actors if isinstance(a, fake.SkeletalMeshActor))
    assert character._component._render_custom_depth and character._component._stencil == 7
    assert st.cvars == {"r.CustomDepth": "3"}  # custom depth with stencil
    for cam, mrq in zip(job.cameras, st.queue.get_jobs(), strict=True):
        cfg_ = mrq.get_configuration()._settings
        deferred = next(s for s in cfg_ if isinstance(s, fake.MoviePipelineDeferredPassBase))
        assert [(p.enabled, p.material.get_path_name()) for p in deferred.additional_post_process_materials] == [
            (True, fake._WORLD_DEPTH_MATERIAL), (True, mask)]
        assert deferred.use32_bit_post_process_materials is True
        exr = next(s for s in cfg_ if isinstance(s, fake.MoviePipelineImageSequenceOutput_EXR))
        assert exr.multilayer and exr.compression is fake.EXRCompressionFormat.NONE
        assert any(isinstance(s, fake.MoviePipelineImageSequenceOutput_PNG) for s in cfg_)
        out = next(s for s in cfg_ if isinstance(s, fake.MoviePipelineOutputSetting))
        assert out.file_name_format == f"{cam.name}{{render_pass}}/{{frame_number}}"
        rendered = sorted(str(Path(f).relative_to(tmp_path / "frames")) for f in st.rendered[cam.name])
        assert rendered == sorted(
            [f"{cam.name}/{f:04d}.exr" for f in range(3)]
            + [f"{cam.name}FinalImage{p}/{f:04d}.png" for f in range(3)
               for p in ("", "MovieRenderQueue_WorldDepth", "PP_CustomStencil")])


def test_keyed_transforms_equal_job_poses_every_frame(fake: ModuleType, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    job = make_job(n_cameras=3, frames=7, size=16)
    # Keep the sequences: skip the clean-up's asset deletion so they can be inspected.
    monkeypatch.setattr(fake.EditorAssetLibrary, "delete_directory", classmethod(lambda cls, p: True))
    ue_job, result = run_script(job, tmp_path)
    st = fake._STATE
    assert result["status"] == "ok"
    seqs = sorted(st.sequences.items())
    assert len(seqs) == 3
    want = job.poses_array()
    for c, (path, seq) in enumerate(seqs):
        cam_name = job.cameras[c].name
        assert path == f"/Game/MultiCamTemp/scene1/scene1_{cam_name}.scene1_{cam_name}"
        assert (seq._display_rate.numerator, seq._display_rate.denominator) == (15, 1)
        assert (seq._start, seq._end) == (0, 7)
        # one camera cut, bound to this sequence's camera (a CineCameraActor labelled camNN)
        binding = _camera_binding(seq)
        assert isinstance(binding._object, fake.CineCameraActor) and binding._object._label.endswith(cam_name)
        cuts = [s for t in seq._tracks for s in t._sections]
        assert len(cuts) == 1 and cuts[0]._range == (0, 7)
        # every channel keyed on every frame, linear
        section = binding._tracks[0]._sections[0]
        assert section._range == (0, 7)
        ch = {c_.channel_name: c_ for c_ in section._channels}
        for name in ("Location.X", "Location.Y", "Location.Z", "Rotation.X", "Rotation.Y", "Rotation.Z"):
            # keys are stored in ticks: display frame f at 15 fps is tick f * 24000 / 15
            assert [k[0] for k in ch[name]._keys] == [f * 1600 for f in range(7)]
            assert all(k[2] is fake.MovieSceneKeyInterpolation.LINEAR for k in ch[name]._keys)
        assert [ch[f"Scale.{a}"]._default for a in "XYZ"] == [1.0, 1.0, 1.0]
        for f in range(7):
            loc, rot = seq._camera_pose(binding, f)
            np.testing.assert_allclose(ue_location_rotator_to_matrix(loc, rot), want[f, c], atol=1e-9)
        # the character's animation on the same time line, with the start offset in ticks
        char_binding = next(b for b in seq._bindings if isinstance(b._object, fake.SkeletalMeshActor))
        anim = char_binding._tracks[0]._sections[0]
        assert anim._range == (0, 7)
        assert anim._params.animation is st.assets[ANIM]
        assert anim._params.first_loop_start_frame_offset.value == round(12 / 30 * 24000)
        assert (seq._tick_resolution.numerator, seq._tick_resolution.denominator) == (24000, 1)
    # the cameras: lens, filmback, focus on the character
    character = next(a for a in st.actors if isinstance(a, fake.SkeletalMeshActor))
    assert character.skeletal_mesh_component._mesh is st.assets[MESH]
    assert (character._location.x, character._rotation.yaw) == (0.0, 30.0)
    cams = [a for a in st.actors if isinstance(a, fake.CineCameraActor)]
    assert len(cams) == 3
    for a in cams:
        comp = a.get_cine_camera_component()
        assert (comp.current_focal_length, comp.current_aperture) == (18.0, 10.0)
        assert (comp.filmback.sensor_width, comp.filmback.sensor_height) == (23.76, 23.76)
        assert comp.focus_settings.focus_method is fake.CameraFocusMethod.TRACKING
        assert comp.focus_settings.tracking_focus_settings.actor_to_track is character
        # the plan's focus point (the character's aim point) replayed as a height above the character
        aim_z = job.cameras[0].focus_points_cm[0][2] - job.placement.location_cm[2]
        assert aim_z == pytest.approx(0.55 * 180)
        assert comp.focus_settings.tracking_focus_settings.relative_offset.z == pytest.approx(aim_z)


def test_exported_poses_round_trip_to_job(fake: ModuleType, tmp_path: Path) -> None:
    job = make_job(n_cameras=4, frames=5, size=16, seed=11)
    _, result = run_script(job, tmp_path)
    assert result["status"] == "ok"
    # checks engine matrices vs conventions and the job
    poses = evaluated_poses(result, [c.name for c in job.cameras], job.settings.frames)
    write_camera_json(tmp_path / "cams.json", poses, [c.name for c in job.cameras])
    back, names = read_camera_json(tmp_path / "cams.json")
    assert names == [c.name for c in job.cameras]
    np.testing.assert_allclose(back, job.poses_array(), atol=1e-6)


def test_cleanup_removes_actors_and_sequences(fake: ModuleType, tmp_path: Path) -> None:
    job = make_job(n_cameras=2, frames=3, size=16)
    _, result = run_script(job, tmp_path)
    st = fake._STATE
    assert result["status"] == "ok"
    assert set(map(id, st.destroyed)) == set(map(id, st.actors)) and len(st.actors) == 3
    assert st.sequences == {} and "/Game/MultiCamTemp/scene1" not in st.directories


def test_missing_asset_is_reported_in_result(fake: ModuleType, tmp_path: Path) -> None:
    del fake._STATE.assets[ANIM]
    _, result = run_script(make_job(frames=3, size=16), tmp_path)
    assert result["status"] == "error"
    assert "animation asset not found" in result["error"] and ANIM in result["error"]
    assert fake._STATE.quit_requested and fake._STATE.rendered == {}
    assert any(level == "Error" and ANIM in msg for level, msg in fake._STATE.log)


def test_failed_mrq_job_is_reported(fake: ModuleType, tmp_path: Path) -> None:
    fake._STATE.fail_jobs = {"cam02"}
    _, result = run_script(make_job(frames=3, size=16), tmp_path)
    assert result["status"] == "error"
    assert "failed jobs=['cam02']" in result["error"] and "injected failure" in result["error"]
    assert result["mrq_jobs"] == {"cam01": True, "cam02": False, "cam03": True}


def test_job_file_errors_name_the_field(fake: ModuleType, tmp_path: Path) -> None:
    script = importlib.import_module("ue_scripts.render_job")
    ue_job = ue_job_dict(make_job(frames=3, size=16), CFG, tmp_path)
    good = ue_job["cameras"][1]["rotators"]
    ue_job["cameras"][1]["rotators"] = good[:2]
    with pytest.raises(script.JobError, match=r"cameras\[1\]: 3 locations / 2 rotators, expected 3"):
        script.parse_job(ue_job)
    ue_job["cameras"][1]["rotators"] = good
    del ue_job["map"]
    with pytest.raises(script.JobError, match="missing field 'map'"):
        script.parse_job(ue_job)


def test_map_given_as_package_path(fake: ModuleType, tmp_path: Path) -> None:
    job = make_job(n_cameras=1, frames=3, size=16)
    job.environment.asset = MAP.split(".")[0]  # /Game/Maps/TestTown
    _, result = run_script(job, tmp_path)
    assert result["status"] == "ok" and fake._STATE.loaded_map == MAP
    assert fake._STATE.queue.get_jobs()[0].map._p == MAP


def test_second_job_on_the_open_map_does_not_reload_it(fake: ModuleType, tmp_path: Path) -> None:
    for k in range(2):
        work = tmp_path / f"job{k}"
        work.mkdir()
        _, result = run_script(make_job(job_id=f"s{k}", n_cameras=1, frames=3, size=16), work)
        assert result["status"] == "ok"
    assert fake._STATE.map_loads == 1


def test_evaluated_poses_rejects_a_pose_that_differs(fake: ModuleType, tmp_path: Path) -> None:
    job = make_job(n_cameras=2, frames=3, size=16)
    _, result = run_script(job, tmp_path)
    result["cameras"]["cam02"]["location_cm"][1][0] += 5.0
    m = result["cameras"]["cam02"]["matrix"][1]
    m[3][0] += 5.0
    # evaluated_poses returns what the engine evaluated; the comparison with the plan is verify's, done once
    mats = evaluated_poses(result, [c.name for c in job.cameras], job.settings.frames)
    folder = tmp_path / "scene"
    write_camera_json(folder / "cameras" / "camera_extrinsics.json", mats, [c.name for c in job.cameras])
    problems = verify_scene_dir(job, folder)
    assert any("poses differ from the plan" in p and "frame1.cam02" in p for p in problems), problems
    result["cameras"]["cam02"]["rotator_deg"][1][2] += 10.0  # roll no longer matches the matrix
    with pytest.raises(RenderError, match="rotator convention mismatch"):
        evaluated_poses(result, [c.name for c in job.cameras], job.settings.frames)


# ------------------------------------------------------------------------------------------------
# frame ranges: the fake models the engine's tick resolution / display rate / range rates
# ------------------------------------------------------------------------------------------------


def test_fake_unreal_imports_nothing_from_the_project() -> None:
    tree = ast.parse(Path(fake_unreal.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in the fake: {ast.dump(node)}"
            roots.add((node.module or "").split(".")[0])
    project = {p.name for p in Path(__file__).resolve().parent.parent.iterdir()
               if p.is_dir() and (p / "__init__.py").exists()} | {"tests", "ue_support"}
    assert "multicam" in project and "render_jobs" in project
    assert not roots & project, roots & project


@pytest.mark.parametrize(("frames", "fps"), [(81, 15.0), (300, 24.0)])
def test_every_channel_evaluated_at_every_frame(fake: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, frames: int, fps: float) -> None:
    job = make_job(n_cameras=2, frames=frames, size=16, fps=fps)
    evaluated: list[tuple[Any, int, int]] = []
    orig = fake.MovieSceneScriptingDoubleChannel.evaluate_keys

    def spy(self: Any, range: Any, frame_rate: Any) -> list[float]:
        v = orig(self, range, frame_rate)
        evaluated.append((self, frame_rate.numerator, len(v)))
        return v

    monkeypatch.setattr(fake.MovieSceneScriptingDoubleChannel, "evaluate_keys", spy)
    _, result = run_script(job, tmp_path)
    assert result["status"] == "ok", result["error"]
    assert len(evaluated) == 2 * 6 and all(n == frames and r == int(fps) for _, r, n in evaluated)
    assert {len(f) for f in fake._STATE.rendered.values()} == {frames}
    poses = evaluated_poses(result, [c.name for c in job.cameras], job.settings.frames)
    np.testing.assert_allclose(poses, job.poses_array(), atol=1e-6)


def test_constructor_made_range_is_in_60000_fps(fake: ModuleType, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A sequence at 15 fps display rate, 24000 ticks/s, keyed on every frame.
    seq = fake.LevelSequence()
    seq.set_tick_resolution(fake.FrameRate(24000, 1))
    seq.set_display_rate(fake.FrameRate(15, 1))
    ch = fake.MovieScene3DTransformTrack().add_section()._channels[0]
    ch._section._sequence = seq
    for f in range(81):
        ch.add_key(fake.FrameNumber(f), float(f), interpolation=fake.MovieSceneKeyInterpolation.LINEAR)
    rate = fake.FrameRate(15, 1)
    assert ch.evaluate_keys(seq.make_range(0, 81), rate) == [float(f) for f in range(81)]
    assert ch.evaluate_keys(seq.make_range(10, 5), rate) == [10.0, 11.0, 12.0, 13.0, 14.0]
    # [0, 81) at 60000 fps is ticks [0, 32): less than one display frame (1600 ticks) -> one value
    old = fake.SequencerScriptingRange(has_start_value=True, has_end_value=True, inclusive_start=0,
                                       exclusive_end=81)
    assert ch.evaluate_keys(old, rate) == [0.0]
    assert ch.evaluate_keys(fake.SequencerScriptingRange(has_start_value=True), rate) == []
    assert ("Error", "Unbounded range passed to evaluate keys.") in fake._STATE.log

    # the script with the old constructor-made range fails before rendering
    script = importlib.import_module("ue_scripts.render_job")
    monkeypatch.setattr(fake.LevelSequence, "make_range",
                        lambda self, start_frame, duration: fake.SequencerScriptingRange(
                            has_start_value=True, has_end_value=True, inclusive_start=start_frame,
                            exclusive_end=start_frame + duration))
    job = make_job(n_cameras=1, frames=81, size=16)
    ue_job = ue_job_dict(job, CFG, tmp_path)
    (tmp_path / "job.json").write_text(json.dumps(ue_job))
    script.main([str(tmp_path / "job.json")])
    while fake._tick():
        pass
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "error"
    assert "evaluated 1 frames, expected 81" in result["error"]
    assert fake._STATE.rendered == {}


def test_every_job_file_field_is_required_so_no_default_can_disagree(fake: ModuleType, tmp_path: Path) -> None:
    """The launcher writes every field from the RenderJob; the script has no defaults of its own (they said 8
    samples, 30 fps and a 120 cm focus where the plan says otherwise), so each missing field is named."""
    script = importlib.import_module("ue_scripts.render_job")
    full = ue_job_dict(make_job(frames=3, size=16), CFG, tmp_path)
    script.parse_job(full)
    for key in full:
        job = {k: v for k, v in full.items() if k != key}
        with pytest.raises(script.JobError, match=f"missing field '{key}'"):
            script.parse_job(job)
    for key in full["cameras"][0]:
        job = {**full, "cameras": [{k: v for k, v in full["cameras"][0].items() if k != key}]}
        with pytest.raises(script.JobError, match=rf"cameras\[0\]: missing field '{key}'"):
            script.parse_job(job)


def test_the_job_file_has_one_definition_shared_by_launcher_and_script(fake: ModuleType, tmp_path: Path) -> None:
    """The launcher builds the script's own dataclass (ue_scripts/job_file.py) and the script reads back exactly
    that object; no field of it has a default."""
    import dataclasses

    from render_jobs.unreal_backend import ue_job
    from ue_scripts import job_file

    script = importlib.import_module("ue_scripts.render_job")
    assert script.UeJob is job_file.UeJob and script.parse_job is job_file.parse_job
    built = ue_job(make_job(frames=3, size=16), CFG, tmp_path)
    assert isinstance(built, job_file.UeJob)
    assert script.parse_job(json.loads(json.dumps(ue_job_dict(make_job(frames=3, size=16), CFG, tmp_path)))) == built
    for cls in (job_file.UeJob, job_file.CameraSpec):
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, (cls, f.name)


@pytest.mark.parametrize(("focal_mm", "aperture"), [(18.0, 10.0), (24.0, 5.0), (35.0, 2.4), (50.0, 2.4)])
def test_every_camera_set_survives_the_lens_limits(fake: ModuleType, tmp_path: Path, focal_mm: float,
                                                   aperture: float) -> None:
    """RecalcDerivedData clamps focal length and aperture to the lens; the script sets the lens to the job's
    values, so each MultiCamVideo camera set reads back unchanged (f/2.4 would read f/2.8 on the default lens)."""
    job = make_job(n_cameras=2, frames=3, size=16)
    job = job.model_copy(update={"cameras": [c.model_copy(update={"focal_mm": focal_mm, "aperture": aperture})
                                             for c in job.cameras]})
    _, result = run_script(job, tmp_path)
    assert result["status"] == "ok", result["error"]
    comps = [a.get_cine_camera_component() for a in fake._STATE.actors if isinstance(a, fake.CineCameraActor)]
    assert len(comps) == 2
    for comp in comps:
        assert (comp.current_focal_length, comp.current_aperture) == (focal_mm, aperture)
    bare = fake.CineCameraComponent()  # the fake's default lens does clamp, so the test can fail
    bare.current_aperture = 2.4
    assert bare.current_aperture == 2.8


# ------------------------------------------------------------------------------------------------
# golden tests: the fake's engine math (transcribed from the engine) against hand-computed values, and our
# conventions + camera-file writer against the fake's engine
# ------------------------------------------------------------------------------------------------


def _frotation_matrix(pitch: float, yaw: float, roll: float) -> list[list[float]]:
    """RotationTranslationMatrix.h, FRotationTranslationMatrix (the formula by angles, not via the quaternion)."""
    sp, cp = math.sin(math.radians(pitch)), math.cos(math.radians(pitch))
    sy, cy = math.sin(math.radians(yaw)), math.cos(math.radians(yaw))
    sr, cr = math.sin(math.radians(roll)), math.cos(math.radians(roll))
    return [[cp * cy, cp * sy, sp], [sr * sp * cy - cr * sy, sr * sp * sy + cr * cy, -sr * cp],
            [-(cr * sp * cy + sr * sy), cy * sr - cr * sp * sy, cr * cp]]


# (pitch, yaw, roll) -> the three axis rows, worked out by hand from the formula above
_HAND = {
    (0.0, 90.0, 0.0): [[0, 1, 0], [-1, 0, 0], [0, 0, 1]],
    (90.0, 0.0, 0.0): [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],
    (0.0, 0.0, 90.0): [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
    (0.0, 180.0, 0.0): [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
    (30.0, 0.0, 0.0): [[math.sqrt(3) / 2, 0, 0.5], [0, 1, 0], [-0.5, 0, math.sqrt(3) / 2]],
}


@pytest.mark.parametrize("rot", sorted(_HAND))
def test_fake_engine_matrix_matches_hand_computed_values(fake: ModuleType, rot: tuple[float, float, float]) -> None:
    pitch, yaw, roll = rot
    m = fake.Transform(location=fake.Vector(1.0, 2.0, 3.0),
                       rotation=fake.Rotator(roll=roll, pitch=pitch, yaw=yaw)).to_matrix()
    rows = [[p.x, p.y, p.z, p.w] for p in (m.x_plane, m.y_plane, m.z_plane, m.w_plane)]
    np.testing.assert_allclose(np.asarray(rows)[:3, :3], _HAND[rot], atol=1e-12)
    assert rows[3] == [1.0, 2.0, 3.0, 1.0] and [r[3] for r in rows[:3]] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("rot", [(12.5, -37.0, 4.0), (-44.0, 170.0, -3.0), (5.0, 359.0, 0.0), (0.0, -90.0, 0.0)])
def test_quaternion_path_equals_the_angle_formula_and_our_conventions(fake: ModuleType,
                                                                      rot: tuple[float, float, float]) -> None:
    pitch, yaw, roll = rot
    m = fake.Transform(location=fake.Vector(), rotation=fake.Rotator(roll=roll, pitch=pitch, yaw=yaw)).to_matrix()
    engine = np.asarray([[p.x, p.y, p.z] for p in (m.x_plane, m.y_plane, m.z_plane)])
    np.testing.assert_allclose(engine, _frotation_matrix(pitch, yaw, roll), atol=1e-12)
    ours = ue_location_rotator_to_matrix(np.zeros(3), np.array([pitch, yaw, roll]))
    np.testing.assert_allclose(ours[:3, :3], engine, atol=1e-12)


@pytest.mark.parametrize(("loc", "rot"), [((3390.0, 1380.0, 240.0), (0.0, 0.0, 0.0)),
                                          ((0.0, 0.0, 0.0), (0.0, -90.0, 0.0)),
                                          ((-120.0, 55.0, 7.0), (0.0, 90.0, 0.0)),
                                          ((1.0, 2.0, 3.0), (0.0, 180.0, 0.0))])
def test_our_camera_file_prints_poses_as_the_engine_prints_them(fake: ModuleType, tmp_path: Path,
                                                               loc: tuple[float, float, float],
                                                               rot: tuple[float, float, float]) -> None:
    """FMatrix::ToString of the engine's matrix (how the released files' strings were printed) against what our
    writer prints for the same pose: the same numbers (ours keep more digits than %g's six) and, where the value is
    zero or a rounding residue, the same sign; the identity reads exactly like the released files."""
    pitch, yaw, roll = rot
    m = fake.Transform(location=fake.Vector(*loc), rotation=fake.Rotator(roll=roll, pitch=pitch, yaw=yaw))
    printed = str(m.to_matrix())
    if rot == (0.0, 0.0, 0.0):
        assert printed == "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "
    ours = ue_location_rotator_to_matrix(np.asarray(loc), np.asarray(rot))
    path = write_camera_json(tmp_path / "c.json", ours[None, None])
    written = json.loads(path.read_text())["frame0"]["cam01"]
    if rot == (0.0, 0.0, 0.0):
        assert written == printed
    def numbers(text: str) -> np.ndarray:
        return np.asarray([float(v) for v in text.replace("[", " ").replace("]", " ").split()])

    a, b = numbers(printed), numbers(written)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * max(1.0, float(np.abs(a).max())))
    small = (np.abs(a) < 1e-9) & (np.abs(b) < 1e-9)
    assert small.any() and np.array_equal(np.signbit(a[small]), np.signbit(b[small])), (printed, written)
