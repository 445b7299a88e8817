"""camera_extrinsics.json: the dataset's quirks, precision and round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.camera_json import (
    CameraFileError,
    format_ue_matrix,
    parse_ue_matrix,
    read_camera_json,
    read_camera_track,
    write_camera_json,
)
from multicam.conventions import ue_location_rotator_to_matrix

DATASET_SAMPLE = {
    "frame0": {
        "cam01": "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] ",
        "cam02": "[0.707107 0.707107 2.69953e-34] [-0.707107 0.707107 -0] [0 0 1] [3390 1380 240] ",
    },
    "frame1": {
        "cam01": "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3391 1380 240 1] ",
        "cam02": "[0.707107 0.707107 2.69953e-34] [-0.707107 0.707107 -0] [0 0 1] [3391.5 1380 240] ",
    },
}


def test_reads_released_dataset_quirks(tmp_path: Path) -> None:
    p = tmp_path / "camera_extrinsics.json"
    p.write_text(json.dumps(DATASET_SAMPLE, indent=4))
    poses, names = read_camera_json(p)
    assert names == ["cam01", "cam02"]
    assert poses.shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(poses[0, 0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [3390, 1380, 240, 1]])
    # rows of 3 numbers get their homogeneous entry; exponents parse
    np.testing.assert_allclose(poses[1, 1, 3], [3391.5, 1380, 240, 1])
    assert poses[0, 1, 0, 2] == pytest.approx(2.69953e-34)
    assert poses[0, 1, 0, 3] == 0.0
    np.testing.assert_array_equal(read_camera_track(p, "cam02"), poses[:, 1])


def test_writer_layout_matches_dataset(tmp_path: Path) -> None:
    poses = np.broadcast_to(np.eye(4), (3, 2, 4, 4)).copy()
    poses[..., 3, :3] = [3390, 1380, 240]
    poses[1, 0, 1, 0] = -0.0
    p = write_camera_json(tmp_path / "cameras" / "camera_extrinsics.json", poses)
    text = p.read_text()
    assert text.startswith('{\n    "frame0": {\n        "cam01": "[1 0 0 0] [')
    # Unreal's signed zeros, whatever the sign of the zeros given (the released files' identity rows).
    assert '"cam01": "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "' in text
    data = json.loads(text)
    assert list(data) == ["frame0", "frame1", "frame2"]
    assert list(data["frame0"]) == ["cam01", "cam02"]
    assert all(v.endswith("] ") for f in data.values() for v in f.values())
    # same layout as json.dumps(indent=4) of the same object
    assert text == json.dumps(data, indent=4)
    assert not list(p.parent.glob(".*tmp"))  # atomic write left no temporary behind


@settings(max_examples=100, deadline=None)
@given(
    rot=st.lists(st.tuples(st.floats(-89, 89), st.floats(-180, 180), st.floats(-180, 180)), min_size=2, max_size=6),
    scale=st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
)
def test_write_read_round_trip_precision(tmp_path_factory: pytest.TempPathFactory,
                                         rot: list[tuple[float, float, float]], scale: float) -> None:
    rng = np.random.default_rng(len(rot))
    loc = rng.uniform(-1, 1, (len(rot), 3)) * scale
    m = ue_location_rotator_to_matrix(loc, rot).reshape(len(rot), 1, 4, 4)
    p = tmp_path_factory.mktemp("rt") / "c.json"
    write_camera_json(p, m)
    back, names = read_camera_json(p)
    assert names == ["cam01"]
    mag = np.abs(m).max(axis=(-1, -2), keepdims=True)
    assert np.all(np.abs(back - m) <= 1e-6 * mag)


def test_format_parse_single() -> None:
    m = ue_location_rotator_to_matrix([12.5, -3, 1e4], [10, 20, 30])
    s = format_ue_matrix(m)
    assert s.endswith("1] ") and s.count("[") == 4
    np.testing.assert_allclose(parse_ue_matrix(s), m, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("{}", "non-empty object"),
        ('{"frame0": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0]"}}', "expected 4 bracketed rows"),
        ('{"frame0": {"cam01": "[1 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}', "row 0 has 2 numbers"),
        ('{"frame0": {"cam01": "[1 x 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}', "row 0 is not numeric"),
        ('{"frame1": {"cam01": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}', "frames must be frame0"),
        ('{"frameA": {}}', "unexpected key 'frameA'"),
        ('{"frame0": {"camX": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}', "unexpected camera key"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(CameraFileError, match=message) as info:
        read_camera_json(p)
    assert str(p) in str(info.value)


def test_missing_camera_named(tmp_path: Path) -> None:
    p = write_camera_json(tmp_path / "c.json", np.broadcast_to(np.eye(4), (2, 2, 4, 4)))
    with pytest.raises(CameraFileError, match="no camera 'cam07'.*cam01, cam02"):
        read_camera_track(p, "cam07")


def test_generic_matrices_keep_their_fourth_column(tmp_path: Path) -> None:
    # Not a rigid UE transform layout (a -0 and a 0.5 in the homogeneous column): written verbatim.
    poses = np.broadcast_to(np.eye(4), (2, 1, 4, 4)).copy()
    poses[0, 0, 0, 3] = -0.0
    poses[1, 0, 1, 3] = 0.5
    p = write_camera_json(tmp_path / "c.json", poses)
    text = p.read_text()
    assert '"[1 0 0 -0] [0 1 0 0] [0 0 1 0] [0 0 0 1] "' in text
    back, _ = read_camera_json(p)
    np.testing.assert_array_equal(back, poses)
    assert np.signbit(back[0, 0, 0, 3])


def test_identity_pose_prints_as_the_released_files_do(tmp_path: Path) -> None:
    """Released MultiCamVideo files print the identity rotation with Unreal's signed zeros
    (FTransform::ToMatrixWithScale of FRotator::Quaternion): ``[1 0 0 0] [-0 1 0 0] [0 -0 1 0]``."""
    from multicam.conventions import ue_location_rotator_to_matrix

    m = ue_location_rotator_to_matrix(np.array([3390.0, 1380.0, 240.0]), np.zeros(3))
    path = write_camera_json(tmp_path / "c.json", m[None, None])
    assert '"cam01": "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "' in path.read_text()
    back, _ = read_camera_json(path)
    assert np.array_equal(back[0, 0], m)  # values unchanged, only the sign bits of zeros


def test_engine_zero_signs_for_quarter_turns() -> None:
    """Hand-derived from the engine's formulas: yaw -90 -> Q = (0, -0, -s, c), so M[1][2] = yz2 + wx2 = -0."""
    from multicam.conventions import ue_engine_zero_signs, ue_location_rotator_to_matrix

    m = ue_engine_zero_signs(ue_location_rotator_to_matrix(np.zeros(3), np.array([0.0, -90.0, 0.0])))
    assert np.signbit(m[1, 2]) and not np.signbit(m[0, 2]) and not np.signbit(m[2, 0])
    assert m[0, 1] == -1.0 and m[1, 0] == 1.0 and m[2, 2] == 1.0


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        (b"\x00\x01\x02 binary", "encoding", "binary file (NUL byte at offset 0), expected JSON text"),
        (b'{"frame0": {"cam01": "\xe9t\xe9"}}', "encoding", "not UTF-8 text (byte 0xe9 at offset 22)"),
        (b'{\n    "frame0": {\n        "cam01": "[1 0 0 0] [0 1', "json", "the file ends early (truncated?)"),
        (b'{"frame0": }', "json", "not valid JSON (Expecting value at line 1 column 12)"),
    ],
)
def test_unreadable_files_are_one_line_of_a_kind(tmp_path: Path, content: bytes, kind: str, message: str) -> None:
    p = tmp_path / "camera_extrinsics.json"
    p.write_bytes(content)
    with pytest.raises(CameraFileError) as info:
        read_camera_json(p)
    assert info.value.kind == kind
    text = str(info.value)
    assert text.startswith(f"{p}: ") and message in text and "\n" not in text
    assert ("truncated" in text) == ("truncated" in message)  # only a cut-off document says so
    with pytest.raises(CameraFileError) as info:
        read_camera_json(tmp_path)  # a folder
    assert info.value.kind == "unreadable" and "cannot be read" in str(info.value)
