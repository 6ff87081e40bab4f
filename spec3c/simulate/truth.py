"""The truth file (ASDF) written next to a simulated association."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asdf
import numpy as np

__all__ = ["Truth", "TruthSource", "load_truth", "write_truth"]


@dataclass(frozen=True)
class TruthSource:
    """True properties of one source key.

    ``wavelength`` (micron, float64, 1-D fine grid) and ``flux`` (Jy for POINT,
    MJy/sr for EXTENDED; zeros for background/virtual slits) sample the true
    spectrum; ``snr_median`` is the median per-column optimal-extraction S/N in
    one (un-subtracted) exposure.
    """

    source_id: int
    source_name: str
    source_type: str
    kind: str
    ra: float
    dec: float
    wavelength: np.ndarray
    flux: np.ndarray
    snr_median: float


@dataclass(frozen=True)
class Truth:
    """Contents of a ``*_truth.asdf`` file.

    ``exposures[exposure_name][slit_name]`` holds ``source_key``,
    ``source_ypos``, ``source_ra``/``source_dec`` (deg, the source's sky
    position in that exposure) and ``cosmic_rays`` ((n, 2) int64 ``(y, x)``
    cutout pixels); ``sky[exposure_name]`` is the sky surface brightness
    (MJy/sr) present in the raw exposure (removed by nod subtraction when
    ``nod_subtracted``).  For a moving target (``simulate(moving_target=True)``)
    ``ephemeris[exposure_name]`` is the target's (RA, Dec) in degrees, the
    MT_RA/MT_DEC written to the file, and ``TruthSource.ra/dec`` are the
    positions in the first exposure; otherwise ``ephemeris`` is empty.
    """

    mode: str
    seed: int
    nod_subtracted: bool
    sources: dict[str, TruthSource]
    exposures: dict[str, dict[str, dict[str, Any]]]
    sky: dict[str, float] = field(default_factory=dict)
    ephemeris: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def moving_target(self) -> bool:
        return bool(self.ephemeris)

    def flux_at(self, source_key: str, wavelength: np.ndarray | float) -> np.ndarray:
        """True spectrum of ``source_key`` linearly interpolated at ``wavelength`` (micron).

        NaN outside the tabulated range.
        """
        src = self.sources[str(source_key)]
        return np.interp(
            np.asarray(wavelength, dtype=np.float64),
            src.wavelength,
            src.flux,
            left=np.nan,
            right=np.nan,
        )


def write_truth(path: Path, truth: Truth) -> None:
    """Serialise ``truth`` to an ASDF file at ``path``."""
    tree = {
        "mode": truth.mode,
        "seed": int(truth.seed),
        "nod_subtracted": bool(truth.nod_subtracted),
        "sources": {
            k: {
                "source_id": int(s.source_id),
                "source_name": s.source_name,
                "source_type": s.source_type,
                "kind": s.kind,
                "ra": float(s.ra),
                "dec": float(s.dec),
                "wavelength": s.wavelength,
                "flux": s.flux,
                "snr_median": float(s.snr_median),
            }
            for k, s in truth.sources.items()
        },
        "exposures": truth.exposures,
        "sky": {k: float(v) for k, v in truth.sky.items()},
        "ephemeris": {k: [float(v[0]), float(v[1])] for k, v in truth.ephemeris.items()},
    }
    asdf.AsdfFile(tree).write_to(path, all_array_compression="zlib")


#: per-slit truth keys every simulator writes; others (e.g. WFSS ``contamination``) are kept as written
_KNOWN = ("source_key", "source_ypos", "source_ra", "source_dec", "cosmic_rays")


def load_truth(path: str | Path) -> Truth:
    """Read a truth file written by :func:`spec3c.simulate.simulate`.

    Parameters
    ----------
    path : str or Path
        The ``<asn stem>_truth.asdf`` file.

    Returns
    -------
    Truth
        With all arrays loaded into memory as numpy arrays.
    """
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        tree = af.tree
        sources = {
            str(k): TruthSource(
                source_id=int(v["source_id"]),
                source_name=str(v["source_name"]),
                source_type=str(v["source_type"]),
                kind=str(v["kind"]),
                ra=float(v["ra"]),
                dec=float(v["dec"]),
                wavelength=np.array(v["wavelength"], dtype=np.float64),
                flux=np.array(v["flux"], dtype=np.float64),
                snr_median=float(v["snr_median"]),
            )
            for k, v in tree["sources"].items()
        }
        exposures = {
            str(e): {
                str(sn): {
                    "source_key": str(d["source_key"]),
                    "source_ypos": float(d["source_ypos"]),
                    **{c: float(d[c]) for c in ("source_ra", "source_dec") if c in d},
                    "cosmic_rays": np.array(d["cosmic_rays"], dtype=np.int64).reshape(-1, 2),
                    **{k: v for k, v in d.items() if k not in _KNOWN and isinstance(v, (int, float, str))},
                }
                for sn, d in slits.items()
            }
            for e, slits in tree["exposures"].items()
        }
        sky = {str(k): float(v) for k, v in tree.get("sky", {}).items()}
        ephem = {str(k): (float(v[0]), float(v[1])) for k, v in tree.get("ephemeris", {}).items()}
        return Truth(
            str(tree["mode"]),
            int(tree["seed"]),
            bool(tree["nod_subtracted"]),
            sources,
            exposures,
            sky,
            ephem,
        )
