"""Synthetic stage-2 NIRSpec slit and MIRI LRS exposures with known truth.

>>> from spec3c.simulate import SimOptions, load_truth, simulate
>>> res = simulate("nirspec-mos", "out", SimOptions(seed=1, n_sources=10))   # doctest: +SKIP
>>> truth = load_truth(res.truth_path)                                        # doctest: +SKIP

Each call writes one ``_cal.fits`` per exposure (a MultiSlitModel for NIRSpec,
see :mod:`.nirspec`; an ImageModel for MIRI LRS, see :mod:`.miri`), a spec3
association JSON and ``<asn stem>_truth.asdf``.

One folder per instrument (:mod:`.nirspec`, :mod:`.miri`: layout, wcs, render,
writer); the scene, noise, truth, ASN and spec2 ``_x1d`` pieces they share live
here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .miri import MIRI_MODES, simulate_miri
from .miri.mrs import MRS_MODES, simulate_mrs
from .niriss import SOSS_MODES, simulate_soss
from .nirspec import NIRSPEC_MODES, simulate_nirspec
from .nirspec.ifu import IFU_MODES, simulate_nirspec_ifu
from .options import Progress, SimOptions, SimulationResult
from .truth import Truth, TruthSource, load_truth
from .wfss import WFSS_MODES, simulate_wfss

__all__ = [
    "MODES",
    "SimOptions",
    "SimulationResult",
    "Truth",
    "TruthSource",
    "load_truth",
    "simulate",
]

Simulator = Callable[[str, "str | Path", SimOptions, "Progress | None"], SimulationResult]

#: mode name -> the simulator of its instrument folder
_SIMULATORS: dict[str, Simulator] = {
    **dict.fromkeys(NIRSPEC_MODES, simulate_nirspec),
    **dict.fromkeys(IFU_MODES, simulate_nirspec_ifu),
    **dict.fromkeys(MIRI_MODES, simulate_miri),
    **dict.fromkeys(MRS_MODES, simulate_mrs),
    **dict.fromkeys(WFSS_MODES, simulate_wfss),
    **dict.fromkeys(SOSS_MODES, simulate_soss),
}
MODES: tuple[str, ...] = tuple(_SIMULATORS)


def simulate(
    mode: str,
    output_dir: str | Path,
    options: SimOptions | None = None,
    *,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a calibrated (stage-2) observation and its spec3 association.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    output_dir : str or Path
        Folder for the cal files, the ASN and the truth file (created).
    options : SimOptions, optional
        Seed, numbers of exposures/sources/columns, nod subtraction, moving
        target, background exposures (see :class:`SimOptions`); defaults when
        None.  Equal mode and options give identical files.
    progress : callable, optional
        Called as ``progress(done, total)`` after each slit and each file.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        If ``mode`` is unknown or ``options`` do not fit the mode.
    """
    if mode not in _SIMULATORS:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _SIMULATORS[mode](mode, output_dir, options or SimOptions(), progress)
