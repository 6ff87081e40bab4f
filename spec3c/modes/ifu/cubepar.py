"""Read a jwst-format CUBEPAR reference file (``--steps.cube_build.override_cubepar``) with stdatamodels
(jwst 3.0.0 ``cube_build_io_util.read_cubepars``).

Per band: spaxel size, spectral step, wavelength limits and, for ``msm`` /
``emsm`` weighting, the band's ROI and weighting parameters.  Wavelength
tables (non-linear cubes): MIRI one multi-channel table, NIRSpec one per
resolution (``prism``, ``med``, ``high``); the columns of the chosen
weighting (drizzle: wavelengths only), the others NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...algorithms.cube_setup import BandPars, WaveTable
from ...errors import InputError

#: band key: (channel, subchannel) for MIRI, (grating, filter) for NIRSpec, lower case
BandKey = tuple[str, str]

_MODELS = {"MIRI": "MiriIFUCubeParsModel", "NIRSPEC": "NirspecIFUCubeParsModel"}
_WEIGHT_COLUMNS = {"msm": ("roispatial", "roispectral", "power", "softrad"),
                   "emsm": ("roispatial", "roispectral", "scalerad")}
_FIELD = {"roispatial": "rois", "roispectral": "roiw", "power": "power", "softrad": "softrad",
          "scalerad": "scalerad"}


@dataclass(frozen=True, eq=False)
class CubePars:
    """What a CUBEPAR file says for the bands of an association, for one weighting."""

    path: str
    bands: dict[BandKey, BandPars]
    tables: dict[str, WaveTable]

    def band(self, key: BandKey) -> BandPars:
        if key not in self.bands:
            raise InputError(self.path, f"CUBEPAR has no row for band {'/'.join(key)}")
        return self.bands[key]

    def table(self, name: str) -> WaveTable:
        if name not in self.tables:
            raise InputError(self.path, f"CUBEPAR has no {name!r} wavelength table for this weighting")
        return self.tables[name]


def _rows(table: Any, path: str, what: str) -> Iterable[Any]:
    if table is None:
        raise InputError(path, f"CUBEPAR lacks its {what} table")
    return table


def _key(row: Any, instrument: str) -> BandKey:
    if instrument == "MIRI":
        return (str(row["channel"]).strip(), str(row["band"]).strip().lower())
    return (str(row["disperser"]).strip().lower(), str(row["filter"]).strip().lower())


def _band_rows(model: Any, instrument: str, weighting: str, path: str) -> dict[BandKey, BandPars]:
    base: dict[BandKey, dict[str, float]] = {}
    for row in _rows(model.ifucubepars_table, path, "IFUCUBEPARS"):
        base[_key(row, instrument)] = {
            "spaxel": float(row["spaxelsize"]), "spectral_step": float(row["spectralstep"]),
            "wavemin": float(row["wavemin"]), "wavemax": float(row["wavemax"]),
        }
    if weighting in _WEIGHT_COLUMNS:
        extra = getattr(model, f"ifucubepars_{weighting}_table", None)
        for row in _rows(extra, path, f"{weighting.upper()} parameter"):
            key = _key(row, instrument)
            if key in base:
                base[key].update({_FIELD[c]: float(row[c]) for c in _WEIGHT_COLUMNS[weighting]})
    return {key: BandPars(**values) for key, values in base.items()}


def _wave_table(table: Any, weighting: str) -> WaveTable:
    wave = np.asarray(table["wavelength"], dtype=np.float64)
    columns = {name: np.full(wave.size, np.nan) for name in ("rois", "roiw", "power", "softrad", "scalerad")}
    for column in _WEIGHT_COLUMNS.get(weighting, ()):
        columns[_FIELD[column]] = np.asarray(table[column], dtype=np.float64)
    return WaveTable(wave, **columns)


def _tables(model: Any, instrument: str, weighting: str) -> dict[str, WaveTable]:
    suffix = {"msm": "msm", "emsm": "emsm", "drizzle": "driz"}[weighting]
    names = ["multichannel"] if instrument == "MIRI" else ["prism", "med", "high"]
    out = {}
    for name in names:
        table = getattr(model, f"ifucubepars_{name}_{suffix}_wavetable", None)
        if table is not None and len(table):
            out[name] = _wave_table(table, weighting)
    return out


def read_cubepar(path: str | Path, instrument: str, weighting: str) -> CubePars:
    """The CUBEPAR file at ``path`` for ``instrument`` (``MIRI``/``NIRSPEC``) and ``weighting``."""
    from stdatamodels.jwst import datamodels

    text = str(path)
    if not Path(text).is_file():
        raise InputError(text, "CUBEPAR file not found (--steps.cube_build.override_cubepar)")
    cls = getattr(datamodels, _MODELS[instrument])
    try:
        model = cls(text)
    except Exception as exc:  # stdatamodels raises many types for unreadable files
        raise InputError(text, f"cannot be read as a {_MODELS[instrument]}: {exc}") from exc
    with model:
        return CubePars(text, _band_rows(model, instrument, weighting, text), _tables(model, instrument, weighting))
