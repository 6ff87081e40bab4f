"""extract_1d as a step: the s2d of resampled modes, every exposure of the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spec3c.gwcs_asdf import wcs_from_asdf
from spec3c.results import COMPLETE, SKIPPED, Spectrum1D, x1d_exposure_key
from spec3c.steps import extract_1d, resample_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FS_APERTURES = {"extract_1d": {"override_extract1d": str(EXAMPLES / "extract1d_nirspec_fs.json")}}


def test_without_s2d_it_skips(fs_store, make_context):
    outcome = extract_1d.run(make_context(fs_store, FS_APERTURES))
    assert outcome.status == SKIPPED and outcome.message == "no resampled spectrum"


def test_extracts_the_s2d(fs_store, make_context):
    ctx = make_context(fs_store, FS_APERTURES)
    resample_spec.run(ctx)
    outcome = extract_1d.run(ctx)
    assert outcome.status == COMPLETE
    spectrum = Spectrum1D.load(ctx.store, ctx.source)
    assert np.isfinite(spectrum.columns["FLUX"]).mean() > 0.9
    assert spectrum.meta["exp_type"] == ctx.inputs.exp_type()


def test_the_aperture_centre_on_the_sky_is_found_with_the_s2d_gwcs(fs_store, make_context):
    """SLIT_RA/SLIT_DEC's position is kept with the spectrum, from the gwcs resample_spec made; the
    stored gwcs (what the x1d writer would otherwise deserialise) gives it to rounding."""
    ctx = make_context(fs_store, FS_APERTURES)
    resample_spec.run(ctx)
    extract_1d.run(ctx)
    spectrum = Spectrum1D.load(ctx.store, ctx.source)
    ra, dec = spectrum.meta[extract_1d.APERTURE_RADEC]
    assert extract_1d.extraction_position(spectrum.meta, wcs_from_asdf(ctx.s2d.wcs_asdf)) == pytest.approx(
        [ra, dec], abs=1e-12)
    assert abs(dec - ctx.inputs.cutouts[0].planes["dec"][np.isfinite(ctx.inputs.cutouts[0].planes["dec"])]
               ).min() < 1e-3  # on the slit


def test_unresampled_mode_extracts_every_exposure(slitless_store, make_context):
    ctx = make_context(slitless_store)
    outcome = extract_1d.run(ctx)
    assert outcome.status == COMPLETE and outcome.message.startswith("3 exposures")
    assert [s.meta["exposure"] for s in ctx.spectra] == [c.exposure for c in ctx.inputs.cutouts]
    for cutout in ctx.inputs.cutouts:
        saved = Spectrum1D.load(ctx.store, ctx.source, x1d_exposure_key(cutout.exposure))
        assert saved.meta["dispersion_direction"] == 2
