"""spec3c.heap: collections inside the block skip the objects that were alive before it."""

import gc
import weakref

from spec3c.heap import long_lived_objects_frozen


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_objects_alive_before_the_block_are_frozen_garbage_first_collected():
    gc.unfreeze()
    before = _Cycle()
    garbage = _Cycle()
    gone = weakref.ref(garbage)
    del garbage
    with long_lived_objects_frozen():
        assert gc.get_freeze_count() > 0
        assert gone() is None  # the garbage cycle made before the block was collected, not frozen
        assert not any(o is before for o in gc.get_objects())  # frozen: no pass visits it
        made = _Cycle()
        made_ref = weakref.ref(made)
        del made
        gc.collect()
        assert made_ref() is None  # the block's own cycles are still collected
    assert gc.get_freeze_count() == 0
    assert any(o is before for o in gc.get_objects())


def test_a_frozen_process_is_left_as_it_is():
    """Not unfrozen by the block (a forked worker's parent froze them).  Checked on an object frozen
    before, not on the count: other threads (pytest-xdist's) may free frozen objects meanwhile."""
    gc.unfreeze()
    before = _Cycle()
    gc.freeze()
    try:
        with long_lived_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0
        assert not any(o is before for o in gc.get_objects())  # still frozen: no collection visits it
    finally:
        gc.unfreeze()
    assert any(o is before for o in gc.get_objects())


def test_freezing_the_long_lived_objects_collects_first_and_happens_once():
    from spec3c.heap import freeze_long_lived_objects

    gc.unfreeze()
    try:
        kept = _Cycle()
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        freeze_long_lived_objects()
        assert gone() is None  # collected, not frozen
        assert not any(o is kept for o in gc.get_objects())  # frozen for good
        later = _Cycle()
        freeze_long_lived_objects()  # already frozen: nothing more is
        assert any(o is later for o in gc.get_objects())
    finally:
        gc.unfreeze()
