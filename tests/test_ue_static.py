"""Static check of ue_scripts/ against the UE 5.6 Python API (unreal-stub 0.3 + Movie Render Queue stub).

The sanitised stub is generated at test time into ``.cache/ue_stub/<key>/`` (git-ignored) and
reused while unreal-stub, ``tests/ue_support/mrq_stub.pyi`` and the sanitiser are unchanged; mypy's
cache lives next to it (first run a few seconds, then well under a second of parsing).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ue_support import fake_unreal, stub_sanitiser  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
UE_SCRIPTS = REPO / "ue_scripts"


@pytest.fixture(scope="module")
def stub_dir() -> Path:
    return stub_sanitiser.ensure_stub()


def run_mypy(stub_dir: Path, *targets: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(stub_dir)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(stub_dir / "mypy.ini"),
           "--cache-dir", str(stub_dir / ".mypy_cache"), "--no-error-summary", *map(str, targets)]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_sanitiser_blanks_invalid_defaults() -> None:
    # The shape of the invalid line near 118336 of unreal-stub 0.3's unreal.py.
    sig = ('    def __init__(self, a: Style = [[1.0, 2.0], X.Y, "s,)"], b: W = [True, (), (2.000000), '
           '((Left=0.000000,Top=0.000000))], c: bool = False, d: Name = "None") -> None:')
    out = stub_sanitiser._blank_defaults(sig)
    assert out == "    def __init__(self, a: Style = ..., b: W = ..., c: bool = ..., d: Name = ...) -> None:"
    compile(out.strip() + " ...", "<sig>", "exec")


def test_stub_is_valid_and_has_engine_and_mrq_classes(stub_dir: Path) -> None:
    pyi = stub_dir / "unreal" / "__init__.pyi"
    compile(pyi.read_text(), str(pyi), "exec")  # the raw unreal-stub file does not compile
    index = json.loads((stub_dir / "index.json").read_text())
    for name in ("LevelSequence", "CineCameraActor", "MovieSceneScriptingDoubleChannel",
                 "MoviePipelineQueueSubsystem", "MoviePipelinePIEExecutor", "MoviePipelineOutputSetting"):
        assert name in index["classes"]
    assert "render_queue_with_executor_instance" in index["classes"]["MoviePipelineQueueSubsystem"]
    assert "get_editor_subsystem" in index["functions"]
    assert "mypy.ini" in os.listdir(stub_dir)


def test_mypy_passes_on_ue_scripts(stub_dir: Path) -> None:
    proc = run_mypy(stub_dir, UE_SCRIPTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_catches_a_misspelled_api_name(stub_dir: Path, tmp_path: Path) -> None:
    src = (UE_SCRIPTS / "render_job.py").read_text()
    cases = {
        "set_skinned_asset_and_update": "set_skinned_asset_and_updte",  # engine method
        "spatial_sample_count = ": "spatial_samples_count = ",  # MRQ property (our MRQ stub)
        "unreal.MovieSceneCameraCutTrack": "unreal.MovieSceneCameraCutsTrack",  # engine class
        "exr.compression = ": "exr.compresion = ",  # MRQ EXR output property (depth/mask passes)
        "unreal.EXRCompressionFormat.NONE": "unreal.EXRCompressionFormat.NO_COMPRESSION",  # MRQ enum value
        "comp.set_custom_depth_stencil_value": "comp.set_custom_stencil_value",  # engine method (mask pass)
    }
    files = []
    for i, (good, bad) in enumerate(cases.items()):
        assert good in src
        # unique module names: mypy's incremental cache is keyed by module name, not path
        f = tmp_path / f"case{i}_{uuid.uuid4().hex[:12]}.py"
        f.write_text(src.replace(good, bad))
        files.append(f)
    proc = run_mypy(stub_dir, *files)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for f, bad in zip(files, cases.values(), strict=True):
        name = bad.split(" ")[0].split(".")[-1]
        errors = [ln for ln in proc.stdout.splitlines() if ln.startswith(str(f)) and ": error:" in ln]
        assert len(errors) == 1 and name in errors[0], (bad, proc.stdout)


def _stub_members(index: dict, cls: str) -> set[str]:
    out: set[str] = set()
    todo = [cls]
    while todo:
        c = todo.pop()
        out.update(index["classes"].get(c, []))
        todo.extend(b for b in index["bases"].get(c, []) if b in index["classes"])
    return out


def test_fake_unreal_defines_only_names_in_the_stub(stub_dir: Path) -> None:
    index = json.loads((stub_dir / "index.json").read_text())
    problems = []
    public = [n for n in vars(fake_unreal) if not n.startswith("_")]
    module_level = {"annotations", "dataclass", "field", "Any", "Callable", "np", "os", "sys", "types",
                    "math", "Fraction"}  # imports, not API
    checked = 0
    for name in public:
        obj = getattr(fake_unreal, name)
        if name in module_level:
            continue
        if inspect.isclass(obj):
            if name not in index["classes"]:
                problems.append(f"class {name} is not in the stub")
                continue
            allowed = _stub_members(index, name)
            own = set(vars(obj)) | set(getattr(obj, "__annotations__", {}))
            for m in sorted(own):
                if m.startswith("_"):
                    continue
                checked += 1
                if m not in allowed:
                    problems.append(f"{name}.{m} is not in the stub")
        elif callable(obj):
            if name not in index["functions"]:
                problems.append(f"function {name} is not in the stub")
        else:
            problems.append(f"{name}: unexpected public object {type(obj).__name__}")
    assert not problems, problems
    assert checked > 60  # the check looked at the fake's members, not just class names


def test_fake_honesty_check_would_catch_an_invented_member(stub_dir: Path) -> None:
    index = json.loads((stub_dir / "index.json").read_text())
    assert "add_key" in _stub_members(index, "MovieSceneScriptingDoubleChannel")
    assert "add_keyframe" not in _stub_members(index, "MovieSceneScriptingDoubleChannel")
    assert "get_path_name" in _stub_members(index, "LevelSequence")  # inherited from _ObjectBase
