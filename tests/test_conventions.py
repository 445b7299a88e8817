"""Frame conventions: hand-derived cases and round trips (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multicam import conventions as cv

angles = st.tuples(
    st.floats(-89.0, 89.0), st.floats(-179.9, 179.9), st.floats(-179.9, 179.9)
)
locs = st.tuples(*[st.floats(-1e5, 1e5)] * 3)


def test_identity_matrix_of_dataset_to_opencv() -> None:
    # The dataset's identity pose: camera looks along UE +X, right = +Y_ue, up = +Z; at (3390, 1380, 240) cm.
    m = np.array([[1, 0, 0, 0], [-0.0, 1, 0, 0], [0, -0.0, 1, 0], [3390, 1380, 240, 1]], dtype=float)
    c2w = cv.ue_to_opencv_c2w(m)
    # RH world = (x, -y, z) / 100. OpenCV x (right) = UE +Y -> RH (0, -1, 0); y (down) = -Z -> (0, 0, -1);
    # z (forward) = UE +X -> (1, 0, 0).
    np.testing.assert_allclose(c2w[:3, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 1], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 3], [33.90, -13.80, 2.40], atol=1e-12)
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)


def test_camera_looking_along_plus_y_in_ue() -> None:
    # Yaw +90 deg: the view turns from +X toward +Y (to the right seen from above).
    m = cv.ue_location_rotator_to_matrix([0, 0, 0], [0, 90, 0])
    np.testing.assert_allclose(m[0, :3], [0, 1, 0], atol=1e-12)  # forward = +Y
    np.testing.assert_allclose(m[1, :3], [-1, 0, 0], atol=1e-12)  # right = -X
    np.testing.assert_allclose(m[2, :3], [0, 0, 1], atol=1e-12)  # up = +Z
    c2w = cv.ue_to_opencv_c2w(m)
    # OpenCV forward in RH world: UE +Y -> RH -Y.
    np.testing.assert_allclose(c2w[:3, 2], [0, -1, 0], atol=1e-12)
    # A point 5 m ahead along UE +Y projects to the principal point at depth 5 m.
    k = cv.intrinsics_matrix(24.0, 640, 640)
    uv, depth = cv.project_points_ue([[0, 500, 0]], m, k)
    np.testing.assert_allclose(uv[0], [320, 320], atol=1e-9)
    np.testing.assert_allclose(depth[0], 5.0)
    # A point to the camera's right (UE -X here) lands right of centre; one above lands higher (smaller v).
    uv, _ = cv.project_points_ue([[-100, 500, 0], [0, 500, 100]], m, k)
    assert uv[0, 0] > 320 and np.isclose(uv[0, 1], 320)
    assert uv[1, 1] < 320 and np.isclose(uv[1, 0], 320)


def test_positive_pitch_looks_up() -> None:
    m = cv.ue_location_rotator_to_matrix([0, 0, 0], [30, 0, 0])
    assert m[0, 2] > 0.49
    c2w = cv.ue_to_opengl_c2w(m)
    # OpenGL looks down -z: -z axis in the RH world has a positive vertical component.
    assert -c2w[2, 2] > 0.49


def test_intrinsics() -> None:
    k = cv.intrinsics_matrix(18.0, 1280, 1280)
    assert np.isclose(k[0, 0], 18.0 / 23.76 * 1280)
    assert k[0, 2] == 640 and k[1, 2] == 640
    kv = cv.intrinsics_matrix(35.0, 1920, 1080, sensor_fit="vertical")
    assert np.isclose(kv[1, 1], 35.0 / 23.76 * 1080) and kv[0, 0] == kv[1, 1]
    ka = cv.intrinsics_matrix(35.0, 1080, 1920, sensor_fit="auto")
    assert np.isclose(ka[0, 0], 35.0 / 23.76 * 1920)
    with pytest.raises(ValueError, match="focal_mm"):
        cv.intrinsics_matrix(0.0, 10, 10)
    assert cv.camera_set_folder(18, 10) == "f18_aperture10"
    assert cv.camera_set_folder(35, 2.4) == "f35_aperture2.4"
    assert np.isclose(cv.horizontal_fov_deg(18.0), 2 * np.degrees(np.arctan(23.76 / 36)))


@settings(max_examples=200, deadline=None)
@given(loc=locs, rot=angles)
def test_rotator_round_trip(loc: tuple[float, float, float], rot: tuple[float, float, float]) -> None:
    m = cv.ue_location_rotator_to_matrix(loc, rot)
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
    # UE axes are numerically right-handed as a matrix: X x Y = Z.
    np.testing.assert_allclose(np.cross(m[0, :3], m[1, :3]), m[2, :3], atol=1e-12)
    loc2, rot2 = cv.ue_matrix_to_location_rotator(m)
    np.testing.assert_allclose(loc2, loc, atol=1e-9)
    np.testing.assert_allclose(cv.ue_location_rotator_to_matrix(loc2, rot2), m, atol=1e-9)
    np.testing.assert_allclose(rot2, rot, atol=1e-7)


@settings(max_examples=200, deadline=None)
@given(loc=locs, rot=angles)
def test_ue_opencv_opengl_round_trips(loc: tuple[float, float, float], rot: tuple[float, float, float]) -> None:
    m = cv.ue_location_rotator_to_matrix(loc, rot)
    c2w = cv.ue_to_opencv_c2w(m)
    assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)  # a proper rotation in the RH world
    np.testing.assert_allclose(cv.opencv_c2w_to_ue(c2w), m, atol=1e-9)
    np.testing.assert_allclose(cv.opencv_w2c_to_ue(cv.ue_to_opencv_w2c(m)), m, atol=1e-9)
    gl = cv.ue_to_opengl_c2w(m)
    np.testing.assert_allclose(cv.opengl_c2w_to_ue(gl), m, atol=1e-9)
    np.testing.assert_allclose(cv.opencv_to_opengl_c2w(c2w), gl, atol=1e-12)
    np.testing.assert_allclose(cv.ue_to_opencv_w2c(m) @ c2w, np.eye(4), atol=1e-9)
    # The camera centre in the RH world is the UE location mapped by the documented axis map.
    np.testing.assert_allclose(c2w[:3, 3], np.array(loc) * [1, -1, 1] / 100, atol=1e-12)


def test_vectorised_over_batches() -> None:
    rng = np.random.default_rng(0)
    rot = rng.uniform(-80, 80, (4, 5, 3))
    loc = rng.uniform(-1000, 1000, (4, 5, 3))
    m = cv.ue_location_rotator_to_matrix(loc, rot)
    assert m.shape == (4, 5, 4, 4)
    c2w = cv.ue_to_opencv_c2w(m)
    for i in range(4):
        for j in range(5):
            np.testing.assert_allclose(c2w[i, j], cv.ue_to_opencv_c2w(m[i, j]))
    fast = cv.ue_location_pitch_yaw_to_matrix(loc, rot[..., 0], rot[..., 1])
    rot0 = rot.copy()
    rot0[..., 2] = 0
    np.testing.assert_allclose(fast, cv.ue_location_rotator_to_matrix(loc, rot0), atol=1e-15)


def test_recammaster_convention() -> None:
    m = cv.ue_location_rotator_to_matrix([100, 200, 300], [10, 20, 30])
    r = cv.ue_to_recammaster_c2w(m)
    t = m.T
    np.testing.assert_allclose(r[:3, 0], t[:3, 1])
    np.testing.assert_allclose(r[:3, 1], -t[:3, 2])
    np.testing.assert_allclose(r[:3, 2], t[:3, 0])
    np.testing.assert_allclose(r[:3, 3], [1, 2, 3])
    assert np.isclose(np.linalg.det(r[:3, :3]), -1.0)  # UE world axes kept, as in ReCamMaster's loader


@settings(max_examples=40, deadline=None)
@given(eye=locs, target=locs)
def test_look_at_and_roll_free_axes(eye: tuple[float, float, float], target: tuple[float, float, float]) -> None:
    e, t = np.asarray(eye), np.asarray(target)
    d = t - e
    if np.hypot(d[0], d[1]) < 1e-3 * max(np.linalg.norm(d), 1.0):
        return  # straight up or down: no roll-free camera
    pitch, yaw = cv.ue_look_at_pitch_yaw(e, t)
    np.testing.assert_allclose([pitch, yaw], cv.ue_look_at_rotator(e, t)[:2], atol=1e-9)
    fwd = cv.ue_pitch_yaw_to_forward(pitch, yaw)
    np.testing.assert_allclose(fwd, cv.ue_look_direction(e, t), atol=1e-12)
    np.testing.assert_allclose(fwd, d / np.linalg.norm(d), atol=1e-12)
    axes = cv.ue_pitch_yaw_to_axes(pitch, yaw)  # the rows of FRotationMatrix for roll 0
    np.testing.assert_allclose(np.stack(axes), cv.ue_rotator_to_axes([pitch, yaw, 0.0]), atol=1e-12)
    assert axes[1][2] == 0.0  # right stays horizontal


def test_default_aim_height_is_the_body_centre() -> None:
    assert float(cv.default_aim_height_m(1.8)) == pytest.approx(0.99)
    np.testing.assert_allclose(cv.default_aim_height_m([1.0, 2.0]), [0.55, 1.1])


def test_quaternions_match_scipy_including_half_turns() -> None:
    from scipy.spatial.transform import Rotation

    r = Rotation.random(500, random_state=3).as_matrix()
    half_turns = np.array([np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])])
    r = np.concatenate([r, half_turns, [np.eye(3)]])
    q = cv.rotation_to_quaternion_wxyz(r)
    ref = Rotation.from_matrix(r).as_quat()[:, [3, 0, 1, 2]]  # scipy: (x, y, z, w)
    ref *= np.where(ref[:, :1] < 0, -1.0, 1.0)
    same = np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1))  # w = 0: both signs are the rotation
    assert same.max() < 1e-12 and np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(cv.quaternion_wxyz_to_rotation(q), r, atol=1e-12)


def test_nearest_rotation_cleans_six_digit_rotations_and_refuses_reflections() -> None:
    r = cv.ue_rotator_to_axes([[10.0, 33.0, 0.0], [-44.0, 170.0, 5.0]])
    printed = np.round(r, 6)
    clean = cv.nearest_rotation(printed)
    np.testing.assert_allclose(np.linalg.det(clean), 1.0, atol=1e-14)
    np.testing.assert_allclose(clean @ np.swapaxes(clean, -1, -2), np.broadcast_to(np.eye(3), clean.shape), atol=1e-14)
    assert np.abs(clean - r).max() < 2e-6
    with pytest.raises(ValueError, match="reflection"):
        cv.nearest_rotation(np.diag([-1.0, 1.0, 1.0]))


def test_pixel_conventions_of_other_tools() -> None:
    k = cv.intrinsics_matrix(24.0, 640, 480)
    k_int = cv.k_to_integer_pixel_centres(k)
    assert (k_int[0, 2], k_int[1, 2]) == (319.5, 239.5) and k_int[0, 0] == k[0, 0]
    np.testing.assert_allclose(cv.normalized_intrinsics(k, 640, 480), [24 / 23.76, 24 / 23.76 * 640 / 480, 0.5, 0.5])
