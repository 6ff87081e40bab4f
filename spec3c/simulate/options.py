"""What a simulator is asked for (:class:`SimOptions`) and what it returns (:class:`SimulationResult`).

Both mode folders (:mod:`.nirspec`, :mod:`.miri`) take the same options; the
checks every mode shares run when the options are made, the mode-specific
ones (number of sources, subarray size, ...) in the mode's simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_COLUMNS", "Progress", "SimOptions", "SimulationResult"]

#: Smallest cutout length along the dispersion (``n_columns``) a simulator accepts.
MIN_COLUMNS = 50

#: ``progress(done, total)``, called after each slit and each file written.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimOptions:
    """Options of one simulated observation (the ``spec3c simulate`` flags).

    Equal options and mode give identical files.

    Raises
    ------
    ValueError
        When a field is out of range; the message names the field.
    """

    seed: int = 0
    """Random seed; equal seeds give identical files."""

    n_exposures: int = 3
    """Number of science exposures (>= 1); nod positions are cycled.  ``miri-mrs``: dither positions
    of the 4-point pattern (cycled), each written once per detector and band."""

    n_sources: int | None = None
    """Number of slits/sources (>= 1; the mode's default when None).  MIRI LRS has exactly one."""

    n_columns: int | None = None
    """Cutout length along the dispersion (>= 50; the mode's default when None); for MIRI LRS
    the number of spectral detector rows."""

    nod_subtracted: bool = True
    """Subtract the mean of the other nod positions as stage 2 does (removes the sky).  Needs
    two nod positions, so it is ignored when ``n_exposures == 1``, for ``miri-lrs-slitless``
    and when ``with_background > 0``."""

    moving_target: bool = False
    """Observe a tracked moving target (TARGTYPE ``MOVING``): the whole scene moves along the
    slits by ``moving_target.motion_arcsec_per_exposure`` (``simulate/<instrument>/instrument.json``) between
    exposures while the pointing follows it, so every source stays at its planned slit
    position but its sky coordinates differ per exposure.  ``meta.wcsinfo.mt_ra/mt_dec`` hold
    the target ephemeris, also in ``Truth.ephemeris``."""

    with_background: int = 0
    """Add this many dedicated background exposures (blank sky through the same slits, >= 0)
    as ``background`` members of the ASN, written as the spec2 ``_x1d`` files a spec3 ASN
    lists.  The science exposures then keep their sky (``nod_subtracted`` is forced False) so
    that master_background has something to remove.  Not for ``miri-lrs-slitless``."""

    channels: tuple[int, ...] | None = None
    """``miri-mrs`` only: MRS channels (1-4) to simulate, all four when None.  A detector always
    records its two channels (MIRIFUSHORT 1+2, MIRIFULONG 3+4), so ``(1,)`` writes the same
    files as ``(1, 2)``."""

    bands: tuple[str, ...] | None = None
    """``miri-mrs`` only: MRS bands (``SHORT``, ``MEDIUM``, ``LONG``) to simulate, ``("SHORT",)``
    when None; one file per detector, band and dither position."""

    grism: str | None = None
    """``niriss-wfss``/``nircam-wfss`` only: ``"R"`` or ``"C"`` (NIRISS GR150R/GR150C, NIRCam
    GRISMR/GRISMC); the mode's default (``simulate/wfss/instrument.json``) when None."""

    module: str | None = None
    """``nircam-wfss`` only: ``"A"`` or ``"B"``, every exposure on that module; None alternates
    the exposures between modules A and B (each sees its own half of the field)."""

    n_integrations: int | None = None
    """``niriss-soss`` only: integrations of the time series (>= 1; 5 when None), one plane each."""

    subarray: str | None = None
    """``niriss-soss`` only: ``"SUBSTRIP256"`` (orders 1-3, default) or ``"SUBSTRIP96"`` (order 1 and
    the start of order 2)."""

    def __post_init__(self) -> None:
        if self.n_exposures < 1:
            raise ValueError(f"n_exposures must be >= 1, got {self.n_exposures}")
        if self.n_sources is not None and self.n_sources < 1:
            raise ValueError(f"n_sources must be >= 1, got {self.n_sources}")
        if self.n_columns is not None and self.n_columns < MIN_COLUMNS:
            raise ValueError(f"n_columns must be >= {MIN_COLUMNS}, got {self.n_columns}")
        if self.n_integrations is not None and self.n_integrations < 1:
            raise ValueError(f"n_integrations must be >= 1, got {self.n_integrations}")
        if self.with_background < 0:
            raise ValueError(f"with_background must be >= 0, got {self.with_background}")


@dataclass(frozen=True)
class SimulationResult:
    """Paths written by :func:`spec3c.simulate.simulate`."""

    asn_path: Path
    cal_paths: list[Path]
    truth_path: Path
    mode: str
    x1d_asn_path: Path | None = None  # WFSS: the association of the spec2 x1d files
    reference_files: dict[str, Path] | None = None  # SOSS: extract_1d reference type -> the file written
