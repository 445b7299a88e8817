"""Turn the ``unreal-stub`` package's ``unreal/unreal.py`` into a type stub mypy can check against.

What we found in unreal-stub 0.3 (the editor-generated UE 5.6.0 API stub, 25 MB):

* default values are the editor's ``ExportText`` of structs, e.g. ``((Left=0.000000,Top=...))``
  near line 118336, which is not valid Python; we replace *every* default value by ``...`` (what
  a ``.pyi`` is meant to hold anyway), so the file parses;
* 35 000 docstrings make up most of the 25 MB; we drop them (mypy parses ~5x less text);
* the trailing "Additional Code" (runtime statements redirecting stdout, SSL set-up, the
  ``uclass``/``ufunction`` decorators) is replaced by plain signatures;
* it was generated without the Movie Render Queue plugin: the ``MoviePipeline*`` classes we use are
  appended from ``mrq_stub.pyi`` (written from the official Python API reference, see that file).

The result is written to ``<cache>/<key>/unreal/__init__.pyi`` where ``key`` hashes the input
stub, the MRQ stub and this file, so it is rebuilt only when one of them changes. Next to it:
``mypy.ini`` (errors *inside* the stub are silenced, never in our code) and ``index.json``
(class -> member names, module functions) for the test that keeps the fake ``unreal`` honest.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MRQ_STUB = HERE / "mrq_stub.pyi"
DEFAULT_CACHE = REPO / ".cache" / "ue_stub"

_ADDITIONAL_CODE = "##### Additional Code #####"
_DEF = re.compile(r"^\s*(async\s+)?def\s")
_DOC_OPEN = re.compile(r'^(\s*)[rRbBuU]?("""|\'\'\')')

_TAIL = '''
# ---- replaced "Additional Code" of the generated stub (runtime helpers) ----
def uclass() -> Callable[[_T], _T]: ...
def ustruct() -> Callable[[_T], _T]: ...
def uenum() -> Callable[[_T], _T]: ...
def uvalue(val: Any, meta: Any = ...) -> Any: ...
def uproperty(type: Any, meta: Any = ..., getter: Any = ..., setter: Any = ...) -> Any: ...
def ufunction(meta: Any = ..., ret: Any = ..., params: Any = ..., override: Any = ..., static: Any = ...,
              pure: Any = ..., getter: Any = ..., setter: Any = ...) -> Callable[[_T], _T]: ...
'''

MYPY_INI = """[mypy]
python_version = 3.11
strict = True
warn_unused_ignores = True
ignore_missing_imports = False
follow_imports = normal

[mypy-unreal.*]
# Errors inside the generated engine stub only (thousands of internal type errors in unreal-stub).
ignore_errors = True
"""


def find_installed_stub() -> Path:
    """``unreal/unreal.py`` of the installed unreal-stub distribution."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("unreal-stub")
    except PackageNotFoundError as exc:
        raise FileNotFoundError("unreal-stub is not installed: pip install 'multicam[dev]'") from exc
    for f in dist.files or []:
        if str(f).replace("\\", "/") == "unreal/unreal.py":
            return Path(str(dist.locate_file(f)))
    raise FileNotFoundError("unreal-stub is installed but has no unreal/unreal.py")


def _blank_defaults(sig: str) -> str:
    """Replace each default value in a ``def`` signature by ``...``.

    Scans characters keeping track of bracket depth and string literals: a ``=`` at depth 1 (inside
    the parameter list) starts a default, which ends at the next ``,`` at depth 1 or the closing
    ``)`` of the list. Anything inside (nested brackets, ``Left=0.0``, quotes) is dropped.
    """
    out: list[str] = []
    depth = 0
    i = 0
    n = len(sig)
    in_default = False
    while i < n:
        ch = sig[i]
        if ch in "\"'":
            # string literal (possibly triple-quoted, possibly with escapes)
            q = sig[i : i + 3] if sig[i : i + 3] in ('"""', "'''") else ch
            j = i + len(q)
            while j < n and sig[j : j + len(q)] != q:
                j += 2 if sig[j] == "\\" else 1
            j += len(q)
            if not in_default:
                out.append(sig[i:j])
            i = j
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if in_default and depth == 0:
                in_default = False
        if in_default:
            if depth == 1 and ch == ",":
                in_default = False
                out.append(ch)
            i += 1
            continue
        if depth == 1 and ch == "=" and sig[i + 1 : i + 2] != "=" and sig[i - 1 : i] not in "=!<>":
            out.append("= ...")
            in_default = True
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _paren_balance(s: str) -> int:
    # Good enough for signature lines of the generated stub (strings there are short defaults).
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", s)
    return sum(s.count(c) for c in "([{") - sum(s.count(c) for c in ")]}")


def sanitise(text: str) -> str:
    """Generated ``unreal.py`` text -> valid stub text (see module docstring)."""
    text = text.lstrip("\ufeff")
    cut = text.find(_ADDITIONAL_CODE)
    if cut >= 0:
        text = text[:cut]
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        m = _DOC_OPEN.match(line)
        if m:
            indent, quote = m.group(1), m.group(2)
            rest = line[m.end() :]
            if quote not in rest:  # multi-line docstring: skip to the closing quotes
                i += 1
                while i < n and quote not in lines[i]:
                    i += 1
            out.append(f"{indent}...")
            i += 1
            continue
        if _DEF.match(line):
            sig = line
            bal = _paren_balance(line)
            while bal > 0 and i + 1 < n:
                i += 1
                sig += "\n" + lines[i]
                bal += _paren_balance(lines[i])
            out.append(_blank_defaults(sig))
            i += 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n" + _TAIL


def build_index(tree: ast.Module) -> dict[str, object]:
    """Class -> sorted member names (methods, properties, enum values), plus module functions."""
    classes: dict[str, list[str]] = {}
    bases: dict[str, list[str]] = {}
    functions: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members: set[str] = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    members.update(t.id for t in item.targets if isinstance(t, ast.Name))
            classes[node.name] = sorted(members)
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
        elif isinstance(node, ast.FunctionDef):
            functions.append(node.name)
    return {"classes": classes, "bases": bases, "functions": sorted(set(functions))}


_LINT_ONLY = re.compile(r"^# <lint-only-imports>.*?^# </lint-only-imports>\n", re.S | re.M)


def mrq_stub_text() -> str:
    """``mrq_stub.pyi`` without its lint-only imports (the engine stub defines those names)."""
    text = MRQ_STUB.read_text()
    out, n = _LINT_ONLY.subn("", text)
    if n != 1:
        raise ValueError(f"{MRQ_STUB}: expected one <lint-only-imports> block, found {n}")
    return out


def cache_key(stub: Path) -> str:
    h = hashlib.sha256()
    st = stub.stat()
    h.update(f"{stub}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(MRQ_STUB.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def ensure_stub(cache_dir: Path | None = None, stub: Path | None = None) -> Path:
    """Build (once) and return the folder holding ``unreal/__init__.pyi``, ``mypy.ini``, ``index.json``.

    Safe against concurrent builders (pytest-xdist workers): each builds in a temporary sibling
    and renames it into place; a loser of the race just uses the winner's folder.
    """
    stub = stub or find_installed_stub()
    cache_dir = Path(cache_dir or os.environ.get("MULTICAM_UE_STUB_CACHE") or DEFAULT_CACHE)
    final = cache_dir / cache_key(stub)
    if (final / "index.json").is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
    try:
        text = sanitise(stub.read_text(encoding="utf-8-sig"))
        text += "\n# ---- Movie Render Queue classes (tests/ue_support/mrq_stub.pyi) ----\n"
        text += mrq_stub_text()
        tree = ast.parse(text, filename="unreal/__init__.pyi")  # proves the result is valid Python
        pkg = tmp / "unreal"
        pkg.mkdir()
        (pkg / "__init__.pyi").write_text(text)
        (tmp / "mypy.ini").write_text(MYPY_INI)
        (tmp / "index.json").write_text(json.dumps(build_index(tree)))
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race
            if not (final / "index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


if __name__ == "__main__":  # pragma: no cover - manual use
    print(ensure_stub())
