"""A module that notes which process imported it (the fork tests warm workers with it)."""

from __future__ import annotations

import os

#: the process that ran this module's import
IMPORTED_IN = os.getpid()
