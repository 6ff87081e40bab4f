"""The store contract lives in the package (:mod:`spec3c.testing.store`); let pytest
rewrite its asserts as it does for test modules, so failures show the values."""

import pytest

pytest.register_assert_rewrite("spec3c.testing")
