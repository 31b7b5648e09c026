"""quick_imports: the collector is paused while heavy modules load, and back on after."""

from __future__ import annotations

import gc
import weakref

import pytest

from embedclf.util.startup import quick_imports


class Node:
    """An object the collector tracks (plain dicts of atoms are not tracked)."""

    def __init__(self) -> None:
        self.other: Node | None = None


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
        made = [Node() for _ in range(100)]
    assert gc.isenabled()
    assert all(gc.is_tracked(node) for node in made)
    frozen = {id(node) for node in made}
    assert not any(id(o) in frozen for o in gc.get_objects())  # the collector skips them
    assert gc.get_freeze_count() >= len(made)


def test_earlier_garbage_is_collected_not_frozen():
    """A sweep's second job: the first job's cycles must be freed, not kept for ever."""
    gc.enable()
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: only the collector frees it
    alive = weakref.ref(first)
    del first, second
    gc.disable()  # as if no collection had run since the previous job
    with quick_imports():
        pass
    assert alive() is None


def test_collection_resumes_after_an_error_and_stays_off_if_it_was_off():
    gc.enable()
    with pytest.raises(ImportError), quick_imports():
        raise ImportError("no such module")
    assert gc.isenabled()
    gc.disable()
    with quick_imports():
        pass
    assert not gc.isenabled()
