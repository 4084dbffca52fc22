"""Small JSON files written atomically: a reader never sees half a file."""
from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path, data: object) -> Path:
    """Write JSON atomically (a temporary file renamed over the target), indented, keys sorted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> object:
    return json.loads(Path(path).read_text(encoding="utf-8"))
