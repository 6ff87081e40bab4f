"""What ``process`` writes into the store and ``export`` reads back.

Every result lives under (source key, result key) in the store:

=====================  ==============================================================
key                    content
=====================  ==============================================================
``status``             meta: resolved parameters and per-step status of the source
``crf/<exp>/<slit>``   arrays ``dq`` (input DQ | outlier flags); meta ``n_flagged``
``s2d``                :class:`Resampled2D`
``x1d``                :class:`Spectrum1D` (one spectrum per source for slit modes)
``x1d/<exp>``          :class:`Spectrum1D` of one exposure (slitless: no resampling)
``x1d/<cube>``         :class:`Spectrum1D` extracted from one IFU cube (``s3d/<cube>``)
``c1d``                :class:`CombinedResult` (combine_1d of the ``x1d/<exp>`` spectra)
``master_background``  the master spectrum the source's background came from
``s3d/<cube>``         :class:`IfuCube` header; its planes in ``s3d/<cube>/planes/...`` slabs
=====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .store import Store

STATUS = "status"
S2D = "s2d"
X1D = "x1d"

#: step status values, as the reference's S_<STEP> keywords
COMPLETE, SKIPPED, FAILED = "COMPLETE", "SKIPPED", "FAILED"


C1D = "c1d"


def crf_key(exposure: str, slit: str) -> str:
    return f"crf/{exposure}/{slit}"


def x1d_exposure_key(exposure: str) -> str:
    return f"{X1D}/{exposure}"


def x1d_cube_key(cube: str) -> str:
    """Where the spectrum extracted from IFU cube ``cube`` is kept."""
    return f"{X1D}/{cube}"


@dataclass
class Resampled2D:
    """A source's rectified 2-D spectrum (the ``_s2d`` product).

    Arrays are ``(ny, nx)`` with dispersion along x: ``sci, err, wht,
    var_poisson, var_rnoise, var_flat`` float32, ``wavelength`` float64 (µm),
    ``con`` int32 ``(n_planes, ny, nx)`` context bits (bit k = input k).
    ``wcs_asdf`` is the output gwcs (detector → slit_frame → world) as ASDF
    bytes.  ``meta`` holds the slit attributes copied from the inputs
    (``name, source_id, source_name, source_type, source_xpos, source_ypos``…),
    ``bunit_data``/``bunit_err``, ``pixel_scale_ratio``,
    ``pixelarea_steradians``/``pixelarea_arcsecsq``, ``exposure_time``,
    ``measurement_time``, ``inputs`` (exposure names), ``spatial_scale``
    (arcsec/pixel), ``slit_y`` (1-D slit-frame y per output row) and ``s_region``.
    """

    sci: np.ndarray
    err: np.ndarray
    wht: np.ndarray
    con: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    wavelength: np.ndarray
    wcs_asdf: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    #: the output gwcs object while it is at hand (resample_spec made it); not stored
    gwcs: Any = field(default=None, repr=False, compare=False)

    _ARRAYS = ("sci", "err", "wht", "con", "var_poisson", "var_rnoise", "var_flat", "wavelength")

    def save(self, store: Store, source: str) -> None:
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        arrays["wcs_asdf"] = np.frombuffer(self.wcs_asdf, dtype=np.uint8)
        store.put_result(source, S2D, arrays, self.meta)

    @classmethod
    def load(cls, store: Store, source: str) -> Resampled2D:
        arrays, meta = store.get_result(source, S2D)
        return cls(**{n: arrays[n] for n in cls._ARRAYS}, wcs_asdf=arrays["wcs_asdf"].tobytes(), meta=meta)


#: x1d columns (stdatamodels spectable) in table order, with their dtypes
X1D_COLUMNS: dict[str, str] = {
    "WAVELENGTH": "f8",
    "FLUX": "f8",
    "FLUX_ERROR": "f8",
    "FLUX_VAR_POISSON": "f8",
    "FLUX_VAR_RNOISE": "f8",
    "FLUX_VAR_FLAT": "f8",
    "SURF_BRIGHT": "f8",
    "SB_ERROR": "f8",
    "SB_VAR_POISSON": "f8",
    "SB_VAR_RNOISE": "f8",
    "SB_VAR_FLAT": "f8",
    "DQ": "u4",
    "BACKGROUND": "f8",
    "BKGD_ERROR": "f8",
    "BKGD_VAR_POISSON": "f8",
    "BKGD_VAR_RNOISE": "f8",
    "BKGD_VAR_FLAT": "f8",
    "NPIXELS": "f8",
}
#: the columns MIRI MRS spectra add (stdatamodels ``MRSSpecModel``): residual-fringe corrected values
MRS_X1D_COLUMNS: dict[str, str] = {"RF_FLUX": "f8", "RF_SURF_BRIGHT": "f8", "RF_BACKGROUND": "f8"}


@dataclass
class Spectrum1D:
    """One extracted spectrum (a row set of an ``EXTRACT1D`` table).

    ``columns`` maps the :data:`X1D_COLUMNS` names to 1-D arrays of one
    length.  ``meta`` carries the spectrum header: ``name`` (slit),
    ``source_id, source_name, source_type, source_xpos, source_ypos,
    source_ra, source_dec, slit_ra, slit_dec, extraction_xstart/xstop/
    ystart/ystop`` (1-indexed), ``extraction_x/y``, ``spectral_order``,
    ``dispersion_direction``, ``flux_unit``/``sb_unit`` etc.
    """

    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, store: Store, source: str, key: str = X1D) -> None:
        store.put_result(source, key, self.columns, self.meta)

    @classmethod
    def load(cls, store: Store, source: str, key: str = X1D) -> Spectrum1D:
        columns, meta = store.get_result(source, key)
        return cls({k: columns[k] for k in (*X1D_COLUMNS, *MRS_X1D_COLUMNS) if k in columns}, meta)

    def table(self) -> np.ndarray:
        """The columns as a structured array (stdatamodels spec_table layout; with the
        :data:`MRS_X1D_COLUMNS` when the spectrum has them)."""
        n = len(self.columns["WAVELENGTH"])
        layout = {**X1D_COLUMNS, **(MRS_X1D_COLUMNS if "RF_FLUX" in self.columns else {})}
        out = np.zeros(n, dtype=[(k, v) for k, v in layout.items()])
        for name in layout:
            if name in self.columns:
                out[name] = self.columns[name]
        return out


@dataclass
class CombinedResult:
    """combine_1d output of a source: per spectral order a CombinedSpectrum, plus
    the spectrum attributes of each order's first input (``spec_meta``)."""

    orders: dict[int, Any]  # order -> algorithms.combine1d.CombinedSpectrum
    spec_meta: dict[int, dict[str, Any]] = field(default_factory=dict)

    def save(self, store: Store, source: str) -> None:
        arrays = {f"{order}.{name}": spec.column(name) for order, spec in self.orders.items()
                  for name in _combined_columns()}
        store.put_result(source, C1D, arrays, {"orders": list(self.orders),
                                               "spec_meta": {str(k): v for k, v in self.spec_meta.items()}})

    @classmethod
    def load(cls, store: Store, source: str) -> CombinedResult:
        from .algorithms.combine1d import CombinedSpectrum

        arrays, meta = store.get_result(source, C1D)
        orders = {int(o): CombinedSpectrum(*(arrays[f"{o}.{name}"] for name in _combined_columns()))
                  for o in meta["orders"]}
        return cls(orders, {int(k): v for k, v in meta.get("spec_meta", {}).items()})


def _combined_columns() -> tuple[str, ...]:
    from .algorithms.combine1d import COLUMNS

    return tuple(COLUMNS)


#: where ingest records the association (not a source: store.sources() lists cutout sources only)
ASSOCIATION_SOURCE, ASSOCIATION_KEY = "_association", "asn"


def save_association(store: Store, asn: Any) -> None:
    """Record what product names are made from (``spec3c.asn.Association``)."""
    store.put_result(ASSOCIATION_SOURCE, ASSOCIATION_KEY, {}, {
        "product_name": asn.product_name, "asn_id": asn.asn_id, "asn_type": asn.asn_type,
        "program": asn.program, "target": asn.target, "table_name": asn.path.name,
        "exp_type": asn.exp_type, "asn_pool": getattr(asn, "pool", None),
    })


def load_association(store: Store) -> dict[str, Any]:
    """The association recorded at ingest (KeyError if the store predates it)."""
    return store.get_result(ASSOCIATION_SOURCE, ASSOCIATION_KEY)[1]


# -- IFU cubes (cube_build) ------------------------------------------------------

S3D = "s3d"
#: largest piece of a cube plane stored as one result (a big blob costs the store many times its size)
SLAB_BYTES = 8 << 20


@dataclass
class IfuCube:
    """One IFU cube (an ``_s3d`` product) as the store keeps it.

    ``s3d/<name>`` holds the header: ``wavelength`` (nz,) float64 plane centres
    and ``meta`` (``shape`` (nz, ny, nx), ``tiles`` [[p0, p1], ...], ``wcsinfo``,
    ``ifu``, ``photometry``, ``bands``, ``inputs``, ``channel`` ...).  The planes
    ``sci``, ``err`` (float32), ``dq`` (uint32) and ``wmap`` (float32) are stored
    per wavelength tile ``[p0, p1)`` in slabs of at most :data:`SLAB_BYTES`
    along the wavelength axis, ``s3d/<name>/planes/<p0>/<plane>/<q0>`` (``q0``
    relative to ``p0``), so a cube larger than memory is written and read piece
    by piece.  ``name`` is the product's base name (the association's plus the bands).
    """

    name: str
    wavelength: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    PLANES = ("sci", "err", "dq", "wmap")

    @staticmethod
    def key(name: str) -> str:
        return f"{S3D}/{name}"

    @staticmethod
    def names(store: Store, source: str) -> list[str]:
        """Names of the cubes stored for a source, in the order they were built."""
        found = {key.split("/", 1)[1]: key for src, key in store.list_results(source)
                 if key.startswith(f"{S3D}/") and "/planes/" not in key}
        order = {name: store.get_result(source, key)[1].get("order", 0) for name, key in found.items()}
        return sorted(found, key=lambda n: (order[n], n))

    @property
    def shape(self) -> tuple[int, int, int]:
        nz, ny, nx = self.meta["shape"]
        return (int(nz), int(ny), int(nx))

    @property
    def tiles(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self.meta["tiles"]]

    def _slabs(self, nplanes: int, ny: int, nx: int) -> range:
        per = max(1, SLAB_BYTES // max(ny * nx * 4, 1))  # every plane is 4 bytes a voxel
        return range(0, nplanes, per)

    def _slab_key(self, p0: int, plane: str, q0: int) -> str:
        return f"{S3D}/{self.name}/planes/{int(p0)}/{plane}/{int(q0)}"

    def save(self, store: Store, source: str) -> None:
        store.put_result(source, self.key(self.name), {"wavelength": self.wavelength}, self.meta)

    def save_tile(self, store: Store, source: str, p0: int, planes: dict[str, np.ndarray]) -> None:
        """Store the planes ``(p1 - p0, ny, nx)`` of the tile starting at plane ``p0``."""
        nplanes, ny, nx = planes["sci"].shape
        slabs = self._slabs(nplanes, ny, nx)
        for plane in self.PLANES:
            for q0 in slabs:
                part = planes[plane][q0:q0 + slabs.step]
                store.put_result(source, self._slab_key(p0, plane, q0), {"data": part}, {})

    def iter_plane(self, store: Store, source: str, tile: tuple[int, int], plane: str) -> Iterator[np.ndarray]:
        """The slabs of one plane of a tile, in wavelength order (``(n, ny, nx)`` each)."""
        p0, p1 = tile
        _, ny, nx = self.shape
        for q0 in self._slabs(p1 - p0, ny, nx):
            yield store.get_result(source, self._slab_key(p0, plane, q0))[0]["data"]

    def read_tile(self, store: Store, source: str, p0: int) -> dict[str, np.ndarray]:
        """Every plane of the tile starting at ``p0``, whole."""
        tile = next(t for t in self.tiles if t[0] == p0)
        return {plane: np.concatenate(list(self.iter_plane(store, source, tile, plane))) for plane in self.PLANES}

    @classmethod
    def load(cls, store: Store, source: str, name: str) -> IfuCube:
        arrays, meta = store.get_result(source, cls.key(name))
        return cls(name, arrays["wavelength"], meta)
