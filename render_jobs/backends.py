"""Backend registry: ``get_backend("blender")`` -> a ready :class:`~render_jobs.backend.Backend`.

Backends are imported lazily so that ``multicam`` works without ``bpy`` or an Unreal install. The
``test-*`` backends live in :mod:`render_jobs.testing`; they write real files through the same
interface but render nothing meaningful; they exist for tests and benchmarks only.
"""

from __future__ import annotations

import importlib
from typing import Any

from render_jobs.backend import Backend

#: name -> "module:Class"
BACKENDS: dict[str, str] = {
    "blender": "render_jobs.blender_backend:BlenderBackend",
    "unreal": "render_jobs.unreal_backend:UnrealBackend",
    "test-synthetic": "render_jobs.testing:SyntheticTestBackend",
    "test-noop": "render_jobs.testing:NoopTestBackend",
}


class UnknownBackendError(ValueError):
    pass


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend registered as ``name`` with keyword ``options``."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(
            f"unknown backend {name!r}; available: {', '.join(backend_names())}"
        ) from None
    module_name, _, cls_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    backend: Backend = cls(**options)
    return backend
