"""What the commands do about their own start-up cost.

Importing torch and Lightning creates 400,000 long-lived objects that Python's cyclic garbage
collector tracks (modules, classes, functions); it walks all of them at each full collection
while they load, and once more at exit: a quarter of the import time of ``train.py`` on a
2-core CPU (7.7 s -> 5.9 s), and about a second at exit. :func:`quick_imports` loads them
with the collector paused and then freezes them (``gc.freeze``: never collected, which
module-level objects never are anyway), so the collector only walks what the run creates.
Garbage is collected first: in a sweep run in one process the block runs again for each job,
and the previous job's trainer and model (which refer to each other) must be freed, not
frozen.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quick_imports() -> Iterator[None]:
    """Import heavy modules inside this block: collector paused, their objects then frozen."""
    enabled = gc.isenabled()
    gc.collect()  # cheap: frozen objects are skipped
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
