"""Test suites that every implementation of a spec3c interface passes.

Importing this package needs pytest (the ``test`` extra); spec3c itself never
imports it.
"""
