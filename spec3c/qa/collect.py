"""What the QA page shows of one source, read from the store (no plotting here).

Every panel is optional: a source has what its mode's steps left in the store
(``spec3c.results``), and the page shows that and nothing else:

* the rectified 2-D spectrum (``s2d``) with the extraction aperture of its
  ``x1d``, or for IFU modes a white-light image of each cube (``s3d/<cube>``);
* the 1-D spectra: the combined one (``c1d``, per order) or the source's
  ``x1d``, each with its error, and the per-exposure ``x1d/<exp>[/<slit>]``
  spectra as faint lines;
* each exposure's outlier map: the ``crf`` DQ's OUTLIER bits over the cutout's
  science plane.

Images are turned so that the dispersion runs along x (MIRI LRS disperses
along y), which puts every mode's panels the same way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dqflags
from ..results import C1D, S2D, S3D, STATUS, X1D, CombinedResult, IfuCube, Resampled2D, Spectrum1D
from ..store import Store

#: how the keys of the crf results start (:func:`spec3c.results.crf_key`: ``crf/<exposure>/<slit>``)
CRF_PREFIX = "crf/"

#: at most this many per-exposure spectra are drawn under the final one
MAX_EXPOSURE_SPECTRA = 24


@dataclass
class Panel:
    """One image: ``data`` (ny, nx) float with the dispersion along x.

    ``aperture`` is the extraction region as pixel edges ``(x0, x1, y0, y1)``
    (0-indexed, in ``data``'s frame); ``flagged`` the ``(y, x)`` indices of
    outlier pixels; ``note`` a short caption (shape, wavelength range, counts).
    """

    title: str
    data: np.ndarray
    unit: str = ""
    note: str = ""
    aperture: tuple[float, float, float, float] | None = None
    flagged: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class Spectrum:
    """One spectrum to draw: ``wavelength`` (µm), ``value`` and ``error`` (n,) float64."""

    label: str
    wavelength: np.ndarray
    value: np.ndarray
    error: np.ndarray
    unit: str = ""


@dataclass
class SourceQa:
    """Everything the QA page shows of one source.

    ``steps`` maps a step name to ``(status, message)``; ``error`` is the
    processing error of a source whose run failed; ``images`` the 2-D panels
    (``kind`` ``s2d`` or ``s3d``), ``spectra`` the final spectra and
    ``exposure_spectra`` the per-exposure ones; ``outliers`` one panel per
    (exposure, slit) with ``n_flagged`` of ``n_pixels`` flagged in all.
    """

    source: str
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)
    error: str | None = None
    processed: bool = False
    source_type: str = ""
    slit: str = ""
    kind: str = S2D
    images: list[Panel] = field(default_factory=list)
    spectra: list[Spectrum] = field(default_factory=list)
    exposure_spectra: list[Spectrum] = field(default_factory=list)
    outliers: list[Panel] = field(default_factory=list)
    n_flagged: int = 0
    n_pixels: int = 0
    snr: float | None = None

    @property
    def flagged_fraction(self) -> float | None:
        """Outlier-flagged fraction of the source's crf pixels (None without outlier_detection)."""
        return self.n_flagged / self.n_pixels if self.n_pixels else None


# -- statistics ------------------------------------------------------------------------------

def median_snr(value: np.ndarray, error: np.ndarray, dq: np.ndarray | None = None) -> float | None:
    """Median of ``value / error`` over the elements with a finite value, a positive finite error
    and (with ``dq``) no DO_NOT_USE; None when there is none."""
    value, error = np.asarray(value, dtype=np.float64), np.asarray(error, dtype=np.float64)
    good = np.isfinite(value) & np.isfinite(error) & (error > 0)
    if dq is not None:
        good &= (np.asarray(dq) & dqflags.DO_NOT_USE) == 0
    if not good.any():
        return None
    return float(np.median(value[good] / error[good]))


# -- spectra -----------------------------------------------------------------------------------

def _pick(columns: dict[str, np.ndarray], meta: dict[str, Any], error_name: str) -> tuple[str, str, str]:
    """(value column, error column, unit) to show: surface brightness for extended sources, flux
    otherwise, or the other one when the chosen column holds no finite value."""
    flux = ("FLUX", error_name, str(meta.get("flux_unit", "")))
    brightness = ("SURF_BRIGHT", "SB_ERROR", str(meta.get("sb_unit", "")))
    first, second = (brightness, flux) if str(meta.get("source_type", "")).upper() == "EXTENDED" else (flux, brightness)
    values = columns.get(first[0])
    if values is not None and np.isfinite(values).any():
        return first
    return second if second[0] in columns else first


def _spectrum(label: str, columns: dict[str, np.ndarray], meta: dict[str, Any],
              error_name: str) -> tuple[Spectrum, np.ndarray | None]:
    """The spectrum to draw from x1d/c1d columns, and its DQ (None if it has none)."""
    value_col, error_col, unit = _pick(columns, meta, error_name)
    nan = np.full(len(columns["WAVELENGTH"]), np.nan)
    spectrum = Spectrum(label, np.asarray(columns["WAVELENGTH"], dtype=np.float64),
                        np.asarray(columns.get(value_col, nan), dtype=np.float64),
                        np.asarray(columns.get(error_col, nan), dtype=np.float64), unit)
    return spectrum, columns.get("DQ")


def _x1d(store: Store, source: str, key: str) -> tuple[Spectrum, np.ndarray | None]:
    x1d = Spectrum1D.load(store, source, key)
    return _spectrum(key.split("/", 1)[1], x1d.columns, x1d.meta, "FLUX_ERROR")  # x1d/<exposure>[/<slit>]


def _combined_snr(parts: list[tuple[Spectrum, np.ndarray | None]]) -> float | None:
    """S/N over every element of several spectra (orders, slits) together."""
    if not parts:
        return None
    value = np.concatenate([s.value for s, _ in parts])
    error = np.concatenate([s.error for s, _ in parts])
    dqs = [dq for _, dq in parts]
    dq = None if any(d is None for d in dqs) else np.concatenate([np.asarray(d) for d in dqs])
    return median_snr(value, error, dq)


def _read_spectra(store: Store, source: str, keys: list[str], qa: SourceQa) -> None:
    """The final spectra (c1d, else x1d, else the per-exposure x1ds), their S/N, and the per-exposure ones."""
    exposure_keys = [k for k in keys if k.startswith(f"{X1D}/")]
    final: list[tuple[Spectrum, np.ndarray | None]] = []
    if C1D in keys:
        combined = CombinedResult.load(store, source)
        for order, spec in combined.orders.items():
            columns = {name: spec.column(name) for name in ("WAVELENGTH", "FLUX", "ERROR", "SURF_BRIGHT", "SB_ERROR", "DQ")}
            final.append(_spectrum(f"c1d order {order}", columns, combined.spec_meta.get(order, {}), "ERROR"))
    elif X1D in keys:
        x1d = Spectrum1D.load(store, source)
        final.append(_spectrum(X1D, x1d.columns, x1d.meta, "FLUX_ERROR"))
        _aperture_from(x1d.meta, qa)
    else:  # not combined: the per-exposure spectra are the final ones
        final = [_x1d(store, source, key) for key in exposure_keys]
        exposure_keys = []
    qa.snr = _combined_snr(final)
    qa.spectra = [s for s, _ in final[:MAX_EXPOSURE_SPECTRA]]
    qa.exposure_spectra = [_x1d(store, source, key)[0] for key in exposure_keys[:MAX_EXPOSURE_SPECTRA]]


# -- 2-D panels ----------------------------------------------------------------------------------

def _along_x(image: np.ndarray, dispersion_direction: Any) -> np.ndarray:
    """``image`` with the dispersion along x (transposed when it runs along y)."""
    return image.T if dispersion_direction == 2 else image


def _aperture_from(meta: dict[str, Any], qa: SourceQa) -> None:
    """The x1d's extraction region on the s2d (read once the s2d panel exists)."""
    names = [f"extraction_{k}" for k in ("xstart", "xstop", "ystart", "ystop")]
    if not qa.images or any(meta.get(name) is None for name in names):
        return
    xstart, xstop, ystart, ystop = (float(meta[name]) for name in names)
    # 1-indexed pixel centres, x along the dispersion and y across it, whatever the image axes
    qa.images[0].aperture = (xstart - 1.5, xstop - 0.5, ystart - 1.5, ystop - 0.5)


def _wavelength_note(wavelength: np.ndarray) -> str:
    finite = wavelength[np.isfinite(wavelength)]
    return f"{finite.min():.4g}-{finite.max():.4g} µm" if finite.size else ""


def _s2d_panel(store: Store, source: str) -> tuple[Panel, Any]:
    s2d = Resampled2D.load(store, source)
    direction = s2d.meta.get("dispersion_direction", 1)
    data = _along_x(np.asarray(s2d.sci, dtype=np.float64), direction)
    note = f"{data.shape[0]}x{data.shape[1]} px, {_wavelength_note(s2d.wavelength)}, inputs: " \
           f"{len(s2d.meta.get('inputs', []))}"
    return Panel(f"s2d {s2d.meta.get('name', source)}", data, str(s2d.meta.get("bunit_data", "")), note), s2d.meta


def white_light(store: Store, source: str, cube: IfuCube) -> np.ndarray:
    """Mean over wavelength of a stored cube's ``sci`` (ny, nx) float64, NaN where no plane has data;
    read slab by slab, so memory is one slab."""
    _, ny, nx = cube.shape
    total, count = np.zeros((ny, nx)), np.zeros((ny, nx))
    for tile in cube.tiles:
        for slab in cube.iter_plane(store, source, tile, "sci"):
            good = np.isfinite(slab)
            total += np.where(good, slab, 0.0).sum(axis=0)
            count += good.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _cube_panels(store: Store, source: str) -> list[Panel]:
    panels = []
    for name in IfuCube.names(store, source):
        cube = IfuCube.load(store, source, name)
        nz, ny, nx = cube.shape
        note = f"{ny}x{nx} spaxels, {nz} planes, {_wavelength_note(cube.wavelength)}"
        panels.append(Panel(f"s3d {name} (white light)", white_light(store, source, cube), note=note))
    return panels


def _read_images(store: Store, source: str, keys: list[str], qa: SourceQa) -> Any:
    """The s2d panel (or the cubes' white-light images); returns the dispersion direction."""
    if S2D in keys:
        panel, meta = _s2d_panel(store, source)
        qa.images = [panel]
        qa.slit = str(meta.get("name", ""))
        qa.source_type = str(meta.get("source_type", "") or "")
        return meta.get("dispersion_direction", 1)
    if any(k.startswith(f"{S3D}/") for k in keys):
        qa.kind = S3D
        qa.images = _cube_panels(store, source)
    return None


# -- outlier maps --------------------------------------------------------------------------------

def _read_outliers(store: Store, source: str, keys: list[str], direction: Any, qa: SourceQa) -> None:
    """One panel per crf result: the cutout's science plane with its OUTLIER-flagged pixels."""
    crf_keys = [k for k in keys if k.startswith(CRF_PREFIX)]
    if not crf_keys:
        return
    science = {(c.exposure, c.slit): c for c in store.read_cutouts(source, ["sci"])}
    for key in crf_keys:
        exposure, _, slit = key[len(CRF_PREFIX):].partition("/")
        arrays, meta = store.get_result(source, key)
        dq = np.asarray(arrays["dq"])
        cutout = science.get((exposure, slit))
        turn = cutout.meta.get("dispersion_direction", direction) if cutout is not None else direction
        flagged = _along_x((dq & dqflags.OUTLIER) != 0, turn)
        sci = cutout.planes["sci"] if cutout is not None and cutout.planes["sci"].shape == dq.shape else None
        n = int(meta.get("n_flagged", np.count_nonzero(flagged)))
        qa.n_flagged += n
        qa.n_pixels += dq.size
        data = np.zeros(flagged.shape) if sci is None else _along_x(np.asarray(sci, dtype=np.float64), turn)
        rows, cols = np.nonzero(flagged)
        qa.outliers.append(Panel(f"{exposure} {slit}", data, note=f"{n} flagged ({100.0 * n / max(dq.size, 1):.2f}%)",
                                 flagged=(rows, cols)))
        if not qa.source_type and cutout is not None:
            qa.source_type = str(cutout.meta.get("source_type", "") or "")


# -- one source ----------------------------------------------------------------------------------

def _read_status(store: Store, source: str, qa: SourceQa) -> None:
    status = store.get_result(source, STATUS)[1]
    qa.processed = True
    qa.error = status.get("error")
    for name, entry in status.get("steps", {}).items():
        if isinstance(entry, dict):
            qa.steps[name] = (str(entry.get("status", "")).upper(), str(entry.get("message", "")))


def collect_source(store: Store, source: str) -> SourceQa:
    """Read what the QA page shows of ``source`` (whatever of it exists)."""
    qa = SourceQa(source)
    keys = [key for _, key in store.list_results(source)]
    if STATUS in keys:
        _read_status(store, source, qa)
    direction = _read_images(store, source, keys, qa)
    _read_spectra(store, source, keys, qa)
    _read_outliers(store, source, keys, direction, qa)
    if not qa.source_type:
        qa.source_type = _first_source_type(store, source)
    return qa


def _first_source_type(store: Store, source: str) -> str:
    infos = store.list_cutouts(source)
    return str(infos[0].meta.get("source_type", "") or "") if infos else ""
