"""File writing shared by every layer (no memdesc imports)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temporary file in the same directory and os.replace (readers never see a
    partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.replace(tmp, path)


def json_default(o: Any) -> Any:
    """json.dumps default=: infinity as "inf", anything else as its str()."""
    if isinstance(o, float) and math.isinf(o):
        return "inf"
    return str(o)

def finite(o: Any) -> Any:
    """A copy JSON can hold: non-finite floats as "inf"/"-inf", keys as strings."""
    if isinstance(o, float) and not math.isfinite(o):
        return "inf" if o > 0 else "-inf"
    if isinstance(o, dict):
        return {str(k): finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    return o
