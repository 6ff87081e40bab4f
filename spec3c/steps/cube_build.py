"""cube_build: IFU exposures combined into 3-D cubes (ALGORITHMS.md §11; jwst 3.0.0 ``cube_build``).

For each cube the mode's bands call for (``output_type``): the CUBEPAR values
give its sampling and weighting (:func:`~spec3c.algorithms.cube_setup.cube_setup`),
the inputs' footprints give its sky grid, then every exposure's stored
full-frame pixels (coordinates evaluated once at ingest) are projected to the
cube's tangent plane and accumulated by the Cython kernel
(:class:`~spec3c._core.cube.CubeAccumulator`), one exposure at a time.

Memory is bounded by the cube: a cube whose accumulator would not fit in
``max_memory`` is built in tiles of wavelength planes; each tile is
finalised and saved to the store (``spec3c.results.IfuCube``), and the
``_s3d`` writer streams the tiles into the product.  Tiles give the same
bits as a whole-cube build.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dqflags
from .._core.cube import (
    CubeAccumulator,
    CubeParams,
    CubePlanes,
    good_spaxel_counts,
    spectral_tear_planes,
    wipe_planes,
)
from ..algorithms.cube_fov import nirspec_fov
from ..algorithms.cube_setup import (
    CubeRequest,
    CubeSetup,
    SkyFrame,
    cube_setup,
    offset_radec,
    sky_geometry,
    wrap_ra,
)
from ..config import CubeBuildParams, memory_bytes, quarter_of_ram
from ..errors import InputError, Spec3cError, Spec3cWarning
from ..heap import long_lived_objects_frozen
from ..modes.ifu.cubepar import BandKey, CubePars, read_cubepar
from ..modes.ifu.traits import IfuTraits
from ..results import COMPLETE, SKIPPED, IfuCube, load_association
from .assign_mtwcs import mean_of_run
from .context import StepContext, StepDetails, StepOutcome
from .cube_inputs import (
    CORNERS,
    SKY,
    CubeSpec,
    Offsets,
    Pixels,
    band_pixels,
    exposure_filename,
    ifu_meta,
    moving_target_shift,
    read_frames,
)
from .cube_internal import build_internal_cube

#: bytes per voxel while a tile is built: 4 float64 sums, the final planes, the FOV flags
VOXEL_BYTES = 4 * 8 + 4 * 4 + 4
#: bytes per detector pixel of one exposure while it is mapped (frames read + projected corners)
PIXEL_BYTES_PER_EXPOSURE = 260
#: exposures mapped at once: the next one is read and projected while the kernel accumulates this one
EXPOSURES_IN_FLIGHT = 2
#: bytes per detector pixel of the largest exposure a pass holds
PIXEL_BYTES = EXPOSURES_IN_FLIGHT * PIXEL_BYTES_PER_EXPOSURE


@dataclass(frozen=True)
class CubeDetails(StepDetails):
    cubes: dict[str, list[int]] = field(default_factory=dict)  # name -> (nz, ny, nx)
    tiles: dict[str, int] = field(default_factory=dict)  # name -> number of wavelength tiles


def _memory_budget(params: CubeBuildParams) -> int:
    if params.max_memory is not None:
        return memory_bytes(params.max_memory, "--steps.cube_build.max_memory")
    return quarter_of_ram()


def plan_cubes(ctx: StepContext, traits: IfuTraits, params: CubeBuildParams) -> list[CubeSpec]:
    """The cubes the parameters ask for, with their inputs (``CubeData.number_cubes``)."""
    by_band: dict[BandKey, list[str]] = {}
    for cutout in ctx.inputs.cutouts:
        for band in cutout.meta["ifu"]["bands"]:
            by_band.setdefault((str(band[0]), str(band[1])), []).append(cutout.exposure)
    first, second = ("channel", "band") if traits.per_channel else ("grating", "filter")
    bands = traits.select(list(by_band), getattr(params, first), getattr(params, second))
    output_type = params.choice("output_type")
    internal = params.choice("coord_system") == "internal_cal"
    base = str(load_association(ctx.store)["product_name"])
    specs = []
    for group in traits.groups(bands, "band" if internal else output_type):
        files = tuple((band, exposure) for band in group for exposure in by_band[band])
        specs.append(CubeSpec(traits.cube_name(base, group, internal), tuple(group), files))
    return specs


# -- cube parameters and geometry --------------------------------------------------


def _request(params: CubeBuildParams) -> CubeRequest:
    multi = params.choice("output_type") == "multi"
    return CubeRequest(
        weighting=params.choice("weighting"), linear_wave=params.linear_wave and not multi,
        scalexy=params.scalexy, scalew=params.scalew, rois=params.rois, roiw=params.roiw,
        weight_power=params.weight_power, wavemin=params.wavemin, wavemax=params.wavemax,
    )


def setup_for(spec: CubeSpec, traits: IfuTraits, cubepar: CubePars, params: CubeBuildParams) -> CubeSetup:
    request = _request(params)
    table = cubepar.table(traits.table_name(spec.bands)) if not request.linear_wave else None
    try:
        return cube_setup([cubepar.band(b) for b in spec.bands], request, len(spec.files), table)
    except ValueError as exc:
        raise InputError(cubepar.path, f"cube {spec.name}: {exc}") from exc


def _s_region_corners(text: str | None) -> list[float] | None:
    """The 4 corners of a ``POLYGON ICRS  ra dec ...`` S_REGION (None if it is not one)."""
    if not text:
        return None
    words = text.split()
    try:
        values = [float(v) for v in words[2:10]]
    except ValueError:
        return None
    return values if len(values) == 8 and words[0].upper() == "POLYGON" else None


def footprint_corners(ctx: StepContext, spec: CubeSpec, traits: IfuTraits, params: CubeBuildParams,
                      offsets: Offsets) -> tuple[np.ndarray, np.ndarray]:
    """RA/Dec of the 4 footprint corners of every (band, file) of the cube (``setup_ifucube_wcs``)."""
    world = params.choice("coord_system") == "skyalign" and params.cube_pa is None
    allowed = traits.sky_footprint_from_s_region(spec.bands, params.choice("output_type"))
    ra, dec = [], []
    for band, exposure in spec.files:
        ifu = ifu_meta(ctx, exposure)
        moving = str(ctx.inputs.exposures[exposure].meta.get("meta.target.type") or "").upper() == "MOVING"
        corners = _s_region_corners(ifu.get("s_region")) if (world and allowed and ifu.get("spectral_region")
                                                               and not moving) else None
        if corners is None:
            a_min, b1, a_max, b2, a1, b_min, a2, b_max = ifu["footprint"][traits.region(band)]
            corners = [a_min, b1, a_max, b2, a1, b_min, a2, b_max]
        cra, cdec = np.array(corners[0::2]), np.array(corners[1::2])
        moved = moving_target_shift(ctx, exposure)
        if moved is not None:  # the reference maps the pixels to the moving_target frame
            cra, cdec = np.mod(cra + moved[0], 360.0), cdec + moved[1]
        shift = offsets.of(exposure_filename(ctx, exposure))
        if shift is not None:
            cra, cdec = offset_radec(cra, cdec, *shift)
        ra.append(cra)
        dec.append(cdec)
    return wrap_ra(np.concatenate(ra)), np.concatenate(dec)


def rotation_for(ctx: StepContext, spec: CubeSpec, traits: IfuTraits, params: CubeBuildParams) -> float | None:
    """Rotation of the cube's axes from RA/Dec (deg): ifualign from the first input, else ``cube_pa``."""
    if params.choice("coord_system") == "ifualign":
        band, exposure = spec.files[0]
        return float(ifu_meta(ctx, exposure)["rotation"][traits.region(band)])
    if params.cube_pa is not None:
        return float(params.cube_pa)
    return None


def sky_frame(ctx: StepContext, spec: CubeSpec, setup: CubeSetup, traits: IfuTraits, params: CubeBuildParams,
              offsets: Offsets) -> SkyFrame:
    ra, dec = footprint_corners(ctx, spec, traits, params, offsets)
    if ra.size == 0 or not np.all(np.isfinite(dec)):
        raise Spec3cError(f"cube {spec.name}: the inputs have no finite sky footprint")
    return sky_geometry(ra, dec, setup, rot_angle=rotation_for(ctx, spec, traits, params),
                        center=(params.ra_center, params.dec_center), nspax=(params.nspax_x, params.nspax_y))


def cube_params(setup: CubeSetup, weighting: str) -> CubeParams:
    return CubeParams(weighting, rois=setup.rois, roiw=setup.roiw, weight_power=setup.weight_power,  # type: ignore[arg-type]
                      softrad=setup.softrad, scalerad=setup.scalerad)


def plane_tiles(shape: tuple[int, int, int], budget: int, pixels: int) -> list[tuple[int, int]]:
    """Wavelength tiles ``[p0, p1)`` whose accumulator fits in ``budget`` bytes beside one
    exposure of ``pixels`` detector pixels.  The tiles get at least a quarter of the budget
    (an exposure is read whatever the budget: a smaller share would only multiply the
    reads); a tile has at least one plane."""
    nz, ny, nx = shape
    room = max(budget - pixels * PIXEL_BYTES, budget // 4)
    per_tile = int(max(1, min(nz, room // max(VOXEL_BYTES * ny * nx, 1))))
    return [(p0, min(p0 + per_tile, nz)) for p0 in range(0, nz, per_tile)]


def _project(frame: SkyFrame, pix: Pixels, reach: np.ndarray, drizzle: bool) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane coordinates of the pixels that can reach the tile (NaN for the others):
    centres ``(n,)`` (msm/emsm) or corners ``(n, 4)`` (drizzle)."""
    every = bool(reach.all())  # (an untiled cube: no selection to copy the coordinates through)
    if not drizzle:
        if every:
            return frame.project(pix.ra, pix.dec)
        xi = np.full(pix.wave.size, np.nan)
        eta = np.full(pix.wave.size, np.nan)
        xi[reach], eta[reach] = frame.project(pix.ra[reach], pix.dec[reach])
        return xi, eta
    if pix.corner_offsets:
        assert pix.index is not None
        return frame.project_corners(pix.ra, pix.dec, pix.index, pix.corner_offsets, None if every else reach)
    xs = np.empty((pix.wave.size, 4)) if every else np.full((pix.wave.size, 4), np.nan)
    ys = np.empty((pix.wave.size, 4)) if every else np.full((pix.wave.size, 4), np.nan)
    for k in range(4):
        if every:
            xs[:, k], ys[:, k] = frame.project(pix.corners[2 * k], pix.corners[2 * k + 1])
        else:
            xs[reach, k], ys[reach, k] = frame.project(pix.corners[2 * k][reach], pix.corners[2 * k + 1][reach])
    return xs, ys


@dataclass
class Projected:
    """One band's pixels of one exposure, projected for one tile (``x, y``: :func:`_project`)."""

    pix: Pixels
    reach: np.ndarray
    x: np.ndarray
    y: np.ndarray


@dataclass
class TileBuild:
    """One wavelength tile of a cube being accumulated."""

    frame: SkyFrame
    acc: CubeAccumulator
    fov: np.ndarray | None
    weighting: str

    def project(self, pix: Pixels) -> Projected | None:
        """The pixels that can reach the tile, projected (None: none can).  Reads the tile, writes
        nothing: runs beside :meth:`add` of another exposure."""
        drizzle = self.weighting == "drizzle"
        reach = self.acc.touches(pix.wave, pix.dwave if drizzle else None)
        if not reach.any():
            return None
        x, y = _project(self.frame, pix, reach, drizzle)
        pix.corners, pix.corner_offsets = [], []  # projected: the corners are not needed any more
        return Projected(pix, reach, x, y)

    def add(self, item: Projected | None) -> None:
        if item is None:
            return
        pix, dwave = item.pix, item.pix.dwave if self.weighting == "drizzle" else None
        self.acc.add(item.x, item.y, pix.wave, pix.flux, pix.err, dq=pix.dq, dwave=dwave)
        if self.fov is not None:
            self._fov(pix, item.reach, dwave)

    def _fov(self, pix: Pixels, reach: np.ndarray, dwave: np.ndarray | None) -> None:
        """The NIRSpec slice-line FOV flags of the pixels the reference maps."""
        wmin, wmax = self.acc.window(dwave)
        bad = (pix.dq & np.uint32(dqflags.DO_NOT_USE | dqflags.NON_SCIENCE)) != 0
        with np.errstate(invalid="ignore"):
            good = ~bad & np.isfinite(pix.flux) & (pix.wave >= wmin) & (pix.wave <= wmax)
        if not good.any():
            return
        grid = self.acc.grid
        if self.weighting == "drizzle":
            roiw_ave = float(np.nanmean(grid.cdelt3))
        else:
            roiw = np.asarray(self.acc.params.roiw, dtype=np.float64)
            nearest = np.abs(grid.zcoord[None, :] - pix.wave[good][:, None]).argmin(axis=1) if roiw.ndim else None
            roiw_ave = float(np.mean(roiw[nearest])) if nearest is not None else float(roiw)
        sel = good & reach
        xi, eta = self.frame.project(pix.ra[sel], pix.dec[sel])
        assert self.fov is not None
        nirspec_fov(grid, self.acc.planes, xi, eta, pix.wave[sel], pix.slice_no[sel], roiw_ave, self.fov)

    def finalize(self) -> CubePlanes:
        return self.acc.finalize(self.fov)


@dataclass
class CubeBuild:
    """One cube being built: what it is made of, where it sits, and its stored header."""

    spec: CubeSpec
    frame: SkyFrame
    weights: CubeParams
    cube: IfuCube
    counts: list[np.ndarray] = field(default_factory=list)

    @property
    def voxel_bytes(self) -> int:
        return VOXEL_BYTES * int(np.prod(self.frame.geometry.grid.shape))


def accumulate(ctx: StepContext, jobs: list[tuple[CubeBuild, tuple[int, int]]], traits: IfuTraits,
               offsets: Offsets) -> None:
    """One pass over the inputs of ``jobs`` (cube, plane tile): each exposure's frames are read
    once and added to every tile that uses it; the tiles are then finalised and saved."""
    cube_params_ = ctx.config.cube_build
    flags = traits.slice_fov and not cube_params_.skip_dqflagging
    tiles = []
    for build, planes in jobs:
        acc = CubeAccumulator(build.frame.geometry.grid, build.weights, planes=planes)
        tiles.append(TileBuild(build.frame, acc, np.zeros(acc.shape, np.uint32) if flags else None,
                               build.weights.weighting))
    exposures = list(dict.fromkeys(e for build, _ in jobs for e in build.spec.exposures))
    drizzled = any(build.weights.weighting == "drizzle" for build, _ in jobs)
    wanted = (*SKY, *CORNERS) if drizzled else SKY

    def projected(exposure: str) -> list[tuple[TileBuild, Projected | None]]:
        """The exposure's frames read and projected for every tile that uses them."""
        frames = read_frames(ctx, exposure, wanted)
        ifu = ifu_meta(ctx, exposure)
        shift = offsets.of(exposure_filename(ctx, exposure))
        return [(tile, tile.project(band_pixels(frames, ifu, band, traits, build.weights.weighting == "drizzle",
                                                shift)))
                for (build, _), tile in zip(jobs, tiles, strict=True)
                for band, name in build.spec.files if name == exposure]

    # the kernel (no GIL, every core) accumulates one exposure while a thread reads and projects the
    # next (the store's reads and numpy release the GIL too): the exposures' order is kept
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec3c-cube-read") as reader:
        current: Future[list[tuple[TileBuild, Projected | None]]] | None = None
        for exposure in [*exposures, None]:
            following = reader.submit(projected, exposure) if exposure is not None else None
            if current is not None:
                for tile, item in current.result():
                    tile.add(item)
            current = following  # (the accumulated exposure's pixels go with its future)
    for (build, planes), tile in zip(jobs, tiles, strict=True):
        final = tile.finalize()
        build.counts.append(good_spaxel_counts(final.dq))
        build.cube.save_tile(ctx.store, ctx.source, planes[0], final._asdict() | {"sci": final.flux})


def passes(builds: list[CubeBuild], budget: int, pixels: int) -> list[list[tuple[CubeBuild, tuple[int, int]]]]:
    """Group the cubes' tiles into passes over the inputs.

    Whole cubes made of some of the same exposures share a pass while their accumulators and one
    exposure fit in ``budget``: each exposure is then read once.  Cubes of other exposures get
    passes of their own, so that no more accumulators are held than a pass needs (MIRI MRS band
    cubes: the channel 1 and 2 cubes of one band's files together, not all twelve at once).  A tiled
    cube gets a pass per tile.
    """
    out: list[list[tuple[CubeBuild, tuple[int, int]]]] = []
    for group in _sharing_exposures([b for b in builds if len(b.cube.tiles) == 1]):
        current: list[tuple[CubeBuild, tuple[int, int]]] = []
        used = pixels * PIXEL_BYTES
        for build in group:
            if current and used + build.voxel_bytes > budget:
                out.append(current)
                current, used = [], pixels * PIXEL_BYTES
            current.append((build, build.cube.tiles[0]))
            used += build.voxel_bytes
        out.append(current)
    tiled = [[(build, tile)] for build in builds if len(build.cube.tiles) > 1 for tile in build.cube.tiles]
    return tiled + out


def _sharing_exposures(builds: list[CubeBuild]) -> list[list[CubeBuild]]:
    """The cubes in groups linked by shared exposures (each in the order given, groups by their first)."""
    order = {id(build): k for k, build in enumerate(builds)}
    group_of: dict[str, int] = {}  # exposure -> index of its group
    groups: list[list[CubeBuild]] = []
    for build in builds:
        members = [build]
        for index in sorted({group_of[e] for e in build.spec.exposures if e in group_of}):
            members += groups[index]  # groups linked by this cube merge into one
            groups[index] = []
        members.sort(key=lambda b: order[id(b)])
        groups.append(members)
        for member in members:
            for exposure in member.spec.exposures:
                group_of[exposure] = len(groups) - 1
    return sorted((g for g in groups if g), key=lambda g: order[id(g[0])])


# -- the cube's product metadata -------------------------------------------------------


def cube_wcsinfo(frame: SkyFrame, setup: CubeSetup) -> dict[str, Any]:
    """FITS WCS keywords of the cube (``setup_final_ifucube_model``)."""
    g = frame.geometry
    rot = 0.0 if frame.rot_angle is None else float(frame.rot_angle)
    cos, sin = np.cos(rot * np.pi / 180.0), np.sin(rot * np.pi / 180.0)
    info: dict[str, Any] = {
        "wcsaxes": 3, "ctype1": "RA---TAN", "ctype2": "DEC--TAN", "cunit1": "deg", "cunit2": "deg",
        "cunit3": "um", "crval1": frame.crval1, "crval2": frame.crval2, "crpix1": g.crpix1,
        "crpix2": g.crpix2, "cdelt1": g.grid.cdelt1 / 3600.0, "cdelt2": g.grid.cdelt2 / 3600.0,
        "pc1_1": float(-cos), "pc1_2": float(sin), "pc1_3": 0.0, "pc2_1": float(sin), "pc2_2": float(cos),
        "pc2_3": 0.0, "pc3_1": 0.0, "pc3_2": 0.0, "pc3_3": 1.0,
    }
    if setup.linear:
        info.update(ctype3="WAVE", crval3=g.crval3, cdelt3=g.cdelt3, crpix3=g.crpix3)
    else:
        info.update(ctype3="WAVE-TAB", crval3=1.0, crpix3=1.0, ps3_0="WCS-TABLE", ps3_1="wavelength")
    return info


def cube_ifu_meta(setup: CubeSetup, weighting: str) -> dict[str, Any]:
    """``meta.ifu`` of the cube."""
    meta: dict[str, Any] = {"flux_extension": "SCI", "error_extension": "ERR", "error_type": "ERR",
                            "dq_extension": "DQ", "weighting": weighting}
    if weighting == "drizzle":
        meta.update(weight_power=0.0, roi_wave=0.0, roi_spatial=0.0)
        return meta
    power = np.asarray(setup.weight_power, dtype=np.float64)
    if power.ndim == 0 and np.isfinite(power):
        meta["weight_power"] = float(power)
    if setup.linear:
        meta.update(roi_spatial=float(np.asarray(setup.rois)), roi_wave=float(np.asarray(setup.roiw)))
    else:
        meta["roi_wave"] = float(np.mean(setup.roiw))
    return meta


def _cube_meta(ctx: StepContext, spec: CubeSpec, frame: SkyFrame, setup: CubeSetup,  # noqa: PLR0913
               params: CubeBuildParams, tiles: list[tuple[int, int]], order: int) -> dict[str, Any]:
    area = frame.geometry.grid.cdelt1 * frame.geometry.grid.cdelt2
    channels = "".join(sorted({b[0] for b in spec.bands}))
    return {
        "order": order, "shape": list(frame.geometry.grid.shape), "tiles": [list(t) for t in tiles],
        "bands": [list(b) for b in spec.bands], "inputs": spec.exposures,
        # the reference blends the cube's metadata over its (band, file) inputs, a MIRI file once
        # per band, when the association has more than one input (IFUCubeData.blend_output_metadata)
        "blend_inputs": [e for _, e in spec.files] if len({c.exposure for c in ctx.inputs.cutouts}) > 1 else [],
        "reference_input": spec.files[0][1], "coord_system": params.choice("coord_system"),
        "wcsinfo": cube_wcsinfo(frame, setup), "ifu": cube_ifu_meta(setup, params.choice("weighting")),
        "photometry": {"pixelarea_arcsecsq": area, "pixelarea_steradians": area * 2.3504e-11},
        "channel": channels if ctx.mode.cube is not None and ctx.mode.cube.per_channel else None,
        "linear": setup.linear,
        "moving_target": mean_of_run(ctx.inputs),  # (mt_avra, mt_avdec) when assign_mtwcs aligned the inputs
    }


# -- one cube --------------------------------------------------------------------------


def _wipe_tears(ctx: StepContext, cube: IfuCube, counts: list[np.ndarray]) -> int:
    """MIRI: wipe the spectral-tear planes of every stored tile; returns their number."""
    tears = spectral_tear_planes(np.concatenate(counts))
    if tears.size == 0:
        return 0
    for p0, p1 in cube.tiles:
        if np.any((tears >= p0) & (tears < p1)):
            planes = cube.read_tile(ctx.store, ctx.source, p0)
            tile = CubePlanes(planes["sci"], planes["err"], planes["dq"], planes["wmap"])
            wipe_planes(tile, tears, offset=p0)
            cube.save_tile(ctx.store, ctx.source, p0, tile._asdict() | {"sci": tile.flux})
    return int(tears.size)


def prepare_cube(ctx: StepContext, spec: CubeSpec, setup: CubeSetup, traits: IfuTraits,  # noqa: PLR0913
                 offsets: Offsets, order: int, budget: int) -> CubeBuild:
    """A cube's sky grid, weighting and wavelength tiles (``budget`` bytes: the accumulator
    of one tile beside one exposure's frames)."""
    params = ctx.config.cube_build
    frame = sky_frame(ctx, spec, setup, traits, params, offsets)
    try:
        weights = cube_params(setup, params.choice("weighting"))
    except ValueError as exc:
        raise Spec3cError(f"cube {spec.name}: {exc}") from exc
    largest = max(int(np.prod(ifu_meta(ctx, e)["shape"])) for e in spec.exposures)
    tiles = plane_tiles(frame.geometry.grid.shape, budget, largest)
    if budget - largest * PIXEL_BYTES < budget // 4:
        warnings.warn(f"cube {spec.name}: max_memory={budget} bytes leaves little beside reading one exposure "
                      f"(~{largest * PIXEL_BYTES} bytes); the cube is built in {len(tiles)} tiles of a quarter of it",
                      Spec3cWarning, stacklevel=2)
    cube = IfuCube(spec.name, np.asarray(frame.geometry.grid.zcoord),
                   _cube_meta(ctx, spec, frame, setup, params, tiles, order))
    return CubeBuild(spec, frame, weights, cube)


def finish_cube(ctx: StepContext, build: CubeBuild, traits: IfuTraits) -> IfuCube:
    """Wipe spectral tears across the cube's tiles (MIRI) and save its header (last)."""
    cube = build.cube
    cube.meta["tear_planes"] = _wipe_tears(ctx, cube, build.counts) if traits.spectral_tears else 0
    cube.save(ctx.store, ctx.source)
    return cube


def run(ctx: StepContext) -> StepOutcome:
    """The step: every cube the parameters ask for, saved to the store (``s3d/<name>``)."""
    traits = ctx.mode.cube
    if traits is None:
        return StepOutcome(SKIPPED, f"{ctx.mode.name} is not an IFU mode")
    params = ctx.config.cube_build
    if params.override_cubepar is None:
        raise Spec3cError("cube_build needs a CUBEPAR reference file: --steps.cube_build.override_cubepar=FILE, "
                          "or a CRDS cache that has one (CRDS_PATH)")
    internal = params.choice("coord_system") == "internal_cal"
    if internal and not traits.internal_cal:
        raise Spec3cError(f"coord_system=internal_cal is not valid for {ctx.mode.name}; use ifualign")
    specs = plan_cubes(ctx, traits, params)
    if not specs:
        return StepOutcome(SKIPPED, f"output_type={params.output_type} makes no cube for {ctx.mode.name}")
    cubepar = read_cubepar(params.override_cubepar, traits.instrument, params.choice("weighting"))
    offsets = Offsets(params.offset_file, [exposure_filename(ctx, e) for s in specs for e in s.exposures])
    details = CubeDetails()
    # every stored frame read ends in a full gc pass (tiledb frees query buffers only there): keep the
    # long-lived objects of the process (modules, schemas) out of those passes
    with long_lived_objects_frozen():
        _build_all(ctx, specs, traits, cubepar, offsets, details)
    names = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in details.cubes.items())
    return StepOutcome(COMPLETE, f"{len(details.cubes)} cube(s): {names}", details)


def _build_all(ctx: StepContext, specs: list[CubeSpec], traits: IfuTraits, cubepar: CubePars,
               offsets: Offsets, details: CubeDetails) -> None:
    params = ctx.config.cube_build
    if params.choice("coord_system") == "internal_cal":
        cubes = [build_internal_cube(ctx, spec, cubepar, traits, order) for order, spec in enumerate(specs)]
    else:
        budget = _memory_budget(params)
        builds = [prepare_cube(ctx, spec, setup_for(spec, traits, cubepar, params), traits, offsets, order, budget)
                  for order, spec in enumerate(specs)]
        pixels = max(int(np.prod(ifu_meta(ctx, c.exposure)["shape"])) for c in ctx.inputs.cutouts)
        for jobs in passes(builds, budget, pixels):
            accumulate(ctx, jobs, traits, offsets)
        cubes = [finish_cube(ctx, build, traits) for build in builds]
    for cube in cubes:
        details.cubes[cube.name] = list(cube.shape)
        details.tiles[cube.name] = len(cube.tiles)
