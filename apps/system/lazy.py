"""Heavy libraries imported on first use, not at start-up.

pandas, PyArrow, DuckDB and scikit-learn together cost ~170 MB of RSS and ~1.4 s of start-up
in every process (web, worker, beat) although most processes rarely touch data: modules that
need them bind a LazyModule instead (measured in docs/performance.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)
