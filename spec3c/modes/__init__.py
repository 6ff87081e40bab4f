"""Instrument modes: everything that differs between the modes spec3c serves, in one place.

A mode is a folder here holding one frozen :class:`~spec3c.modes.base.Mode`
record, and one line in :data:`spec3c.modes.registry.MODES`.  The rest of
spec3c never tests EXP_TYPE names: it asks
``spec3c.modes.registry.mode_for(exp_type)`` and reads the record.

This package module imports nothing, so ``spec3c.modes.base`` (the record type,
which steps use for annotations) can be imported from anywhere without pulling
in every mode.
"""
