"""Per-pixel coordinates, evaluated once from an input gwcs at ingest."""

from __future__ import annotations

import io
from unittest import mock

import asdf
import asdf.yamlutil
import numpy as np


def slit_coordinates(wcs, shape: tuple[int, int]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Evaluate a slit gwcs on every pixel of a cutout.

    Parameters
    ----------
    wcs : gwcs.WCS
        ``detector -> slit_frame -> world`` (world = RA, Dec, wavelength in µm);
        detector coordinates are 0-based cutout pixels.
    shape : (ny, nx)

    Returns
    -------
    dict of str to ndarray, each ``(ny, nx)`` float64
        ``wavelength`` (µm), ``ra``, ``dec`` (deg) and ``slit_y`` (slit-frame
        cross-dispersion coordinate); NaN outside the WCS bounding box.
    """
    y, x = np.indices(shape, dtype=np.float64)
    ra, dec, wavelength = (np.asarray(a, dtype=np.float64) for a in wcs(x, y, with_bounding_box=True))
    to_slit = wcs.get_transform("detector", "slit_frame")
    slit_y = np.asarray(to_slit(x, y)[1], dtype=np.float64)
    slit_y[~np.isfinite(wavelength)] = np.nan
    return {"wavelength": wavelength, "ra": ra, "dec": dec, "slit_y": slit_y}


def wcs_to_asdf(wcs, validate: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    """Serialise a gwcs object as the bytes of an ASDF file (tree key ``wcs``).

    Schema validation is 80 % of the cost of writing a slit WCS, and these
    objects were validated when their input file was read, so it is skipped
    unless ``validate``.  (asdf offers no public switch for validation on
    write; without the private hook it simply validates.)
    """
    buf = io.BytesIO()
    hook = getattr(getattr(asdf, "yamlutil", None), "schema", None)
    if validate or hook is None or not hasattr(hook, "validate"):
        asdf.AsdfFile({"wcs": wcs}).write_to(buf)
        return buf.getvalue()
    with mock.patch.object(hook, "validate", _no_validation):
        asdf.AsdfFile({"wcs": wcs}).write_to(buf)
    return buf.getvalue()


def _no_validation(*args: object, **kwargs: object) -> None:
    return None


def wcs_from_asdf(blob: bytes):  # type: ignore[no-untyped-def]
    """Inverse of :func:`wcs_to_asdf`."""
    with asdf.open(io.BytesIO(blob), lazy_load=False, memmap=False) as af:
        return af.tree["wcs"]
