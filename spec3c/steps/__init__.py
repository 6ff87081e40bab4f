"""One module per calwebb_spec3 step.

Each step module exposes ``run(...) -> StepOutcome`` (plus its product) and
works on one source's in-memory inputs; :mod:`spec3c.process` reads the
inputs from the store, calls the steps in the reference's order and writes
the results back.
"""
