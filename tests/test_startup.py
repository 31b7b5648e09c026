"""quick_imports: the collector is paused while heavy modules load, and back on after."""

from __future__ import annotations

import gc

import pytest

from embedclf.startup import quick_imports


@pytest.fixture(autouse=True)
def restore_gc():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_collector_paused_inside_then_what_was_made_is_frozen_and_collection_resumes():
    gc.enable()
    gc.unfreeze()
    with quick_imports():
        assert not gc.isenabled()
        made = [{"module-level": i} for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)
    frozen = {id(m) for m in made}
    assert not any(id(o) in frozen for o in gc.get_objects())  # the collector skips them


def test_collection_resumes_after_an_error_and_stays_off_if_it_was_off():
    gc.enable()
    with pytest.raises(ImportError), quick_imports():
        raise ImportError("no such module")
    assert gc.isenabled()
    gc.disable()
    with quick_imports():
        pass
    assert not gc.isenabled()
