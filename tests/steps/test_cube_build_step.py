"""cube_build on synthetic MIRI MRS and NIRSpec IFU exposures with known truth.

A flat scene must give a flat cube, a point source must land where it is on
the sky (within 0.1 spaxel) with its flux conserved plane by plane (1 %), and
a cube built in wavelength tiles must equal the whole-cube build bit for bit.
The agreement with jwst 3.0.0 itself is in ``tests/oracle/test_cube_build_reference.py``.
"""

from __future__ import annotations

import shutil

import asdf
import numpy as np
import pytest
from ifu_inputs import DEC0, RA0, Scene, ingested_set

from spec3c.algorithms.cube_setup import radec_to_std
from spec3c.config import resolve_config
from spec3c.errors import InputError, Spec3cError, Spec3cWarning
from spec3c.modes.registry import mode_of_store
from spec3c.results import IfuCube
from spec3c.steps import cube_build
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

#: a flat 5 MJy/sr scene with a point source (sigma 0.25") 0.4" from the pointing
SCENE = Scene(flat=5.0, point_flux=50.0, point_ra=RA0 + 0.3 / 3600, point_dec=DEC0 - 0.25 / 3600)
#: a memory budget that makes the test cubes tiles of a few planes
SMALL = "4MB"
#: spaxels farther than this from the point source see only the flat scene (< 1e-6 of it)
FAR = 1.6  # arcsec


@pytest.fixture
def context(tmp_path):
    """``context(ingested, **cube_build_params)``: a StepContext on a fresh copy of the set's store."""
    opened = []

    def make(ingested, **params):
        copy = tmp_path / f"store{len(opened)}"
        shutil.copytree(ingested.store, copy)
        store = open_store(copy, mode="a")
        opened.append(store)
        overrides = {"cube_build": {"override_cubepar": str(ingested.cubepar), **params}}
        return StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"), resolve_config(overrides=overrides))

    yield make
    for store in opened:
        store.close()


def _cubes(ctx) -> dict[str, tuple[IfuCube, dict[str, np.ndarray]]]:
    """Every stored cube of the context's source with its planes (tiles joined)."""
    out = {}
    for name in IfuCube.names(ctx.store, ctx.source):
        cube = IfuCube.load(ctx.store, ctx.source, name)
        tiles = [cube.read_tile(ctx.store, ctx.source, p0) for p0, _ in cube.tiles]
        out[name] = (cube, {k: np.concatenate([t[k] for t in tiles]) for k in IfuCube.PLANES})
    return out


def _far_from_source(cube: IfuCube, shape: tuple[int, int]) -> np.ndarray:
    y, x = np.indices(shape)
    x0, y0 = _spaxel_of(cube, SCENE.point_ra, SCENE.point_dec)
    return np.hypot(x - x0, y - y0) * cube.meta["wcsinfo"]["cdelt1"] * 3600 > FAR


def _spaxel_of(cube: IfuCube, ra: float, dec: float) -> tuple[float, float]:
    """0-based (x, y) cube position of a sky position, from the cube's own WCS numbers."""
    info = cube.meta["wcsinfo"]
    rot = np.degrees(np.arctan2(info["pc1_2"], -info["pc1_1"]))
    xi, eta = radec_to_std(info["crval1"], info["crval2"], np.array([ra]), np.array([dec]), rot)
    return (float(xi[0]) / (info["cdelt1"] * 3600) + info["crpix1"] - 1,
            float(eta[0]) / (info["cdelt2"] * 3600) + info["crpix2"] - 1)


@pytest.mark.parametrize("kind", ["miri", "nirspec"])
@pytest.mark.parametrize("weighting", ["drizzle", "msm", "emsm"])
def test_flat_scene_gives_a_flat_cube(tmp_path_factory, context, kind, weighting):
    ctx = context(ingested_set(tmp_path_factory, kind, SCENE), weighting=weighting)
    outcome = cube_build.run(ctx)
    assert outcome.status == "COMPLETE", outcome.message
    cubes = _cubes(ctx)
    assert len(cubes) == (2 if kind == "miri" else 1)  # MIRI: channels 1 and 2 of the SHORT files
    for cube, planes in cubes.values():
        sci = planes["sci"]
        good = planes["dq"] == 0
        assert good.sum() > 0.3 * sci.size
        flat = good & _far_from_source(cube, sci.shape[1:])[None]
        assert flat.sum() > 0.1 * sci.size
        np.testing.assert_allclose(sci[flat], 5.0, rtol=1e-5)
        assert np.all(np.isnan(sci[~good])) and np.all(planes["wmap"][~good] == 0)
        assert set(np.unique(planes["dq"])) <= {0, 1, 513}
        assert cube.shape == sci.shape


@pytest.mark.parametrize("kind", ["miri", "nirspec"])
def test_point_source_position_and_flux(tmp_path_factory, context, kind):
    ctx = context(ingested_set(tmp_path_factory, kind, SCENE))
    cube_build.run(ctx)
    cube, planes = next(iter(_cubes(ctx).values()))  # MIRI: channel 1
    sci = planes["sci"] - SCENE.flat
    nz = sci.shape[0]
    area = cube.meta["photometry"]["pixelarea_arcsecsq"]
    # flux conservation: every plane holds the source's flux (the scene is flat in wavelength)
    for k in range(2, nz - 2):
        assert np.nansum(sci[k]) * area == pytest.approx(SCENE.point_flux, rel=0.01), k
    # position: centroid of the collapsed image against the true position
    image = np.nansum(sci[2:nz - 2], axis=0)
    y, x = np.indices(image.shape)
    x0, y0 = _spaxel_of(cube, SCENE.point_ra, SCENE.point_dec)
    near = np.hypot(x - x0, y - y0) < 1.2 / (cube.meta["wcsinfo"]["cdelt1"] * 3600)
    weight = np.where(near, image, 0.0)
    cx, cy = (weight * x).sum() / weight.sum(), (weight * y).sum() / weight.sum()
    assert abs(cx - x0) < 0.1 and abs(cy - y0) < 0.1, (cx, cy, x0, y0)


@pytest.mark.parametrize(("kind", "weighting"), [("miri", "drizzle"), ("nirspec", "msm")])
def test_tiled_build_equals_whole_build(tmp_path_factory, context, kind, weighting):
    ingested = ingested_set(tmp_path_factory, kind, SCENE)
    whole = context(ingested, weighting=weighting)
    cube_build.run(whole)
    tiled = context(ingested, weighting=weighting, max_memory=SMALL)
    with pytest.warns(Spec3cWarning, match="leaves little"):  # the test frames are big beside the cubes
        outcome = cube_build.run(tiled)
    assert max(outcome.details.tiles.values()) > 2
    a, b = _cubes(whole), _cubes(tiled)
    assert a.keys() == b.keys()
    for name in a:
        for plane in IfuCube.PLANES:
            np.testing.assert_array_equal(a[name][1][plane], b[name][1][plane])


def test_ifualign_cube_is_rotated_and_keeps_the_source(tmp_path_factory, context):
    ingested = ingested_set(tmp_path_factory, "miri", SCENE)
    ctx = context(ingested, coord_system="ifualign")
    cube_build.run(ctx)
    cube, planes = next(iter(_cubes(ctx).values()))
    info = cube.meta["wcsinfo"]
    angle = np.degrees(np.arctan2(info["pc1_2"], -info["pc1_1"]))
    marker = ctx.inputs.cutouts[0].meta["ifu"]["rotation"]["1"]
    assert angle == pytest.approx(marker)
    image = np.nansum(planes["sci"], axis=0)
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    x0, y0 = _spaxel_of(cube, SCENE.point_ra, SCENE.point_dec)
    assert abs(x - x0) <= 1 and abs(y - y0) <= 1


def test_offset_file_moves_every_exposure(tmp_path_factory, context, tmp_path):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE)
    names = [f.name for f in ingested.files.files]
    offsets = tmp_path / "offsets.asdf"
    asdf.AsdfFile({"units": "arcsec", "filename": names, "raoffset": [0.0] * len(names),
                   "decoffset": [0.3] * len(names)}).write_to(offsets)
    plain, moved = context(ingested), context(ingested, offset_file=str(offsets))
    cube_build.run(plain)
    cube_build.run(moved)
    (c1, p1), = _cubes(plain).values()
    (c2, p2), = _cubes(moved).values()
    assert c2.meta["wcsinfo"]["crval2"] - c1.meta["wcsinfo"]["crval2"] == pytest.approx(0.3 / 3600, rel=1e-3)

    def centroid_dec(cube, planes):
        image = np.nansum(planes["sci"] - SCENE.flat, axis=0)
        y = np.indices(image.shape)[0]
        row = (image * y).sum() / image.sum()
        return cube.meta["wcsinfo"]["crval2"] + (row + 1 - cube.meta["wcsinfo"]["crpix2"]) * cube.meta["wcsinfo"]["cdelt2"]

    assert centroid_dec(c2, p2) - centroid_dec(c1, p1) == pytest.approx(0.3 / 3600, abs=0.02 / 3600)
    bad = tmp_path / "bad.asdf"
    asdf.AsdfFile({"units": "arcmin", "filename": names, "raoffset": [0.0] * 4, "decoffset": [0.0] * 4}).write_to(bad)
    with pytest.raises(InputError, match="only 'arcsec'"):
        cube_build.run(context(ingested, offset_file=str(bad)))


def test_parameters_shape_the_cube(tmp_path_factory, context):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE)
    ctx = context(ingested, nspax_x=20, nspax_y=15, scalexy=0.2, wavemin=3.02, wavemax=3.08, cube_pa=30.0)
    cube_build.run(ctx)
    (cube, planes), = _cubes(ctx).values()
    nz, ny, nx = cube.shape
    assert (nx, ny) == (21, 15)  # even nspax become odd, as the reference
    assert cube.meta["wcsinfo"]["cdelt1"] * 3600 == pytest.approx(0.2)
    assert cube.wavelength[0] > 3.02 and cube.wavelength[-1] < 3.08 and nz == 30
    assert np.degrees(np.arctan2(cube.meta["wcsinfo"]["pc1_2"], -cube.meta["wcsinfo"]["pc1_1"])) == pytest.approx(30.0)
    multi = context(ingested, output_type="multi")
    cube_build.run(multi)
    (mcube, _), = _cubes(multi).values()
    assert mcube.meta["wcsinfo"]["ctype3"] == "WAVE-TAB" and not mcube.meta["linear"]


def test_internal_cal_cube_of_one_nirspec_exposure(tmp_path_factory, context):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE, n_dithers=1)
    ctx = context(ingested, coord_system="internal_cal")
    outcome = cube_build.run(ctx)
    assert outcome.status == "COMPLETE"
    (cube, planes), = _cubes(ctx).values()
    assert cube.name.endswith("_g395h-f290lp_internal")
    assert cube.shape[2] in (30, 31)  # one column per slice
    good = planes["dq"] == 0
    assert good.sum() > 0.5 * good.size
    # columns of slices far across from the source see the flat scene only
    far = np.zeros(good.shape, dtype=bool)
    far[:, :, :3] = far[:, :, -3:] = True  # > 1.1" from the source: its wings are < 1e-3 of the scene
    np.testing.assert_allclose(planes["sci"][good & far], 5.0, rtol=2e-3)
    assert np.nanmax(planes["sci"]) > 10.0  # the source is in the cube
    assert cube.meta["wcsinfo"]["ctype1"] == "NRSSLICERX"
    many = context(ingested_set(tmp_path_factory, "nirspec", SCENE), coord_system="internal_cal")
    with pytest.raises(Spec3cError, match="one exposure"):
        cube_build.run(many)


def test_refusals_name_the_problem(tmp_path_factory, context, tmp_path):
    miri = ingested_set(tmp_path_factory, "miri", SCENE)
    with pytest.raises(Spec3cError, match="internal_cal is not valid"):
        cube_build.run(context(miri, coord_system="internal_cal"))
    with pytest.raises(InputError, match="CUBEPAR file not found"):
        cube_build.run(context(miri, override_cubepar=str(tmp_path / "none.fits")))
    ctx = context(miri)
    ctx.config = resolve_config()
    with pytest.raises(Spec3cError, match="needs a CUBEPAR"):
        cube_build.run(ctx)
    with pytest.raises(Spec3cError, match="no band with channel='3'"):
        cube_build.run(context(miri, channel="3"))
    skipped = cube_build.run(context(miri, output_type="grating"))
    assert skipped.status == "SKIPPED"


def test_cube_groups_and_names():
    from spec3c.modes.ifu.traits import MIRI_TRAITS, NIRSPEC_TRAITS

    bands = [("1", "short"), ("1", "medium"), ("2", "short"), ("2", "medium"), ("1", "long")]
    chosen = MIRI_TRAITS.select(bands, "all", "all")
    assert chosen == [("1", "short"), ("1", "medium"), ("1", "long"), ("2", "short"), ("2", "medium")]
    assert MIRI_TRAITS.groups(chosen, "channel") == [chosen[:3], chosen[3:]]
    assert MIRI_TRAITS.groups(chosen, "grating") == []
    assert MIRI_TRAITS.cube_name("jw1_miri", chosen[:3]) == "jw1_miri_ch1-shortmediumlong"
    assert MIRI_TRAITS.cube_name("jw1_miri", chosen) == "jw1_miri_ch1-2-shortmediumlong"
    assert MIRI_TRAITS.select(bands, "2", "all") == [("2", "short"), ("2", "medium")]
    assert MIRI_TRAITS.select(bands, "all", "['short', 'long']") == [("1", "short"), ("1", "long"), ("2", "short")]
    nrs = [("g395h", "f290lp"), ("g235h", "f170lp")]
    assert NIRSPEC_TRAITS.select(nrs, "all", "all") == [("g235h", "f170lp"), ("g395h", "f290lp")]
    assert NIRSPEC_TRAITS.cube_name("jw2_nirspec_g395h", nrs[:1]) == "jw2_nirspec_g395h-f290lp"
    assert NIRSPEC_TRAITS.cube_name("jw2_nirspec_g395h-f290lp", nrs) == \
        "jw2_nirspec_g395h-f290lp_g395h-f290lp-g235h-f170lp"
    assert NIRSPEC_TRAITS.table_name(nrs) == "high"
    with pytest.raises(Spec3cError, match="both grating and filter"):
        NIRSPEC_TRAITS.select(nrs, "g395h", "all")


def _build(voxels, tiles, exposures):
    from types import SimpleNamespace

    grid = SimpleNamespace(shape=(voxels, 1, 1))
    return SimpleNamespace(cube=SimpleNamespace(tiles=tiles), voxel_bytes=voxels * cube_build.VOXEL_BYTES,
                           frame=SimpleNamespace(geometry=SimpleNamespace(grid=grid)),
                           spec=SimpleNamespace(exposures=exposures))


def test_passes_share_the_budget():
    a, b, c = (_build(100, [(0, 100)], ["e1", "e2"]) for _ in range(3))
    big = _build(10**6, [(0, 5), (5, 9)], ["e1", "e2"])
    budget = 10 * cube_build.PIXEL_BYTES + 250 * cube_build.VOXEL_BYTES
    groups = cube_build.passes([a, b, big, c], budget, pixels=10)
    assert groups == [[(big, (0, 5))], [(big, (5, 9))], [(a, (0, 100)), (b, (0, 100))], [(c, (0, 100))]]


def test_passes_hold_only_cubes_of_shared_exposures():
    """Cubes of other exposures are built in passes of their own (the accumulators held at once are
    those one exposure's frames go to), cubes linked through a shared exposure together."""
    ch1_short, ch2_short = _build(10, [(0, 10)], ["s1", "s2"]), _build(10, [(0, 10)], ["s1", "s2"])
    ch1_long, ch2_long = _build(10, [(0, 10)], ["l1", "l2"]), _build(10, [(0, 10)], ["l2", "l3"])
    ch3_short = _build(10, [(0, 10)], ["x1"])
    groups = cube_build.passes([ch1_short, ch1_long, ch3_short, ch2_short, ch2_long], 2**40, pixels=10)
    assert groups == [[(ch1_short, (0, 10)), (ch2_short, (0, 10))], [(ch1_long, (0, 10)), (ch2_long, (0, 10))],
                      [(ch3_short, (0, 10))]]
    # a cube that links two groups merges them, in the order the cubes came
    bridge = _build(10, [(0, 10)], ["s2", "x1"])
    groups = cube_build.passes([ch1_short, ch3_short, bridge], 2**40, pixels=10)
    assert groups == [[(ch1_short, (0, 10)), (ch3_short, (0, 10)), (bridge, (0, 10))]]


def test_plane_tiles_fit_the_budget():
    tiles = cube_build.plane_tiles((100, 10, 10), budget=100 * cube_build.PIXEL_BYTES + 20 * 100 * cube_build.VOXEL_BYTES,
                                   pixels=100)
    assert tiles[0] == (0, 20) and tiles[-1] == (80, 100) and len(tiles) == 5
    assert cube_build.plane_tiles((7, 10, 10), budget=1, pixels=10**6) == [(k, k + 1) for k in range(7)]
    # below one exposure's needs, a quarter of the budget goes to the tiles
    assert cube_build.plane_tiles((100, 10, 10), budget=80 * 100 * cube_build.VOXEL_BYTES, pixels=10**6)[0] == (0, 20)
    assert cube_build.plane_tiles((7, 10, 10), budget=2**40, pixels=10**6) == [(0, 7)]


def test_run_skips_modes_without_cubes():
    from types import SimpleNamespace

    ctx = SimpleNamespace(mode=SimpleNamespace(cube=None, name="nirspec-fs"))
    assert cube_build.run(ctx).status == "SKIPPED"  # type: ignore[arg-type]


@pytest.mark.parametrize("params", [{}, {"output_type": "multi"}])
def test_each_exposure_read_once_when_the_cubes_fit(tmp_path_factory, context, monkeypatch, params):
    """Cubes that fit in memory together share one pass: every exposure's frames are read once
    (MIRI: the channel 1 and channel 2 cubes of the same files)."""
    ingested = ingested_set(tmp_path_factory, "miri", SCENE)
    ctx = context(ingested, **params)
    reads = []
    real = ctx.store.read_images
    monkeypatch.setattr(ctx.store, "read_images", lambda name, **kw: reads.append(name) or real(name, **kw))
    outcome = cube_build.run(ctx)
    assert len(outcome.details.cubes) == (1 if params else 2)
    assert sorted(reads) == sorted(c.exposure for c in ctx.inputs.cutouts)


def test_tiled_cubes_read_each_exposure_once_per_tile(tmp_path_factory, context, monkeypatch):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE)
    ctx = context(ingested, max_memory=SMALL)
    reads = []
    real = ctx.store.read_images
    monkeypatch.setattr(ctx.store, "read_images", lambda name, **kw: reads.append(name) or real(name, **kw))
    with pytest.warns(Spec3cWarning, match="leaves little"):
        outcome = cube_build.run(ctx)
    (tiles,) = outcome.details.tiles.values()
    assert tiles > 2 and len(reads) == tiles * len(ctx.inputs.cutouts)
