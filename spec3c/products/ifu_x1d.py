"""The ``_x1d`` products of IFU cubes: one file per cube, named as its ``_s3d`` (jwst 3.0.0:
``<product>_ch1-short_x1d.fits``, ``<product>_g395h-f290lp_x1d.fits``).

A ``MultiSpecModel`` (NIRSpec) or ``MRSMultiSpecModel`` (MIRI, with the RF_FLUX,
RF_SURF_BRIGHT and RF_BACKGROUND columns) holding one ``EXTRACT1D`` table: the
IFU units (``(MJy/sr)^2`` for the surface-brightness variances), the spectrum
header the reference's ``ifu_extract1d`` writes (SLTNAME = EXP_TYPE, SRCTYPE,
EXTR_X/EXTR_Y, SLIT_RA/SLIT_DEC at the cube's centre, DETECTOR, PA_APER) and a
spectral gwcs; the primary header is the cube's (``update(cube, only="PRIMARY")``)
with S_EXTR1D, and S_SPLEAK where spectral_leak ran (MIRI MRS).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from ..modes.registry import mode_of_store
from ..naming import ProductNaming, product_filename
from ..results import COMPLETE, IfuCube, Spectrum1D, x1d_cube_key
from ..store import Store
from .fits_io import atomic_save
from .meta import merge_tree, primary_meta, step_statuses
from .s3d import _cube_meta
from .wcs import spectral_gwcs
from .writers import PathLike, _resolved, _source_base, _status

__all__ = ["IFU_UNITS", "model_class", "spectrum_node", "write_cube_x1ds"]

#: column units of an IFU spectrum (jwst 3.0.0 ``ifu_extract1d``)
IFU_UNITS = {
    "WAVELENGTH": "um", "FLUX": "Jy", "FLUX_ERROR": "Jy", "FLUX_VAR_POISSON": "Jy^2", "FLUX_VAR_RNOISE": "Jy^2",
    "FLUX_VAR_FLAT": "Jy^2", "SURF_BRIGHT": "MJy/sr", "SB_ERROR": "MJy/sr", "SB_VAR_POISSON": "(MJy/sr)^2",
    "SB_VAR_RNOISE": "(MJy/sr)^2", "SB_VAR_FLAT": "(MJy/sr)^2", "BACKGROUND": "MJy/sr", "BKGD_ERROR": "MJy/sr",
    "BKGD_VAR_POISSON": "(MJy/sr)^2", "BKGD_VAR_RNOISE": "(MJy/sr)^2", "BKGD_VAR_FLAT": "(MJy/sr)^2",
    "RF_FLUX": "Jy", "RF_SURF_BRIGHT": "MJy/sr", "RF_BACKGROUND": "MJy/sr",
}  # fmt: skip

#: spectrum attributes of an IFU x1d (``SpecModel`` names) and their types
_ATTRIBUTES = {"name": str, "source_type": str, "extraction_x": None, "extraction_y": None, "slit_ra": float,
               "slit_dec": float, "detector": str, "position_angle": float}


def _table(spectrum: Spectrum1D, mrs: bool) -> fits.FITS_rec:
    """The EXTRACT1D table (stdatamodels casts DQ), with the IFU units."""
    with (dm.MRSSpecModel if mrs else dm.SpecModel)(spec_table=spectrum.table()) as spec:
        table = spec.spec_table
    for name in table.dtype.names:
        if name in IFU_UNITS:
            table.columns[name].unit = IFU_UNITS[name]
    return table


def _attributes(spectrum: Spectrum1D) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in _ATTRIBUTES.items():
        value = spectrum.meta.get(key)
        if value is None:
            continue
        if kind is None:  # EXTR_X/EXTR_Y: an integer spaxel when the source position chose it
            out[key] = value if isinstance(value, int) else float(value)
        else:
            out[key] = kind(value)
    return out


def spectrum_node(spectrum: Spectrum1D, detector: str | None = None) -> dict[str, Any]:
    """The ``spec`` entry of an IFU x1d model: the table, the spectrum header and its spectral gwcs
    (``detector``: the cube's DETECTOR, which the reference copies)."""
    attrs = _attributes(spectrum)
    if detector:
        attrs["detector"] = str(detector)
    return {
        "spec_table": _table(spectrum, "RF_FLUX" in spectrum.columns),
        "meta": {"wcs": spectral_gwcs(attrs.get("slit_ra", float("nan")), attrs.get("slit_dec", float("nan")),
                                      spectrum.columns["WAVELENGTH"])},
        **attrs,
    }


def model_class(spectrum: Spectrum1D) -> Any:
    """``MRSMultiSpecModel`` for spectra with the residual-fringe columns, else ``MultiSpecModel``."""
    return dm.MRSMultiSpecModel if "RF_FLUX" in spectrum.columns else dm.MultiSpecModel


def _spectral_leak_status(store: Store, source: str, spectrum: Spectrum1D) -> str | None:
    """S_SPLEAK of a cube's x1d, as the reference: COMPLETE on the corrected channel 3A spectrum
    only, SKIPPED (or FAILED) on every spectrum when the step did not correct; none when it did
    not run (NIRSpec)."""
    status = step_statuses(_status(store, source)).get("spectral_leak")
    if status == COMPLETE:
        return COMPLETE if spectrum.meta.get("spectral_leak") == COMPLETE else None
    return status


def _write_one(store: Store, source: str, naming: ProductNaming, cube: IfuCube, spectrum: Spectrum1D,
               path: Path) -> Path:
    meta = _cube_meta(store, source, naming, cube)
    merge_tree(meta, {"cal_step": {"extract_1d": COMPLETE}})  # the spectrum exists: extract_1d ran
    leak = _spectral_leak_status(store, source, spectrum)
    if leak is not None:
        merge_tree(meta, {"cal_step": {"spectral_leak": leak}})
    node = spectrum_node(spectrum, meta.get("instrument", {}).get("detector"))
    for key in ("wcs", "model_type", "filename", "date"):
        meta.pop(key, None)
    with model_class(spectrum)({"spec": [node]}, validate_on_assignment=False) as model:
        model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})),
                                            primary_meta(meta, model.schema, keep_unmapped=False))
        return atomic_save(model, path)


def write_cube_x1ds(store: Store, source: str, naming: ProductNaming, out_dir: PathLike,
                    suffix: str = "x1d", only: Collection[str] | None = None) -> list[Path]:
    """Write the spectrum of every cube of the source that has one (``only``: of these cube
    names), as ``<cube product>_x1d.fits``."""
    naming = _resolved(store, naming)
    traits = mode_of_store(store).cube
    if traits is None:
        raise ValueError("cube x1d products exist only for IFU modes")
    base = _source_base(naming, source, store.list_cutouts(source))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for name in IfuCube.names(store, source):
        if only is not None and name not in only:
            continue
        try:
            spectrum = Spectrum1D.load(store, source, x1d_cube_key(name))
        except KeyError:
            continue
        cube = IfuCube.load(store, source, name)
        bands = [(str(a), str(b)) for a, b in cube.meta["bands"]]
        stem = traits.cube_name(base, bands, cube.meta.get("coord_system") == "internal_cal")
        paths.append(_write_one(store, source, naming, cube, spectrum, Path(out_dir) / product_filename(stem, suffix)))
    return paths
