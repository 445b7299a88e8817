"""A fake ``unreal`` module: just enough of the UE 5.6 editor Python API to run ``ue_scripts/``.

Rules that keep it honest:

* every public name of this module, and every public member a fake class defines (methods,
  properties, class attributes), exists in the sanitised engine stub + ``mrq_stub.pyi`` on that
  class or one of its stub bases; ``tests/test_ue_static.py`` asserts it, so the fake cannot drift
  from the real API. Helpers and recorded state are private (leading underscore);
* it records what the script did (spawned actors, sequences, tracks, keys, MRQ settings) in
  ``_STATE`` for the tests to assert on;
* its Movie Render Queue "renders" by evaluating each job's sequence like the engine would (the
  camera cut's camera, its keyed channels with the keys' interpolation) and writing one small
  image per frame whose pixels encode the camera index and frame, so later stages can check them.

* it imports nothing from the project (``tests/test_ue_script.py`` checks its imports), so what it
  computes (the engine's rotation matrix, frame-rate conversions) is modelled here on its own.

Install with :func:`_install` (puts it in ``sys.modules["unreal"]``); reset with :func:`_reset`.
"""

from __future__ import annotations

import math
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------------
# recorded state + failure injection
# ------------------------------------------------------------------------------------------------


@dataclass
class _State:
    assets: dict[str, Any] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    loaded_map: str | None = None
    map_loads: int = 0
    actors: list[Any] = field(default_factory=list)
    destroyed: list[Any] = field(default_factory=list)
    sequences: dict[str, Any] = field(default_factory=dict)
    queue: Any = None
    pending: list[Any] = field(default_factory=list)
    quit_requested: bool = False
    log: list[tuple[str, str]] = field(default_factory=list)
    log_sink: Callable[[str, str], None] | None = None
    rendered: dict[str, list[str]] = field(default_factory=dict)
    # failure injection
    fail_jobs: set[str] = field(default_factory=set)
    hang: bool = False
    frames_written: int = 0
    tick_callbacks: list[Callable[[float], None]] = field(default_factory=list)
    #: called in every tick after the tick callbacks, before any render work (the fake editor's hook)
    before_render: Callable[[], None] | None = None
    crash_after_frames: int | None = None
    crash: Callable[[], None] | None = None
    engine_version: str = "5.6.0-fake+++UE5+Release-5.6"
    #: console variables set with SystemLibrary.execute_console_command (name -> value text)
    cvars: dict[str, str] = field(default_factory=dict)


_STATE = _State()


#: Engine content of every install: an empty map (Engine/Content/Maps/Entry.umap)
_EMPTY_MAP = "/Engine/Maps/Entry.Entry"
_WORLD_DEPTH_MATERIAL = "/MovieRenderPipeline/Materials/MovieRenderQueue_WorldDepth.MovieRenderQueue_WorldDepth"


def _reset() -> _State:
    global _STATE
    _STATE = _State()
    _STATE.queue = MoviePipelineQueue()
    # Engine content every install has (what the install check uses): an empty map and the basic sphere.
    _add_asset(_EMPTY_MAP, World())
    _add_asset("/Engine/BasicShapes/Sphere.Sphere", StaticMesh())
    # MovieRenderPipeline plugin content (MoviePipelineDeferredPasses.cpp DefaultDepthAsset / DefaultMotionVectorsAsset)
    _add_asset(_WORLD_DEPTH_MATERIAL, Material(_output="SceneDepth"))
    _add_asset("/MovieRenderPipeline/Materials/MovieRenderQueue_MotionVectors.MovieRenderQueue_MotionVectors",
               Material(_output="MotionVectors"))
    return _STATE


def _emit(level: str, msg: str) -> None:
    _STATE.log.append((level, msg))
    if _STATE.log_sink is not None:
        _STATE.log_sink(level, msg)


def _add_asset(path: str, asset: Any) -> Any:
    asset._path = path
    _STATE.assets[path] = asset
    return asset


def _install() -> types.ModuleType:
    mod = sys.modules[__name__]
    sys.modules["unreal"] = mod
    return mod


# ------------------------------------------------------------------------------------------------
# core types
# ------------------------------------------------------------------------------------------------


def log(arg: Any) -> None:
    _emit("Display", str(arg))


def log_warning(arg: Any) -> None:
    _emit("Warning", str(arg))


def log_error(arg: Any) -> None:
    _emit("Error", str(arg))


def log_flush() -> None:
    pass


class _WrapperBase:
    pass


class Class(_WrapperBase):
    def __init__(self, py: type) -> None:
        self._py = py

    def get_name(self) -> str:
        return self._py.__name__


class Object(_WrapperBase):
    _path = ""

    def __init__(self, outer: Any = None, name: str = "None") -> None:
        self._name = name

    @classmethod
    def static_class(cls) -> Class:
        return Class(cls)

    @classmethod
    def cast(cls, object: Any) -> Any:
        if not isinstance(object, cls):
            raise TypeError(f"Cannot cast {type(object).__name__} to {cls.__name__}")
        return object

    def get_path_name(self) -> str:
        return self._path

    def get_name(self) -> str:
        return self._path.rsplit(".", 1)[-1] if self._path else self._name


class StructBase(_WrapperBase):
    pass


class EnumBase(_WrapperBase):
    def __init__(self, name: str) -> None:
        self._n = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._n}>"


def _enum(cls: type, *names: str) -> None:
    for n in names:
        setattr(cls, n, cls(n))


class MulticastDelegateBase(_WrapperBase):
    def __init__(self) -> None:
        self._callables: list[Callable[..., Any]] = []

    def add_callable_unique(self, callable: Callable[..., Any]) -> None:
        if callable not in self._callables:
            self._callables.append(callable)

    def broadcast(self, *args: Any) -> None:
        for c in list(self._callables):
            c(*args)


class Text(_WrapperBase):
    def __init__(self, value: str = "") -> None:
        self._v = value

    def __str__(self) -> str:
        return self._v


class Vector(StructBase):
    x: float
    y: float
    z: float

    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.x, self.y, self.z = float(x), float(y), float(z)


class Plane(Vector):
    w: float

    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0, w: float = 0.0) -> None:
        super().__init__(x, y, z)
        self.w = float(w)


class Rotator(StructBase):
    roll: float
    pitch: float
    yaw: float

    def __init__(self, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> None:
        self.roll, self.pitch, self.yaw = float(roll), float(pitch), float(yaw)


class Matrix(StructBase):
    x_plane: Plane
    y_plane: Plane
    z_plane: Plane
    w_plane: Plane

    def __init__(self, x_plane: Plane | None = None, y_plane: Plane | None = None,
                 z_plane: Plane | None = None, w_plane: Plane | None = None) -> None:
        self.x_plane = x_plane or Plane()
        self.y_plane = y_plane or Plane()
        self.z_plane = z_plane or Plane()
        self.w_plane = w_plane or Plane()

    def __str__(self) -> str:
        # Matrix.cpp, FMatrix::ToString: one Printf("[%g %g %g %g] ") per row M[0]..M[3]; C's %g keeps the sign of
        # a negative zero ("-0"), which is how the released camera files came to read "[-0 1 0 0]".
        return "".join("[%g %g %g %g] " % (p.x, p.y, p.z, p.w)  # noqa: UP031 - the engine's printf, verbatim
                       for p in (self.x_plane, self.y_plane, self.z_plane, self.w_plane))


def _rotator_quaternion(pitch: float, yaw: float, roll: float) -> tuple[float, float, float, float]:
    """UnrealMath.cpp, ``FRotator::Quaternion()`` (UE 5, the non-SIMD path): half-angle sines and cosines of the
    angles taken modulo 360 (FMath::Fmod keeps the sign of its first argument, as math.fmod does), then
    X = CR*SP*SY - SR*CP*CY, Y = -CR*SP*CY - SR*CP*SY, Z = CR*CP*SY - SR*SP*CY, W = CR*CP*CY + SR*SP*SY."""
    half = math.pi / 180.0 / 2.0
    sp, cp = math.sin(math.fmod(pitch, 360.0) * half), math.cos(math.fmod(pitch, 360.0) * half)
    sy, cy = math.sin(math.fmod(yaw, 360.0) * half), math.cos(math.fmod(yaw, 360.0) * half)
    sr, cr = math.sin(math.fmod(roll, 360.0) * half), math.cos(math.fmod(roll, 360.0) * half)
    return (cr * sp * sy - sr * cp * cy, -cr * sp * cy - sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


class Transform(StructBase):
    translation: Vector
    scale3d: Vector

    def __init__(self, location: Vector | None = None, rotation: Rotator | None = None,
                 scale: Vector | None = None) -> None:
        # An FTransform stores its rotation as a quaternion: the Python constructor takes a Rotator and converts
        # it with FRotator::Quaternion (TransformNonVectorized.h, the FTransform(FRotator, ...) constructor).
        self.translation = location or Vector()
        r = rotation or Rotator()
        self._quat = _rotator_quaternion(r.pitch, r.yaw, r.roll)
        self.scale3d = scale or Vector(1.0, 1.0, 1.0)

    def to_matrix(self) -> Matrix:
        # TransformNonVectorized.h, ``TTransform::ToMatrixWithScale``: the rotation part from the quaternion
        # (x2 = X + X, ..., M[0][0] = (1 - (yy2 + zz2)) * S.X, M[0][1] = (xy2 + wz2) * S.X, M[1][0] = (xy2 - wz2)
        # * S.Y, ...), row-vector convention (row 0 = the forward axis), the translation in row 3. The operations
        # are kept in the engine's order so that the signs of zeros come out as the engine's do.
        x, y, z, w = self._quat
        sx, sy, sz = self.scale3d.x, self.scale3d.y, self.scale3d.z
        x2, y2, z2 = x + x, y + y, z + z
        xx2, yy2, zz2 = x * x2, y * y2, z * z2
        yz2, wx2 = y * z2, w * x2
        xy2, wz2 = x * y2, w * z2
        xz2, wy2 = x * z2, w * y2
        t = self.translation
        return Matrix(Plane((1.0 - (yy2 + zz2)) * sx, (xy2 + wz2) * sx, (xz2 - wy2) * sx, 0.0),
                      Plane((xy2 - wz2) * sy, (1.0 - (xx2 + zz2)) * sy, (yz2 + wx2) * sy, 0.0),
                      Plane((xz2 + wy2) * sz, (yz2 - wx2) * sz, (1.0 - (xx2 + yy2)) * sz, 0.0),
                      Plane(t.x, t.y, t.z, 1.0))


class FrameNumber(StructBase):
    value: int

    def __init__(self, value: int = 0) -> None:
        self.value = int(value)


class FrameRate(StructBase):
    numerator: int
    denominator: int

    def __init__(self, numerator: int = 0, denominator: int = 0) -> None:
        self.numerator, self.denominator = int(numerator), int(denominator)


def _rate(r: FrameRate) -> Fraction:
    """FFrameRate as frames per second (FrameRate.h: Numerator / Denominator)."""
    return Fraction(r.numerator, r.denominator)


def _convert_frame_time(time: Fraction | int, source: FrameRate, dest: FrameRate) -> Fraction:
    """FrameRate.h ``ConvertFrameTime`` / ``FFrameRate::TransformTime``: a time in ``source`` frames as
    a (sub-frame exact) time in ``dest`` frames. Callers floor/round it as the engine does."""
    return Fraction(time) * _rate(dest) / _rate(source)


def _floor_to_frame(t: Fraction) -> int:
    return math.floor(t)  # FFrameTime::FloorToFrame


def _round_to_frame(t: Fraction) -> int:
    return math.floor(t + Fraction(1, 2))  # FFrameTime::RoundToFrame (half rounds up)


#: LevelSequence.cpp: LevelSequence.DefaultTickResolution / DefaultDisplayRate console defaults.
_DEFAULT_TICK_RESOLUTION = (24000, 1)
_DEFAULT_DISPLAY_RATE = (30, 1)
#: SequencerScriptingRange.h: ``FFrameRate InternalRate;`` is default-constructed, FFrameRate() is 60000/1
#: (FrameRate.h), and it is not a UPROPERTY Python can set.
_SCRIPTING_RANGE_DEFAULT_RATE = (60000, 1)


class SoftObjectPath(StructBase):
    def __init__(self, path_string: str = "") -> None:
        self._p = path_string


class DirectoryPath(StructBase):
    path: str

    def __init__(self, path: str = "") -> None:
        self.path = path


class IntPoint(StructBase):
    x: int
    y: int

    def __init__(self, x: int = 0, y: int = 0) -> None:
        self.x, self.y = int(x), int(y)


class SequencerScriptingRange(StructBase):
    has_start_value: bool
    has_end_value: bool
    inclusive_start: int
    exclusive_end: int

    def __init__(self, has_start_value: bool = False, has_end_value: bool = False,
                 inclusive_start: int = 0, exclusive_end: int = 0) -> None:
        self.has_start_value, self.has_end_value = has_start_value, has_end_value
        self.inclusive_start, self.exclusive_end = inclusive_start, exclusive_end
        self._internal_rate = FrameRate(*_SCRIPTING_RANGE_DEFAULT_RATE)

    @classmethod
    def _from_native(cls, start: int, end: int, input_rate: FrameRate) -> SequencerScriptingRange:
        """SequencerScriptingRange.h ``FromNative``: the range keeps the rate its frames are in."""
        r = cls(has_start_value=True, has_end_value=True, inclusive_start=start, exclusive_end=end)
        r._internal_rate = input_rate
        return r

    def _to_native(self, target_rate: FrameRate) -> tuple[int | None, int | None]:
        """SequencerScriptingRange.h ``ToNative``: each bound ConvertFrameTime(InternalRate -> target)
        then FloorToFrame."""
        lo = (_floor_to_frame(_convert_frame_time(self.inclusive_start, self._internal_rate, target_rate))
              if self.has_start_value else None)
        hi = (_floor_to_frame(_convert_frame_time(self.exclusive_end, self._internal_rate, target_rate))
              if self.has_end_value else None)
        return lo, hi


class CameraFocusMethod(EnumBase):
    pass


_enum(CameraFocusMethod, "DO_NOT_OVERRIDE", "MANUAL", "TRACKING", "DISABLE")


class MovieSceneKeyInterpolation(EnumBase):
    pass


_enum(MovieSceneKeyInterpolation, "AUTO", "USER", "BREAK", "LINEAR", "CONSTANT")


class CameraFilmbackSettings(StructBase):
    sensor_width: float
    sensor_height: float

    def __init__(self, sensor_width: float = 24.89, sensor_height: float = 18.67) -> None:
        self.sensor_width, self.sensor_height = sensor_width, sensor_height


class CameraTrackingFocusSettings(StructBase):
    actor_to_track: Any
    relative_offset: Vector

    def __init__(self, actor_to_track: Any = None, relative_offset: Vector | None = None) -> None:
        self.actor_to_track, self.relative_offset = actor_to_track, relative_offset or Vector()


class CameraFocusSettings(StructBase):
    focus_method: Any
    tracking_focus_settings: CameraTrackingFocusSettings | None

    def __init__(self, focus_method: CameraFocusMethod | None = None,
                 tracking_focus_settings: CameraTrackingFocusSettings | None = None) -> None:
        self.focus_method = focus_method or CameraFocusMethod.DO_NOT_OVERRIDE  # type: ignore[attr-defined]
        self.tracking_focus_settings = tracking_focus_settings


class SystemLibrary(Object):
    @classmethod
    def get_engine_version(cls) -> str:
        return _STATE.engine_version

    @classmethod
    def quit_editor(cls) -> None:
        _STATE.quit_requested = True

    @classmethod
    def execute_console_command(cls, world_context_object: Any, command: str, specific_player: Any = None) -> None:
        name, _, value = command.strip().partition(" ")
        if not value:
            raise AssertionError(f"the fake models setting console variables only, got {command!r}")
        _STATE.cvars[name] = value.strip()


# ------------------------------------------------------------------------------------------------
# assets, actors, subsystems
# ------------------------------------------------------------------------------------------------


class World(Object):
    pass


class SkeletalMesh(Object):
    pass


class AnimSequence(Object):
    pass


class Actor(Object):
    def __init__(self) -> None:
        super().__init__()
        self._label = ""
        self._location: Vector | None = None
        self._rotation: Rotator | None = None

    def set_actor_label(self, new_actor_label: str, mark_dirty: bool = True) -> None:
        self._label = new_actor_label
        self._path = f"/Temp/PersistentLevel.{new_actor_label}"

    def set_actor_scale3d(self, new_scale3d: Vector) -> None:
        self._scale = new_scale3d


class StaticMesh(Object):
    pass


class StaticMeshComponent(Object):
    def __init__(self) -> None:
        super().__init__()
        self._mesh: StaticMesh | None = None

    def set_static_mesh(self, new_mesh: StaticMesh) -> bool:
        self._mesh = new_mesh
        return True


class StaticMeshActor(Actor):
    def __init__(self) -> None:
        super().__init__()
        self._component = StaticMeshComponent()

    @property
    def static_mesh_component(self) -> StaticMeshComponent:
        return self._component


class DirectionalLight(Actor):
    pass


class SkeletalMeshComponent(Object):
    def __init__(self) -> None:
        super().__init__()
        self._mesh: SkeletalMesh | None = None
        # PrimitiveComponent.h: bRenderCustomDepth = false, CustomDepthStencilValue = 0 by default
        self._render_custom_depth = False
        self._stencil = 0

    def set_skinned_asset_and_update(self, new_mesh: Any, reinit_pose: bool = True) -> None:
        self._mesh = new_mesh

    def set_render_custom_depth(self, value: bool) -> None:
        self._render_custom_depth = bool(value)

    def set_custom_depth_stencil_value(self, value: int) -> None:
        # PrimitiveComponent.cpp SetCustomDepthStencilValue: FMath::Clamp(Value, 0, 255)
        self._stencil = min(max(int(value), 0), 255)


class MaterialInterface(Object):
    pass


class Material(MaterialInterface):
    """A post-process material; ``_output`` is what its emissive colour shows (the fake's model of the graph):
    ``SceneDepth`` or ``CustomStencil`` (a SceneTexture node of that id, as the engine's WorldDepth material and the
    project's mask material of docs/unreal.md hold), or anything else (rendered as 0)."""

    def __init__(self, _output: str = "") -> None:
        super().__init__()
        self._output = _output


class SkeletalMeshActor(Actor):
    def __init__(self) -> None:
        super().__init__()
        self._component = SkeletalMeshComponent()

    @property
    def skeletal_mesh_component(self) -> SkeletalMeshComponent:
        return self._component


class CameraLensSettings(StructBase):
    min_focal_length: float
    max_focal_length: float
    min_f_stop: float
    max_f_stop: float

    def __init__(self, min_focal_length: float = 50.0, max_focal_length: float = 50.0, min_f_stop: float = 2.0,
                 max_f_stop: float = 2.0) -> None:
        self.min_focal_length, self.max_focal_length = min_focal_length, max_focal_length
        self.min_f_stop, self.max_f_stop = min_f_stop, max_f_stop


class CineCameraComponent(Object):
    """CineCameraComponent.cpp, UCineCameraComponent::RecalcDerivedData: ``CurrentFocalLength`` and
    ``CurrentAperture`` are clamped to ``LensSettings`` [MinFocalLength, MaxFocalLength] / [MinFStop, MaxFStop]
    whenever derived data is recomputed (every tick and edit), so what is read back is the clamped value. The
    default lens modelled here is a zoom of 12-1000 mm, f/2.8-f/22: a lens the engine may be configured with
    (DefaultLensPresets in the engine's config), chosen so that f/2.4 does not survive it unless the script sets
    the lens limits itself."""

    filmback: CameraFilmbackSettings = CameraFilmbackSettings()
    focus_settings: CameraFocusSettings | None = None

    def __init__(self, outer: Any = None, name: str = "None") -> None:
        super().__init__(outer, name)
        self.lens_settings = CameraLensSettings(min_focal_length=12.0, max_focal_length=1000.0,
                                                min_f_stop=2.8, max_f_stop=22.0)
        self._focal = 35.0
        self._aperture = 2.8

    @property
    def current_focal_length(self) -> float:
        lens = self.lens_settings
        return min(max(self._focal, lens.min_focal_length), lens.max_focal_length)

    @current_focal_length.setter
    def current_focal_length(self, value: float) -> None:
        self._focal = float(value)

    @property
    def current_aperture(self) -> float:
        lens = self.lens_settings
        return min(max(self._aperture, lens.min_f_stop), lens.max_f_stop)

    @current_aperture.setter
    def current_aperture(self, value: float) -> None:
        self._aperture = float(value)


class CineCameraActor(Actor):
    def __init__(self) -> None:
        super().__init__()
        self._component = CineCameraComponent()

    def get_cine_camera_component(self) -> CineCameraComponent:
        return self._component


class EditorSubsystem(Object):
    pass


class LevelEditorSubsystem(EditorSubsystem):
    def load_level(self, asset_path: str) -> bool:
        # The engine takes a package path (/Game/Maps/Town); the map asset is /Game/Maps/Town.Town.
        if "." in asset_path:
            raise AssertionError(f"load_level takes a package path, got object path {asset_path!r}")
        obj = f"{asset_path}.{asset_path.rsplit('/', 1)[-1]}"
        if obj not in _STATE.assets:
            return False
        _STATE.loaded_map = obj
        _STATE.map_loads += 1
        return True


class UnrealEditorSubsystem(EditorSubsystem):
    def get_editor_world(self) -> World | None:
        return _STATE.assets.get(_STATE.loaded_map or "")


class EditorActorSubsystem(EditorSubsystem):
    def spawn_actor_from_class(self, actor_class: Class, location: Vector, rotation: Rotator | None = None,
                               transient: bool = False) -> Actor:
        actor = actor_class._py()
        actor._location, actor._rotation = location, rotation or Rotator()
        _STATE.actors.append(actor)
        return actor

    def destroy_actor(self, actor_to_destroy: Actor) -> bool:
        _STATE.destroyed.append(actor_to_destroy)
        return True


def get_editor_subsystem(subsystem: Any) -> Any:
    return subsystem()


class EditorAssetLibrary(Object):
    @classmethod
    def does_asset_exist(cls, asset_path: str) -> bool:
        return asset_path in _STATE.assets

    @classmethod
    def load_asset(cls, asset_path: str) -> Any:
        return _STATE.assets.get(asset_path)

    @classmethod
    def does_directory_exist(cls, directory_path: str) -> bool:
        return directory_path in _STATE.directories

    @classmethod
    def delete_directory(cls, directory_path: str) -> bool:
        _STATE.directories.discard(directory_path)
        for p in [p for p in _STATE.sequences if p.startswith(directory_path + "/")]:
            del _STATE.sequences[p]
        return True


class Factory(Object):
    pass


class LevelSequenceFactoryNew(Factory):
    pass


class AssetTools(_WrapperBase):
    def create_asset(self, asset_name: str, package_path: str, asset_class: Class, factory: Factory,
                     calling_context: str = "") -> Any:
        asset = asset_class._py()
        asset._path = f"{package_path}/{asset_name}.{asset_name}"
        _STATE.directories.add(package_path)
        if isinstance(asset, LevelSequence):
            _STATE.sequences[asset._path] = asset
        return asset


class AssetToolsHelpers(Object):
    @classmethod
    def get_asset_tools(cls) -> AssetTools:
        return AssetTools()


# ------------------------------------------------------------------------------------------------
# sequencer
# ------------------------------------------------------------------------------------------------


class MovieSceneObjectBindingID(StructBase):
    def __init__(self) -> None:
        self._binding: MovieSceneBindingProxy | None = None


class MovieSceneScriptingChannel(Object):
    def __init__(self, name: str, section: MovieSceneSection | None = None) -> None:
        super().__init__()
        self._channel_name = name
        self._section = section

    @property
    def channel_name(self) -> str:
        return self._channel_name


class MovieSceneScriptingDoubleChannel(MovieSceneScriptingChannel):
    def __init__(self, name: str, section: MovieSceneSection | None = None) -> None:
        super().__init__(name, section)
        #: (time in ticks of the sequence's tick resolution, value, interpolation), as the engine stores keys
        self._keys: list[tuple[int, float, Any]] = []
        self._default: float | None = None

    def add_key(self, time: FrameNumber, new_value: float, sub_frame: float = 0.0, time_unit: Any = None,
                interpolation: Any = None) -> None:
        if time_unit is not None or sub_frame:
            raise AssertionError("the script must key whole display-rate frames")
        interp = interpolation or MovieSceneKeyInterpolation.AUTO  # type: ignore[attr-defined]
        # MovieSceneScriptingChannel.h AddKeyInChannel: a DisplayRate time is transformed to the tick
        # resolution (FFrameRate::TransformTime) and stored as its frame number.
        seq = self._sequence()
        tick = _floor_to_frame(_convert_frame_time(time.value, seq._display_rate, seq._tick_resolution))
        self._keys.append((tick, float(new_value), interp))
        self._keys.sort(key=lambda k: k[0])

    def set_default(self, default_value: float) -> None:
        self._default = float(default_value)

    def _value_at(self, t: float) -> float:
        if not self._keys:
            return self._default or 0.0
        if t <= self._keys[0][0]:
            return self._keys[0][1]
        for (t0, v0, interp), (t1, v1, _) in zip(self._keys, self._keys[1:], strict=False):
            if t0 <= t < t1:
                if interp is MovieSceneKeyInterpolation.CONSTANT:  # type: ignore[attr-defined]
                    return v0
                if interp is MovieSceneKeyInterpolation.LINEAR:  # type: ignore[attr-defined]
                    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
                raise AssertionError(f"unsupported interpolation {interp} (auto tangents overshoot)")
        return self._keys[-1][1]

    def _sequence(self) -> LevelSequence:
        seq = self._section._sequence if self._section is not None else None
        if seq is None:
            raise AssertionError("channel is not in a sequence's section")
        return seq

    def evaluate_keys(self, range: SequencerScriptingRange, frame_rate: FrameRate) -> list[float]:
        # MovieSceneScriptingChannel.h EvaluateKeysInChannel: the range goes ToNative(TickResolution);
        # from its discrete inclusive lower to exclusive upper bound it steps by
        # Interval = TransformTime(1, FrameRate, TickResolution), snapping each time to FrameRate
        # (FFrameRate::Snap: to FrameRate, RoundToFrame, back) and flooring it to a tick.
        resolution = self._sequence()._tick_resolution
        lo, hi = range._to_native(resolution)
        if lo is None or hi is None:
            # the engine reports this with FFrame::KismetExecutionMessage and returns no values
            _emit("Error", "Unbounded range passed to evaluate keys.")
            return []
        interval = _convert_frame_time(1, frame_rate, resolution)
        out: list[float] = []
        t = Fraction(lo)
        while t < hi:
            snapped = _convert_frame_time(_round_to_frame(_convert_frame_time(t, resolution, frame_rate)),
                                          frame_rate, resolution)
            out.append(self._value_at(_floor_to_frame(snapped)))
            t += interval
        return out


class MovieSceneSection(Object):
    def __init__(self) -> None:
        super().__init__()
        #: as given to set_range: display-rate frames (MovieSceneSectionExtensions.cpp SetRange converts
        #: them with ConvertFrameTime(DisplayRate -> TickResolution))
        self._range: tuple[int, int] | None = None
        self._channels: list[MovieSceneScriptingChannel] = []
        self._sequence: LevelSequence | None = None

    def set_range(self, start_frame: int, end_frame: int) -> None:
        self._range = (start_frame, end_frame)

    def get_channels_by_type(self, channel_type: Class) -> list[MovieSceneScriptingChannel]:
        return [c for c in self._channels if isinstance(c, channel_type._py)]


class MovieScene3DTransformSection(MovieSceneSection):
    def __init__(self) -> None:
        super().__init__()
        self._channels = [MovieSceneScriptingDoubleChannel(f"{a}.{x}", self)
                          for a in ("Location", "Rotation", "Scale") for x in "XYZ"]


class MovieSceneSkeletalAnimationParams(StructBase):
    animation: AnimSequence | None
    first_loop_start_frame_offset: FrameNumber

    def __init__(self) -> None:
        self.animation: AnimSequence | None = None
        self.first_loop_start_frame_offset = FrameNumber(0)


class MovieSceneSkeletalAnimationSection(MovieSceneSection):
    def __init__(self) -> None:
        super().__init__()
        self._params = MovieSceneSkeletalAnimationParams()

    @property
    def params(self) -> MovieSceneSkeletalAnimationParams:
        p = MovieSceneSkeletalAnimationParams()  # struct properties return copies, as in UE
        p.animation = self._params.animation
        p.first_loop_start_frame_offset = self._params.first_loop_start_frame_offset
        return p

    @params.setter
    def params(self, value: MovieSceneSkeletalAnimationParams) -> None:
        self._params = value


class MovieSceneCameraCutSection(MovieSceneSection):
    def __init__(self) -> None:
        super().__init__()
        self._camera: MovieSceneObjectBindingID | None = None

    def set_camera_binding_id(self, camera_binding_id: MovieSceneObjectBindingID) -> None:
        self._camera = camera_binding_id


class MovieSceneTrack(Object):
    _section_type: type = MovieSceneSection

    def __init__(self) -> None:
        super().__init__()
        self._sections: list[MovieSceneSection] = []
        self._sequence: LevelSequence | None = None

    def add_section(self) -> MovieSceneSection:
        s = self._section_type()
        s._sequence = self._sequence
        self._sections.append(s)
        return s


class MovieScene3DTransformTrack(MovieSceneTrack):
    _section_type = MovieScene3DTransformSection


class MovieSceneSkeletalAnimationTrack(MovieSceneTrack):
    _section_type = MovieSceneSkeletalAnimationSection


class MovieSceneCameraCutTrack(MovieSceneTrack):
    _section_type = MovieSceneCameraCutSection


class MovieSceneBindingProxy(StructBase):
    def __init__(self, obj: Any = None, sequence: LevelSequence | None = None) -> None:
        self._object = obj
        self._tracks: list[MovieSceneTrack] = []
        self._sequence = sequence

    def add_track(self, track_type: Class) -> MovieSceneTrack:
        t = track_type._py()
        t._sequence = self._sequence
        self._tracks.append(t)
        return t


class LevelSequence(Object):
    def __init__(self) -> None:
        super().__init__()
        self._tick_resolution = FrameRate(*_DEFAULT_TICK_RESOLUTION)
        self._display_rate = FrameRate(*_DEFAULT_DISPLAY_RATE)
        self._start: int | None = None
        self._end: int | None = None
        self._bindings: list[MovieSceneBindingProxy] = []
        self._tracks: list[MovieSceneTrack] = []

    def set_tick_resolution(self, tick_resolution: FrameRate) -> None:
        self._tick_resolution = tick_resolution

    def set_display_rate(self, display_rate: FrameRate) -> None:
        self._display_rate = display_rate

    def set_playback_start(self, start_frame: int) -> None:
        self._start = start_frame

    def set_playback_end(self, end_frame: int) -> None:
        self._end = end_frame

    def add_possessable(self, object_to_possess: Object) -> MovieSceneBindingProxy:
        b = MovieSceneBindingProxy(object_to_possess, self)
        self._bindings.append(b)
        return b

    def add_track(self, track_type: Class) -> MovieSceneTrack:
        t = track_type._py()
        t._sequence = self
        self._tracks.append(t)
        return t

    def make_range(self, start_frame: int, duration: int) -> SequencerScriptingRange:
        # MovieSceneSequenceExtensions.cpp MakeRange: FromNative([start, start + duration), DisplayRate).
        return SequencerScriptingRange._from_native(start_frame, start_frame + duration, self._display_rate)

    def get_binding_id(self, binding: MovieSceneBindingProxy) -> MovieSceneObjectBindingID:
        if binding not in self._bindings:
            raise ValueError("binding does not belong to this sequence")
        bid = MovieSceneObjectBindingID()
        bid._binding = binding
        return bid

    # -- what the engine would evaluate (helpers for the fake renderer and the tests) --
    def _cut_camera(self) -> MovieSceneBindingProxy:
        cuts = [s for t in self._tracks if isinstance(t, MovieSceneCameraCutTrack) for s in t._sections
                if isinstance(s, MovieSceneCameraCutSection)]
        if len(cuts) != 1 or cuts[0]._camera is None or cuts[0]._camera._binding is None:
            raise AssertionError(f"{self._path}: expected exactly one bound camera cut, found {len(cuts)}")
        return cuts[0]._camera._binding

    def _camera_pose(self, binding: MovieSceneBindingProxy, frame: int) -> tuple[list[float], list[float]]:
        sections = [s for t in binding._tracks if isinstance(t, MovieScene3DTransformTrack) for s in t._sections]
        ch = {c.channel_name: c for c in sections[0]._channels}
        tick = _floor_to_frame(_convert_frame_time(frame, self._display_rate, self._tick_resolution))
        v = {n: c._value_at(tick) for n, c in ch.items()}  # type: ignore[attr-defined]
        loc = [v["Location.X"], v["Location.Y"], v["Location.Z"]]
        return loc, [v["Rotation.Y"], v["Rotation.Z"], v["Rotation.X"]]  # pitch, yaw, roll


# ------------------------------------------------------------------------------------------------
# Movie Render Queue
# ------------------------------------------------------------------------------------------------


class AntiAliasingMethod(EnumBase):
    pass


_enum(AntiAliasingMethod, "AAM_NONE", "AAM_FXAA", "AAM_TEMPORAL_AA", "AAM_MSAA", "AAM_TSR")


class MoviePipelineSetting(Object):
    pass


class MoviePipelineOutputSetting(MoviePipelineSetting):
    output_directory: DirectoryPath = DirectoryPath()
    file_name_format: str = "{sequence_name}.{frame_number}"
    output_resolution: IntPoint = IntPoint(1920, 1080)
    use_custom_playback_range: bool = False
    custom_start_frame: int = 0
    custom_end_frame: int = 0
    use_custom_frame_rate: bool = False
    output_frame_rate: FrameRate = FrameRate(24, 1)
    zero_pad_frame_numbers: int = 4
    frame_number_offset: int = 0
    handle_frame_count: int = 0
    override_existing_output: bool = True


class MoviePipelineRenderPass(MoviePipelineSetting):
    pass


class MoviePipelineImagePassBase(MoviePipelineRenderPass):
    pass


class MoviePipelinePostProcessPass(StructBase):
    enabled: bool
    material: Any

    def __init__(self, enabled: bool = False, material: Any = None) -> None:
        self.enabled, self.material = enabled, material


class MoviePipelineDeferredPassBase(MoviePipelineImagePassBase):
    additional_post_process_materials: list[MoviePipelinePostProcessPass]
    use32_bit_post_process_materials: bool = False
    render_main_pass: bool = True

    def __init__(self) -> None:
        super().__init__()
        # MoviePipelineDeferredPasses.cpp, the constructor: pre-seeded with the engine's WorldDepth and MotionVectors
        # materials, both disabled
        self.additional_post_process_materials = [
            MoviePipelinePostProcessPass(False, _STATE.assets.get(_WORLD_DEPTH_MATERIAL)),
            MoviePipelinePostProcessPass(False, _STATE.assets.get(
                "/MovieRenderPipeline/Materials/MovieRenderQueue_MotionVectors.MovieRenderQueue_MotionVectors"))]


class MoviePipelineOutputBase(MoviePipelineSetting):
    pass


class MoviePipelineImageSequenceOutputBase(MoviePipelineOutputBase):
    pass


class MoviePipelineImageSequenceOutput_PNG(MoviePipelineImageSequenceOutputBase):
    pass


class EXRCompressionFormat(EnumBase):
    pass


_enum(EXRCompressionFormat, "NONE", "PIZ", "ZIP")


class MoviePipelineImageSequenceOutput_EXR(MoviePipelineImageSequenceOutputBase):
    # MoviePipelineEXROutput.h, the constructor: Compression = PIZ, bMultilayer = true
    compression: EXRCompressionFormat = EXRCompressionFormat.PIZ  # type: ignore[attr-defined]
    multilayer: bool = True


class MoviePipelineAntiAliasingSetting(MoviePipelineSetting):
    spatial_sample_count: int = 1
    temporal_sample_count: int = 1
    override_anti_aliasing: bool = False
    anti_aliasing_method: AntiAliasingMethod | None = None
    engine_warm_up_count: int = 0
    render_warm_up_count: int = 32
    use_camera_cut_for_warm_up: bool = False


class MoviePipelineCameraSetting(MoviePipelineSetting):
    render_all_cameras: bool = False
    overscan_percentage: float = 0.0
    override_camera_overscan: bool = False


class MoviePipelineConfigBase(Object):
    def __init__(self) -> None:
        super().__init__()
        self._settings: list[MoviePipelineSetting] = []

    def find_or_add_setting_by_class(self, class_: Class, include_disabled_settings: bool = False,
                                     exact_match: bool = False) -> MoviePipelineSetting:
        for s in self._settings:
            if type(s) is class_._py:
                return s
        s = class_._py()
        self._settings.append(s)
        return s


class MoviePipelinePrimaryConfig(MoviePipelineConfigBase):
    pass


class MoviePipelineExecutorJob(Object):
    job_name: str = ""
    map: SoftObjectPath = SoftObjectPath()
    sequence: SoftObjectPath = SoftObjectPath()

    def __init__(self) -> None:
        super().__init__()
        self._config = MoviePipelinePrimaryConfig()

    def get_configuration(self) -> MoviePipelinePrimaryConfig:
        return self._config


class MoviePipelineQueue(Object):
    def __init__(self) -> None:
        super().__init__()
        self._jobs: list[MoviePipelineExecutorJob] = []

    def delete_all_jobs(self) -> None:
        self._jobs.clear()

    def allocate_new_job(self, job_type: Class | None = None) -> MoviePipelineExecutorJob:
        job = (job_type._py if job_type else MoviePipelineExecutorJob)()
        self._jobs.append(job)
        return job

    def get_jobs(self) -> list[MoviePipelineExecutorJob]:
        return list(self._jobs)


class MoviePipelineBase(Object):
    pass


class MoviePipeline(MoviePipelineBase):
    pass


class MoviePipelineOutputData(StructBase):
    job: MoviePipelineExecutorJob
    success: bool
    pipeline: MoviePipelineBase

    def __init__(self, job: MoviePipelineExecutorJob, success: bool) -> None:
        self.job, self.success, self.pipeline = job, success, MoviePipeline()


class OnMoviePipelineExecutorFinished(MulticastDelegateBase):
    pass


class OnMoviePipelineExecutorErrored(MulticastDelegateBase):
    pass


class MoviePipelineWorkFinished(MulticastDelegateBase):
    pass


class MoviePipelineExecutorBase(Object):
    on_executor_finished_delegate: OnMoviePipelineExecutorFinished
    on_executor_errored_delegate: OnMoviePipelineExecutorErrored

    def __init__(self) -> None:
        super().__init__()
        self.on_executor_finished_delegate = OnMoviePipelineExecutorFinished()
        self.on_executor_errored_delegate = OnMoviePipelineExecutorErrored()


class MoviePipelineLinearExecutorBase(MoviePipelineExecutorBase):
    pass


class MoviePipelinePIEExecutor(MoviePipelineLinearExecutorBase):
    on_individual_job_work_finished_delegate: MoviePipelineWorkFinished

    def __init__(self) -> None:
        super().__init__()
        self.on_individual_job_work_finished_delegate = MoviePipelineWorkFinished()


class MoviePipelineQueueSubsystem(EditorSubsystem):
    def get_queue(self) -> MoviePipelineQueue:
        return _STATE.queue

    def render_queue_with_executor_instance(self, executor: MoviePipelineExecutorBase) -> None:
        # Like the engine: returns at once; the work happens on later editor ticks (_tick).
        _STATE.pending.append(executor)


def _frame_image(cam_index: int, frame: int, width: int, height: int) -> np.ndarray:
    """An RGB image that encodes (camera, frame): left half camera, right half frame, and a ramp."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (40 + 20 * cam_index) % 256
    img[:, width // 2 :] = (10 + 7 * frame) % 256
    img[: height // 4, :, 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return img


#: /Engine/BasicShapes/Sphere is 100 cm across at scale 1.
_SPHERE_RADIUS_CM = 50.0


def _view(camera: Any, loc: list[float], pyr: list[float],
          width: int) -> tuple[list[tuple[float, float, float]], float]:
    """The camera's view axes (rows of its rotation matrix: forward, right, up) and focal length in pixels."""
    comp = camera.get_cine_camera_component()
    fov = 2.0 * math.atan(comp.filmback.sensor_width / (2.0 * comp.current_focal_length))
    f_px = (width / 2.0) / math.tan(fov / 2.0)
    m = Transform(location=Vector(*loc), rotation=Rotator(roll=pyr[2], pitch=pyr[0], yaw=pyr[1])).to_matrix()
    return [(p.x, p.y, p.z) for p in (m.x_plane, m.y_plane, m.z_plane)], f_px


#: What a non-empty map holds in the fake's depth/stencil model: a ground plane at world z = 0, and the character
#: (a SkeletalMeshActor) as an upright capsule of this radius and height standing on its location.
_CHARACTER_RADIUS_CM = 30.0
_CHARACTER_HEIGHT_CM = 180.0
#: SceneDepth where no surface is hit (the sky): the engine's reversed, infinite far plane makes it huge.
_SKY_DEPTH_CM = 1.0e9


def _scene_buffers(camera: Any, loc: list[float], pyr: list[float], width: int,
                   height: int) -> tuple[np.ndarray, np.ndarray]:
    """(SceneDepth, CustomStencil) per pixel: SceneDepth is the view-space depth along the camera's forward axis in cm
    (Common.ush ConvertFromDeviceZ: the linear view-space Z, i.e. planar depth, not the distance along the ray);
    CustomStencil is the character's stencil where it is the nearest surface, if it renders custom depth and
    r.CustomDepth is 3 (stencil buffer enabled), else 0. Pixel centres as in :func:`_draw_spheres`."""
    axes, f_px = _view(camera, loc, pyr, width)
    fwd, right, up = (np.asarray(a) for a in axes)
    a = (np.arange(width) - (width / 2.0 - 0.5)) / f_px
    b = -(np.arange(height) - (height / 2.0 - 0.5)) / f_px
    d = fwd[None, None, :] + a[None, :, None] * right[None, None, :] + b[:, None, None] * up[None, None, :]  # (H, W, 3)
    o = np.asarray(loc, dtype=np.float64)
    # ray o + t d with the forward component of d equal to 1: t is the planar depth
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)
    t_ground = np.where(t_ground > 0, t_ground, np.inf)
    t_char = np.full((height, width), np.inf)
    stencil_value = 0
    if _STATE.loaded_map == _EMPTY_MAP:
        t_ground[:] = np.inf
    for actor in _STATE.actors:
        if not isinstance(actor, SkeletalMeshActor) or actor in _STATE.destroyed or actor._location is None:
            continue
        c = np.array([actor._location.x, actor._location.y, actor._location.z])
        # the ray against the infinite vertical cylinder around the character's axis (xy plane), then its height
        px, py = o[0] - c[0], o[1] - c[1]
        qa = d[..., 0] ** 2 + d[..., 1] ** 2
        qb = 2.0 * (px * d[..., 0] + py * d[..., 1])
        qc = px * px + py * py - _CHARACTER_RADIUS_CM ** 2
        disc = qb * qb - 4.0 * qa * qc
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (-qb - np.sqrt(disc)) / (2.0 * qa)
        z = o[2] + t * d[..., 2]
        hit = (disc >= 0) & (t > 0) & (z >= c[2]) & (z <= c[2] + _CHARACTER_HEIGHT_CM)
        t_char = np.where(hit & (t < t_char), t, t_char)
        comp = actor._component
        if comp._render_custom_depth and _STATE.cvars.get("r.CustomDepth") == "3":
            stencil_value = comp._stencil
    depth = np.minimum(t_ground, t_char)
    stencil = np.where(np.isfinite(t_char) & (t_char <= t_ground), float(stencil_value), 0.0)
    return np.where(np.isfinite(depth), depth, _SKY_DEPTH_CM), stencil


_EXR_COMPRESSION = {"NONE": 0, "ZIP": 3, "PIZ": 4}  # OpenEXR's Compression enum (ImfCompression.h)


def _write_exr(path: str, layers: list[tuple[str, np.ndarray, bool]], compression: str) -> None:
    """A scanline OpenEXR file as Imf::OutputFile writes it (the OpenEXR file layout: magic, version 2, header
    attributes, a line offset table, one chunk per scanline with the channels in name order). ``layers`` are
    (name, (H, W, 4) RGBA, 32-bit) like MoviePipelineEXROutput.cpp's task: the first layer is unnamed, the others are
    "<layer>.R" etc.; 8/16-bit data is HALF, 32-bit FLOAT. Only uncompressed data is modelled byte for byte: for PIZ
    or ZIP the header says so and each line is zlib-deflated (no reader that refuses compressed files reads it)."""
    import struct
    import zlib

    h, w = layers[0][1].shape[:2]
    chans: list[tuple[str, np.ndarray]] = []
    for name, rgba, full in layers:
        for i, ch in enumerate("RGBA"):
            chans.append((f"{name}.{ch}" if name else ch, rgba[..., i].astype("<f4" if full else "<f2")))
    chans.sort(key=lambda c: c[0])

    def attr(name: str, kind: str, data: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(data)) + data

    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2 if a.dtype.itemsize == 4 else 1, 0, 1, 1)
                      for n, a in chans) + b"\0"
    box = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    header = (struct.pack("<ii", 20000630, 2) + attr("channels", "chlist", chlist)
              + attr("compression", "compression", bytes([_EXR_COMPRESSION[compression]]))
              + attr("dataWindow", "box2i", box) + attr("displayWindow", "box2i", box)
              + attr("lineOrder", "lineOrder", b"\0") + attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
              + attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
              + attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0")
    chunks = []
    for y in range(h):
        data = b"".join(a[y].tobytes() for _, a in chans)
        if compression != "NONE":
            data = zlib.compress(data)
        chunks.append(struct.pack("<ii", y, len(data)) + data)
    offsets, pos = [], len(header) + 8 * h
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    with open(path, "wb") as fh:
        fh.write(header + struct.pack(f"<{h}Q", *offsets) + b"".join(chunks))


def _draw_spheres(img: np.ndarray, camera: Any, loc: list[float], pyr: list[float]) -> None:
    """Draw every spawned, not destroyed sphere StaticMeshActor as a white disc where the engine's camera sees it.

    The camera model, from the engine on its own: the view axes are the rows of the camera's rotation matrix
    (X forward, Y right, Z up; ``Transform.to_matrix`` above); a CineCamera's horizontal field of view is
    2 atan(SensorWidth / (2 FocalLength)) (CineCameraComponent.cpp, GetHorizontalFieldOfView), spanning the
    output width with square pixels; image y grows downwards."""
    import cv2

    h, w = img.shape[:2]
    axes, f_px = _view(camera, loc, pyr, w)
    for actor in _STATE.actors:
        if not isinstance(actor, StaticMeshActor) or actor in _STATE.destroyed or actor._location is None:
            continue
        if not isinstance(actor._component._mesh, StaticMesh) or actor._component._mesh._path != \
                "/Engine/BasicShapes/Sphere.Sphere":
            continue
        d = [actor._location.x - loc[0], actor._location.y - loc[1], actor._location.z - loc[2]]
        x, y, z = (sum(a * b for a, b in zip(ax, d, strict=True)) for ax in axes)
        if x <= 1.0:
            continue
        radius_cm = _SPHERE_RADIUS_CM * getattr(actor, "_scale", Vector(1.0, 1.0, 1.0)).x
        # the view maps normalised device coordinates [-1, 1] onto the pixel edges [0, W]; pixel i's centre is at
        # i + 0.5 of that, so in pixel-index coordinates (cv2's) the image centre is W/2 - 0.5
        u, v = w / 2.0 - 0.5 + f_px * y / x, h / 2.0 - 0.5 - f_px * z / x
        r = max(1, int(round(f_px * radius_cm / x)))
        # subpixel centre: cv2 draws with 8 fractional bits
        cv2.circle(img, (int(round(u * 256)), int(round(v * 256))), r * 256, (255, 255, 255), -1, cv2.LINE_AA, 8)


def _render_job(job: MoviePipelineExecutorJob, executor: MoviePipelineExecutorBase, cam_index: int) -> bool:
    seq = _STATE.sequences.get(job.sequence._p)
    if seq is None:
        executor.on_executor_errored_delegate.broadcast(executor, MoviePipeline(), True,
                                                        Text(f"sequence {job.sequence._p} not found"))
        return False
    if job.map._p != _STATE.loaded_map:
        raise AssertionError(f"job map {job.map._p} is not the loaded map {_STATE.loaded_map}")
    cfg = job.get_configuration()._settings
    out = next(s for s in cfg if isinstance(s, MoviePipelineOutputSetting))
    outputs = [c for c in cfg
               if type(c) in (MoviePipelineImageSequenceOutput_PNG, MoviePipelineImageSequenceOutput_EXR)]
    deferred = [c for c in cfg if isinstance(c, MoviePipelineDeferredPassBase)]
    if len(deferred) != 1 or not outputs:
        raise AssertionError("job needs one deferred render pass and an image output")
    # MoviePipelineDeferredPasses.cpp SetupImpl: the enabled passes whose material loads become active
    materials = [p.material for p in deferred[0].additional_post_process_materials
                 if p.enabled and isinstance(p.material, MaterialInterface)]
    if job.job_name in _STATE.fail_jobs:
        executor.on_executor_errored_delegate.broadcast(
            executor, MoviePipeline(), True, Text(f"LogMovieRenderPipeline: Error: injected failure in {job.job_name}"))
        return False
    if out.use_custom_playback_range:
        start, end = out.custom_start_frame, out.custom_end_frame
    else:
        start, end = seq._start, seq._end
    cam = seq._cut_camera()
    files = []
    for f in range(start, end):
        seq._camera_pose(cam, f)  # evaluates like the engine; raises on auto tangents
        number = f"{f + out.frame_number_offset:0{out.zero_pad_frame_numbers}d}"
        w, h = out.output_resolution.x, out.output_resolution.y
        if _STATE.loaded_map == _EMPTY_MAP:
            # the engine's Entry map holds nothing: no sky, no light; only what the job spawned can show
            img = np.zeros((out.output_resolution.y, out.output_resolution.x, 3), np.uint8)
        else:
            img = _frame_image(cam_index, f, out.output_resolution.x, out.output_resolution.y)
        if any(isinstance(a, DirectionalLight) and a not in _STATE.destroyed for a in _STATE.actors):
            _draw_spheres(img, cam._object, *seq._camera_pose(cam, f))
        # The passes of this frame, named as MoviePipelineDeferredPasses.cpp names them: the main pass "FinalImage"
        # (RGBA, 8-bit here), then each post-process material "FinalImage" + its name (RGBA = the material's emissive
        # colour; 32-bit float with bUse32BitPostProcessMaterials, else 16-bit).
        passes: list[tuple[str, np.ndarray, bool]] = [
            ("FinalImage", np.concatenate([img.astype(np.float32) / 255.0, np.ones((h, w, 1), np.float32)], 2), False)]
        if materials:
            depth, stencil = _scene_buffers(cam._object, *seq._camera_pose(cam, f), w, h)
            for m in materials:
                value = {"SceneDepth": depth, "CustomStencil": stencil}.get(m._output, np.zeros((h, w)))
                rgba = np.stack([value, value, value, np.ones((h, w))], axis=-1).astype(np.float32)
                passes.append((f"FinalImage{m.get_name()}", rgba, deferred[0].use32_bit_post_process_materials))
        for output in outputs:
            files += _write_outputs(output, out, number, passes)
        _STATE.frames_written += 1
        if _STATE.crash_after_frames is not None and _STATE.frames_written >= _STATE.crash_after_frames:
            assert _STATE.crash is not None
            _STATE.crash()
    _STATE.rendered[job.job_name] = files
    return True


def _file_name(out: MoviePipelineOutputSetting, number: str, render_pass: str, ext: str, several: bool) -> str:
    """MoviePipelineImageSequenceOutput.cpp: the format with {frame_number} and {render_pass} resolved; when several
    files are written per frame and the format lacks {render_pass}, ValidateOutputFormatString adds it (MRQ
    inserts it next to the frame number; the fake appends it, which differs from what a script expects just the
    same). The extension is always appended."""
    fmt = out.file_name_format
    if several and "{render_pass}" not in fmt.lower():
        fmt += "{render_pass}"
    name = fmt.replace("{frame_number}", number).replace("{render_pass}", render_pass)
    return os.path.join(out.output_directory.path, f"{name}.{ext}")


def _write_outputs(output: MoviePipelineSetting, out: MoviePipelineOutputSetting, number: str,
                   passes: list[tuple[str, np.ndarray, bool]]) -> list[str]:
    import cv2

    written = []
    if isinstance(output, MoviePipelineImageSequenceOutput_EXR) and output.multilayer:
        # MoviePipelineEXROutput.cpp OnReceiveImageDataImpl: one file per frame, {render_pass} = "", the first
        # pass unnamed and the others as layers named after their pass
        path = _file_name(out, number, "", "exr", False)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        layers = [("" if i == 0 else name, rgba, full) for i, (name, rgba, full) in enumerate(passes)]
        _write_exr(path, layers, output.compression._n)
        return [path]
    for name, rgba, full in passes:
        if isinstance(output, MoviePipelineImageSequenceOutput_PNG):
            path = _file_name(out, number, name, "png", len(passes) > 1)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # 8-bit quantisation (MoviePipelineImageQuantization.cpp), RGB without alpha
            cv2.imwrite(path, np.round(np.clip(rgba[..., 2::-1], 0.0, 1.0) * 255.0).astype(np.uint8))
        else:
            path = _file_name(out, number, name, "exr", len(passes) > 1)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_exr(path, [("", rgba, full)], output.compression._n)  # type: ignore[attr-defined]
        written.append(path)
    return written


def register_slate_post_tick_callback(callable: Callable[[float], None]) -> object:
    _STATE.tick_callbacks.append(callable)
    return callable


def unregister_slate_post_tick_callback(handle: object) -> None:
    _STATE.tick_callbacks.remove(handle)  # type: ignore[arg-type]


def _tick() -> bool:
    """One editor tick: the registered tick callbacks, then any pending executor run to completion
    (what the editor does over many ticks). True if render work was done."""
    for cb in list(_STATE.tick_callbacks):
        cb(0.05)
    if _STATE.before_render is not None:
        _STATE.before_render()
    if not _STATE.pending or _STATE.hang:
        return False
    executor = _STATE.pending.pop(0)
    ok_all = True
    for i, job in enumerate(_STATE.queue.get_jobs()):
        ok = _render_job(job, executor, i)
        ok_all &= ok
        if isinstance(executor, MoviePipelinePIEExecutor):
            executor.on_individual_job_work_finished_delegate.broadcast(MoviePipelineOutputData(job, ok))
    executor.on_executor_finished_delegate.broadcast(executor, ok_all)
    return True

