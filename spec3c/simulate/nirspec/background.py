"""Dedicated background exposures of a NIRSpec slit observation (``--with-background N``).

A background exposure points at blank sky with the same slits.  calwebb_spec2
extracts it as an extended source; a spec3 ASN lists that ``_x1d`` (not the
cal file) as a ``background`` member.  Here the sky is rendered with the
science exposure's renderer (same wavelengths, noise model, bad pixels) and
extracted per detector column: SURF_BRIGHT is the mean over the good slit
pixels of the column (MJy/sr), WAVELENGTH their mean wavelength.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags

from ..x1d import write_spec2_x1d
from .layout import Layout, SlitLayout
from .render import RenderedSlit, render_slit

__all__ = ["background_names", "write_background_members"]


def background_names(science_names: list[str], n: int) -> list[str]:
    """``_x1d`` stems of ``n`` background exposures, numbered after the science exposures."""
    stem = science_names[0].rsplit("_", 3)[0]  # jw<ppppp><ooo><vvv>_<gsa>
    first = len(science_names) + 1
    return [f"{stem}_{first + k:05d}_nrs1_x1d" for k in range(n)]


def _blank(slit: SlitLayout) -> SlitLayout:
    """The slit on blank sky: no source, calibrated as extended (surface brightness)."""
    src = dataclasses.replace(slit.source, kind="background", source_type="EXTENDED")
    return dataclasses.replace(slit, source=src)


def _column_spectrum(rs: RenderedSlit, k: int, area_sr: float) -> dict[str, np.ndarray]:
    """Per-column extended-source extraction of exposure ``k`` of a rendered blank slit."""
    ex = rs.exposures[k]
    good = ((ex.dq & dqflags.DO_NOT_USE) == 0) & np.isfinite(ex.sci) & np.isfinite(rs.wavelength)
    if len(ex.cosmic_rays):  # stage 2 would have flagged them (jump detection)
        good[ex.cosmic_rays[:, 0], ex.cosmic_rays[:, 1]] = False
    n = good.sum(axis=0)
    cols = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = np.where(good, ex.sci, 0.0).sum(axis=0) / n
        var = {name: np.where(good, getattr(ex, name), 0.0).sum(axis=0) / n**2
               for name in ("var_poisson", "var_rnoise", "var_flat")}
        wave = np.where(good, rs.wavelength, 0.0).sum(axis=0) / n
    sb_err = np.sqrt(var["var_poisson"] + var["var_rnoise"] + var["var_flat"])
    to_jy = 1.0e6 * area_sr * n  # MJy/sr over n pixels -> Jy
    columns = {
        "WAVELENGTH": wave, "SURF_BRIGHT": sb, "SB_ERROR": sb_err,
        "SB_VAR_POISSON": var["var_poisson"], "SB_VAR_RNOISE": var["var_rnoise"], "SB_VAR_FLAT": var["var_flat"],
        "FLUX": sb * to_jy, "FLUX_ERROR": sb_err * to_jy, "NPIXELS": n.astype(float),
    }
    return {name: np.asarray(col[cols], dtype=np.float64) for name, col in columns.items()}


def write_background_members(
    layout: Layout,
    meta_of: dict,
    names: list[str],
    out: Path,
    rng: np.random.Generator,
) -> list[Path]:
    """Render and write ``len(names)`` background exposures as spec2 ``_x1d`` files.

    ``meta_of`` is the nested ``meta`` tree of a science exposure; the copies
    become background-target exposures (``BKGDTARG`` true, SRCTYPE EXTENDED).
    """
    n = len(names)
    rendered = [render_slit(layout, _blank(slit), n, False, rng) for slit in layout.slits]
    paths = []
    for k, name in enumerate(names):
        meta = dm.MultiSlitModel().meta.instance | _background_meta(meta_of, name, k)
        spectra = [
            {"columns": _column_spectrum(rs, k, layout.pixel_area_sr), "name": rs.layout.name,
             "source_type": "EXTENDED", "source_id": rs.layout.source.source_id,
             "slitlet_id": rs.layout.slitlet_id, "dispersion_direction": 1, "spectral_order": 1}
            for rs in rendered
        ]
        path = out / f"{name}.fits"
        write_spec2_x1d(path, meta, spectra)
        paths.append(path)
    return paths


def _background_meta(meta_of: dict, name: str, k: int) -> dict:
    meta = {key: (dict(value) if isinstance(value, dict) else value) for key, value in meta_of.items()}
    meta["observation"] = {**meta.get("observation", {}), "bkgdtarg": True, "exposure_number": name.split("_")[2]}
    meta["target"] = {**meta.get("target", {}), "source_type": "EXTENDED", "type": "FIXED"}
    meta["group_id"] = name.rsplit("_", 2)[0]
    meta.pop("wcs", None)
    meta.pop("wcsinfo", None)
    return meta
