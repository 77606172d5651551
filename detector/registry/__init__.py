"""The model registry: versioned, verified model folders in S3 (or a local folder) and the
pointer that says which one the service runs.

Layout under a registry root (``s3://bucket/prefix/models`` or a folder)::

    <root>/<name>@<sha12>/manifest.json    the artifact files of detector.scoring, unchanged
    <root>/<name>@<sha12>/model.skops      (manifest.json lists the sha256 of the others;
    <root>/<name>@<sha12>/peers.json        manifest.sig is its HMAC when signing is on)
    <root>/<name>@<sha12>/README.md
    <root>/<name>@<sha12>/quality.json     the training quality report (not loaded)
    <root>/current                         the pointer: {"version", "previous", "promoted_at"}

- :class:`Pointer`, :func:`promote`, :func:`rollback`: the pointer as a value and its moves
  (pure);
- :class:`ObjectStore`: the port (get, put, list); :class:`LocalObjectStore`,
  :class:`S3ObjectStore` and :class:`MemoryObjectStore` implement it;
- :class:`ModelRegistry`: publish a trained folder, list versions, promote, roll back, fetch a
  version into a folder (then :func:`~detector.scoring.load_artifact` verifies it);
- :func:`open_registry`, :func:`split_model_url`: from a URL to an open registry.

Imports: the standard library, aiobotocore (S3 only, on opening) and detector.scoring.
"""

from detector.registry._pointer import (
    POINTER_NAME,
    Pointer,
    promote,
    reload_decision,
    rollback,
)
from detector.registry._registry import (
    QUALITY_FILE,
    ModelRegistry,
    VersionInfo,
    open_registry,
    quality_report,
    split_model_url,
)
from detector.registry._store import (
    LocalObjectStore,
    MemoryObjectStore,
    ObjectStore,
    S3ObjectStore,
)

__all__ = [
    "POINTER_NAME",
    "QUALITY_FILE",
    "LocalObjectStore",
    "MemoryObjectStore",
    "ModelRegistry",
    "ObjectStore",
    "Pointer",
    "S3ObjectStore",
    "VersionInfo",
    "open_registry",
    "promote",
    "quality_report",
    "reload_decision",
    "rollback",
    "split_model_url",
]
