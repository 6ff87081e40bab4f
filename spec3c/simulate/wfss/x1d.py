"""The spec2 ``_x1d`` file of a simulated WFSS exposure: its cal file extracted as calwebb_spec2 does.

The cal file is read back as ingest reads it and every cutout is extracted by
spec3c's extract_1d with the WFSS rules (the whole cutout, no EXTRACT1D
file), which reproduces jwst's; the spectra are written as spec2's
extract_1d writes WFSS results: a WFSSMultiSpecModel with one table per
spectral order and one row per source of the exposure.
"""

from __future__ import annotations

from pathlib import Path

from spec3c.config import Extract1dParams
from spec3c.fitsio import indexed_hdus
from spec3c.modes.registry import mode_for
from spec3c.products.meta import top_level_meta
from spec3c.products.wfss import WfssSpectrum, group_id, wfss_x1d_model
from spec3c.store.records import ExposureRecord

__all__ = ["write_spec2_x1d"]


def write_spec2_x1d(cal_path: Path, x1d_path: Path) -> None:
    """Extract every cutout of ``cal_path`` and write the spec2 x1d product to ``x1d_path``."""
    from spec3c.source_inputs import SourceInputs
    from spec3c.steps.extract_1d import Spectrum, extract_cutout

    name = cal_path.name.removesuffix(".fits")
    exp_type = ""
    with indexed_hdus():
        from astropy.io import fits

        exp_type = str(fits.getval(cal_path, "EXP_TYPE"))
    mode = mode_for(exp_type)
    assert mode.read_file is not None
    read = mode.read_file(cal_path, name)
    record = ExposureRecord(name, str(cal_path), "", "science", exp_type, read.model_type, read.meta)
    inputs = SourceInputs(name, read.cutouts, {name: record})
    what = Spectrum(mode.extraction, exp_type, read.meta.get("meta.cal_step.photom") == "COMPLETE")
    spectra = []
    for k, cutout in enumerate(read.cutouts):
        _, spectrum = extract_cutout(inputs, k, what, Extract1dParams())
        if spectrum is None:
            continue
        order = int(spectrum.meta.get("spectral_order") or 1)
        m, c = spectrum.meta, cutout.meta
        spectra.append(WfssSpectrum(
            source_id=int(c["source_id"]), group_id=group_id(read.meta, order), spectral_order=order,
            columns=spectrum.columns, filename=cal_path.name,
            exposure_time=read.meta.get("meta.exposure.exposure_time"),
            integration_time=read.meta.get("meta.exposure.integration_time"),
            dispersion_direction=m.get("dispersion_direction"),
            attributes={**{k: m.get(k) for k in ("source_type", "source_xpos", "source_ypos", "source_ra",
                                                  "source_dec")},
                        "extract2d_xstart": int(c["xstart"]), "extract2d_ystart": int(c["ystart"]),
                        "extract2d_xstop": int(c["xstart"]) + int(c["xsize"]),
                        "extract2d_ystop": int(c["ystart"]) + int(c["ysize"])},
            flux_unit=m.get("flux_unit", "Jy"), sb_unit=m.get("sb_unit", "MJy/sr")))
    tree = top_level_meta(record)
    tree.setdefault("cal_step", {})["extract_1d"] = "COMPLETE"
    with wfss_x1d_model(spectra, tree) as model:
        s_region = read.cutouts[0].meta.get("meta.wcsinfo.s_region") if read.cutouts else None
        if s_region:
            model.spec[0].s_region = s_region
        with indexed_hdus():
            model.save(x1d_path)
