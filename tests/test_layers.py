"""The layers of the project, read from the source with ``ast``: imports never run back up.

ground ``multicam/`` <- ``trajectory/``, ``scene_catalog/``, ``exporters/`` <- ``render_jobs/`` <- ``multicam_app``
(the CLI); ``recam/`` reads datasets and never imports ``render_jobs/``; ``ue_scripts/`` runs inside Unreal and
uses only the standard library and ``unreal``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"multicam", "multicam_app", "trajectory", "scene_catalog", "exporters", "render_jobs", "recam", "ue_scripts"}
ALLOWED = {
    "multicam": {"multicam"},
    "trajectory": {"multicam", "trajectory"},
    "scene_catalog": {"multicam", "scene_catalog"},
    "exporters": {"multicam", "trajectory", "scene_catalog", "exporters"},
    "render_jobs": {"multicam", "trajectory", "scene_catalog", "exporters", "render_jobs", "ue_scripts"},
    "recam": {"multicam", "trajectory", "exporters", "recam"},
    "multicam_app": OURS - {"recam"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_never_run_back_up(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted((_imports(path) & OURS) - ALLOWED[package]):
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_ue_scripts_use_only_the_standard_library_and_unreal() -> None:
    allowed = set(sys.stdlib_module_names) | {"unreal", "ue_scripts", "__future__"}
    bad = [f"{p.relative_to(ROOT)} imports {n}" for p in sorted((ROOT / "ue_scripts").rglob("*.py"))
           for n in sorted(_imports(p) - allowed)]
    assert not bad, "\n".join(bad)


def test_layer_check_sees_a_planted_violation(tmp_path: Path) -> None:
    planted = tmp_path / "m.py"
    planted.write_text("from render_jobs.schema import RenderJob\nimport exporters.video\n")
    assert _imports(planted) == {"render_jobs", "exporters"}
