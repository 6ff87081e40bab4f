"""The QA page's PNG figures, drawn with matplotlib (an optional dependency: ``spec3c[qa]``).

matplotlib is imported only when a figure is drawn, and only its object API
with the Agg canvas is used (no pyplot): no display, no global state, safe in
worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import Spec3cError
from .collect import Panel, SourceQa, Spectrum

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from matplotlib.typing import ColorType

#: resolution of every PNG (dots per inch; the figures are 8-9 inches wide)
DPI = 80
#: at most this many outlier maps in one figure (the caption says how many were left out)
MAX_OUTLIER_PANELS = 36
#: what NaN pixels look like in the images
NAN_COLOUR = "#f3e6c4"
FLAG_COLOUR = "#e6194b"
APERTURE_COLOUR = "#00c8ff"


def require_matplotlib() -> None:
    """Raise a :class:`~spec3c.errors.Spec3cError` saying how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise Spec3cError("spec3c qa draws its figures with matplotlib, which is not installed: "
                          "pip install 'spec3c[qa]'") from exc


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    """Write the PNG under a temporary name, then rename it: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    figure.savefig(partial, format="png")
    os.replace(partial, path)


def _text(value: object) -> str:
    """``value`` as plain text for matplotlib (a ``$`` would start mathtext)."""
    return str(value).replace("$", r"\$")


def _limits(values: np.ndarray, low: float = 1.0, high: float = 99.5) -> tuple[float, float]:
    """Percentile limits of the finite values, never empty."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _image(ax: Axes, panel: Panel, cmap: str, aspect: Literal["auto", "equal"] = "auto") -> AxesImage:
    from matplotlib import colormaps

    lo, hi = _limits(panel.data)
    colours = colormaps[cmap].with_extremes(bad=NAN_COLOUR)
    shown = ax.imshow(panel.data, origin="lower", aspect=aspect, cmap=colours, vmin=lo, vmax=hi,
                      interpolation="nearest")
    separator = "   " if aspect == "auto" else "\n"  # a wide panel has room for one line
    ax.set_title(_text(f"{panel.title}{separator}{panel.note}".strip()), fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    return shown


# -- figures -----------------------------------------------------------------------------------

def draw_images(qa: SourceQa, path: Path) -> None:
    """The s2d with the extraction aperture, or the cubes' white-light images (square spaxels, two a row)."""
    from matplotlib.patches import Rectangle

    spectral = qa.kind == "s2d"
    columns = 1 if spectral else min(2, len(qa.images))
    rows = -(-len(qa.images) // columns)
    figure = _figure(9.0, 0.6 + (2.4 if spectral else 4.0) * rows)
    for k, panel in enumerate(qa.images):
        ax = figure.add_subplot(rows, columns, k + 1)
        shown = _image(ax, panel, "viridis", "auto" if spectral else "equal")
        figure.colorbar(shown, ax=ax, label=_text(panel.unit), pad=0.01, shrink=1.0 if spectral else 0.8)
        if panel.aperture is not None:
            x0, x1, y0, y1 = panel.aperture
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=APERTURE_COLOUR,
                                   linewidth=1.4, label="extraction aperture"))
            ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.set_xlabel("dispersion (pixel)" if spectral else "x (spaxel)", fontsize=8)
        ax.set_ylabel("cross-dispersion (pixel)" if spectral else "y (spaxel)", fontsize=8)
    figure.suptitle(_text(f"source {qa.source}"), fontsize=10)
    _save(figure, path)


def _band(ax: Axes, spectrum: Spectrum, colour: ColorType) -> None:
    good = np.isfinite(spectrum.value) & np.isfinite(spectrum.error)
    ax.fill_between(spectrum.wavelength, spectrum.value - spectrum.error, spectrum.value + spectrum.error,
                    where=good, color=colour, alpha=0.3, linewidth=0, label=f"{spectrum.label} error")
    ax.plot(spectrum.wavelength, spectrum.value, color=colour, linewidth=1.0, label=spectrum.label)


def draw_spectra(qa: SourceQa, path: Path) -> None:
    """The final spectra with their error bands over the per-exposure spectra (grey)."""
    from matplotlib import colormaps

    figure = _figure(9.0, 3.4)
    ax = figure.add_subplot()
    for k, spectrum in enumerate(qa.exposure_spectra):
        ax.plot(spectrum.wavelength, spectrum.value, color="0.55", linewidth=0.6, alpha=0.8,
                label="exposures" if k == 0 else None)
    palette = colormaps["tab10"]
    for k, spectrum in enumerate(qa.spectra):
        _band(ax, spectrum, palette(k % 10))
    bounds = np.concatenate([np.concatenate([s.value - s.error, s.value + s.error]) for s in qa.spectra])
    lo, hi = _limits(bounds, 0.5, 99.5)
    ax.set_ylim(lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo))
    ax.set_xlabel("wavelength (µm)", fontsize=8)
    units = sorted({s.unit for s in qa.spectra if s.unit})
    ax.set_ylabel(_text(", ".join(units)), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="best", fontsize=7, framealpha=0.8)
    snr = "n/a" if qa.snr is None else f"{qa.snr:.1f}"
    ax.set_title(_text(f"source {qa.source}   median S/N {snr}"), fontsize=10, loc="left")
    _save(figure, path)


def draw_outliers(qa: SourceQa, path: Path) -> None:
    """Each exposure's cutout with its outlier-flagged pixels marked, in a grid."""
    panels = qa.outliers[:MAX_OUTLIER_PANELS]
    columns = 1 if len(panels) <= 4 else 2 if len(panels) <= 16 else 3
    rows = -(-len(panels) // columns)
    figure = _figure(9.0, 0.6 + 2.0 * rows)
    for k, panel in enumerate(panels):
        ax = figure.add_subplot(rows, columns, k + 1)
        _image(ax, panel, "gray")
        if panel.flagged is not None and panel.flagged[0].size:
            ys, xs = panel.flagged
            ax.scatter(xs, ys, s=8, marker="s", color=FLAG_COLOUR, linewidths=0,
                       label="outlier" if k == 0 else None)
        ax.set_xlim(-0.5, panel.data.shape[1] - 0.5)
        ax.set_ylim(-0.5, panel.data.shape[0] - 0.5)
    left_out = len(qa.outliers) - len(panels)
    more = f" ({left_out} more not shown)" if left_out else ""
    fraction = "" if qa.flagged_fraction is None else f", {100 * qa.flagged_fraction:.2f}% of the pixels"
    figure.suptitle(_text(f"source {qa.source}: outliers ({qa.n_flagged} flagged{fraction}){more}"), fontsize=10)
    _save(figure, path)


def draw_source(qa: SourceQa, folder: Path, stem: str) -> dict[str, str]:
    """Every figure the source has, as ``<stem>_<kind>.png`` in ``folder``; returns ``{kind: file name}``
    with kind ``s2d`` or ``s3d`` (2-D images), ``x1d`` (spectra) and ``outliers``."""
    require_matplotlib()
    drawn: dict[str, str] = {}
    if qa.images:
        drawn[qa.kind] = f"{stem}_{qa.kind}.png"
        draw_images(qa, folder / drawn[qa.kind])
    if qa.spectra:
        drawn["x1d"] = f"{stem}_x1d.png"
        draw_spectra(qa, folder / drawn["x1d"])
    if qa.outliers:
        drawn["outliers"] = f"{stem}_outliers.png"
        draw_outliers(qa, folder / drawn["outliers"])
    return drawn
