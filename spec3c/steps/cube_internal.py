"""cube_build with ``coord_system=internal_cal``: a NIRSpec cube in the slicer plane (jwst 3.0.0
``determine_cube_parameters_internal``, ``set_geometry_slicer``, ``cube_internal_cal.match_det2cube``).

One exposure, one band.  Axis 1 is the across-slice position (one column per
slice, in the physical order of the slices), axis 2 the along-slice
coordinate, both in slicer-plane metres.  Each pixel of a slice's bounding box
is the quadrilateral joining the (along-slice, wavelength) values at its own
and its right/upper neighbours' centres (as the reference takes them), and
adds to its slice's column by area overlap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dqflags
from .._core.cube import CubeAccumulator, CubeParams
from ..algorithms.cube_setup import SlicerFrame, slicer_geometry
from ..errors import Spec3cError
from ..modes.ifu.cubepar import CubePars
from ..modes.ifu.frames import box_pixels, instrument_table
from ..modes.ifu.traits import IfuTraits
from ..results import IfuCube
from .context import StepContext
from .cube_inputs import SLICER, CubeSpec, ifu_meta, read_frames

#: wavelengths of the slicer frame below this are in metres (the reference's test)
_METRES = 1.0e-4


def _shifted(plane: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``plane[y + dy, x + dx]`` at every pixel (NaN beyond the frame)."""
    out = np.full(plane.shape, np.nan)
    ny, nx = plane.shape
    out[: ny - dy, : nx - dx] = plane[dy:, dx:]
    return out


def _slice_pixels(frames: dict[str, np.ndarray], box: list[float], corners: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Corners (along, wavelength) ``(n, 4)``, flux and error of one slice box's usable pixels."""
    along_c, lam_c = corners
    gy, gx = box_pixels(box, frames["sci"].shape)
    good = (frames["dq"][gy, gx] & np.uint32(dqflags.DO_NOT_USE | dqflags.NON_SCIENCE)) == 0
    gy, gx = gy[good], gx[good]
    gy, gx = gy[np.isfinite(frames["slicer_along"][gy, gx])], gx[np.isfinite(frames["slicer_along"][gy, gx])]
    along = along_c[:, gy, gx].T
    lam = lam_c[:, gy, gx].T
    keep = np.all(np.isfinite(along[:, 1:]), axis=1)
    along, lam, gy, gx = along[keep], lam[keep], gy[keep], gx[keep]
    if lam.size and np.nanmax(lam[:, 0]) < _METRES:
        lam = lam * 1.0e6
    return along, lam, frames["sci"][gy, gx], frames["err"][gy, gx]


def _geometry(ifu: dict[str, Any], wavemin: Any, wavemax: Any, cdelt3: Any) -> SlicerFrame:
    a_min, b1, a_max, b2, a1, b_min, a2, b_max = ifu["footprint_internal"]
    nslices = int(instrument_table()["nirspec"]["nslices"])
    return slicer_geometry([a_min, a_max, a1, a2], [b1, b2, b_min, b_max], wavemin, wavemax, cdelt3, nslices)


def _meta(frame: SlicerFrame, spec: CubeSpec, order: int) -> dict[str, Any]:
    g = frame.grid
    info = {
        "wcsaxes": 3, "ctype1": "NRSSLICERX", "ctype2": "NRSSLICERY", "ctype3": "WAVE",
        "cunit1": "meter", "cunit2": "meter", "cunit3": "um",
        "crval1": frame.crval1, "crval2": frame.crval2, "crval3": frame.crval3,
        "crpix1": 0.5, "crpix2": 0.5, "crpix3": 1.0,
        # the reference converts to degrees and back
        "cdelt1": (g.cdelt1 / 3600.0) * 3600.0, "cdelt2": (g.cdelt2 / 3600.0) * 3600.0, "cdelt3": frame.cdelt3,
        "pc1_1": 1.0, "pc1_2": 0.0, "pc1_3": 0.0, "pc2_1": 0.0, "pc2_2": 1.0, "pc2_3": 0.0,
        "pc3_1": 0.0, "pc3_2": 0.0, "pc3_3": 1.0,
    }
    area = g.cdelt1 * g.cdelt2
    return {
        "order": order, "shape": list(g.shape), "tiles": [[0, g.shape[0]]],
        "bands": [list(b) for b in spec.bands], "inputs": spec.exposures, "reference_input": spec.files[0][1],
        "coord_system": "internal_cal", "wcsinfo": info, "linear": True, "channel": None, "tear_planes": 0,
        "ifu": {"flux_extension": "SCI", "error_extension": "ERR", "error_type": "ERR", "dq_extension": "DQ",
                "weighting": "emsm", "weight_power": 0.0, "roi_wave": 0.0, "roi_spatial": 0.0},
        "photometry": {"pixelarea_arcsecsq": area, "pixelarea_steradians": area * 2.3504e-11},
    }


def build_internal_cube(ctx: StepContext, spec: CubeSpec, cubepar: CubePars, traits: IfuTraits,
                        order: int) -> IfuCube:
    """Build the slicer-plane cube of the association's one exposure into the store."""
    params = ctx.config.cube_build
    if len(spec.files) != 1:
        raise Spec3cError(f"coord_system=internal_cal builds a cube of one exposure, not {len(spec.files)} "
                          "(the reference's rule): give an association of one exposure")
    if params.offset_file is not None:
        raise Spec3cError("offset_file moves sky positions; internal_cal cubes are in the slicer plane")
    band, exposure = spec.files[0]
    pars = cubepar.band(band)
    # CUBEPAR values are float32 and the reference keeps them so in this geometry
    wavemin = np.float32(pars.wavemin) if params.wavemin is None else np.float64(params.wavemin)
    wavemax = np.float32(pars.wavemax) if params.wavemax is None else np.float64(params.wavemax)
    cdelt3 = np.float64(params.scalew) if params.scalew != 0 else np.float32(pars.spectral_step)
    ifu = ifu_meta(ctx, exposure)
    frame = _geometry(ifu, wavemin, wavemax, cdelt3)
    frames = read_frames(ctx, exposure, SLICER)
    along, lam = frames["slicer_along"], frames["slicer_lam"]
    corners = (np.stack([along, _shifted(along, 0, 1), _shifted(along, 1, 1), _shifted(along, 1, 0)]),
               np.stack([lam, _shifted(lam, 0, 1), _shifted(lam, 1, 1), _shifted(lam, 1, 0)]))
    acc = CubeAccumulator(frame.grid, CubeParams("drizzle"))
    columns = instrument_table()["nirspec"]["internal_cal_across_index"]
    for k, box in enumerate(ifu["slice_boxes"]):
        a, w, flux, err = _slice_pixels(frames, box, corners)
        if flux.size:
            acc.add_slicer_area(a, w, flux, err, np.full(flux.size, columns[k]),
                                (frame.crval2, frame.crval3, frame.cdelt3))
    planes = acc.finalize()
    cube = IfuCube(spec.name, np.asarray(frame.grid.zcoord), _meta(frame, spec, order))
    cube.save_tile(ctx.store, ctx.source, 0, planes._asdict() | {"sci": planes.flux})
    cube.save(ctx.store, ctx.source)
    return cube
