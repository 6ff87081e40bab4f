"""What extract_1d needs to know about an IFU instrument (jwst 3.0.0 ``extract_1d/ifu.py``,
``Extract1dStep._extract_ifu``, ``apply_apcorr.select_apcorr``); ALGORITHMS.md §12.6.

:mod:`spec3c.steps.extract_1d_ifu` asks the mode's :class:`IfuExtraction` and never names
an instrument itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...algorithms.apcorr import ApcorrSpec

__all__ = ["MIRI_EXTRACTION", "NIRSPEC_EXTRACTION", "IfuExtraction"]


@dataclass(frozen=True)
class IfuExtraction:
    """IFU extraction rules of one instrument.

    Attributes
    ----------
    apcorr : ApcorrSpec
        The APCORR model (a radial table: correction against radius and wavelength).
    source_type_parameter : bool
        ``ifu_set_srctype`` replaces the cube's SRCTYPE (MIRI MRS only, in the reference).
    radius_scale_parameter : bool
        ``ifu_rscale`` scales the EXTRACT1D radii (MIRI MRS only).
    residual_fringe_columns : bool
        The spectra are ``MRSMultiSpecModel`` with RF_FLUX, RF_SURF_BRIGHT and RF_BACKGROUND.
    """

    apcorr: ApcorrSpec
    source_type_parameter: bool
    radius_scale_parameter: bool
    residual_fringe_columns: bool


MIRI_EXTRACTION = IfuExtraction(ApcorrSpec("MirMrsApcorrModel", "radial"), source_type_parameter=True,
                                radius_scale_parameter=True, residual_fringe_columns=True)
NIRSPEC_EXTRACTION = IfuExtraction(ApcorrSpec("NrsIfuApcorrModel", "radial"), source_type_parameter=False,
                                   radius_scale_parameter=False, residual_fringe_columns=False)
