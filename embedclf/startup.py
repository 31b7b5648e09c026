"""What the commands do about their own start-up cost.

Importing torch and Lightning creates over a million long-lived objects (modules, classes,
functions). Python's cyclic garbage collector walks all of them at each full collection while
they load, and once more at exit: about a third of the import time of ``train.py`` on a small
CPU, and a second at exit. :func:`quick_imports` loads them with the collector paused and then
freezes them (``gc.freeze``: never collected, which module-level objects never are anyway),
so the collector only ever walks what the run itself creates.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quick_imports() -> Iterator[None]:
    """Import heavy modules inside this block: collector paused, their objects then frozen."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
