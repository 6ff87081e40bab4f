"""The ``_s3d`` product: one ``IFUCubeModel`` per IFU cube (jwst 3.0.0 ``setup_final_ifucube_model``).

SCI, ERR, DQ, WMAP ``(nz, ny, nx)``, the ``WCS-TABLE`` wavelength table, the
FITS WCS keywords Cubeviz reads (``RA---TAN``/``DEC--TAN`` with a PC matrix,
``WAVE`` or ``WAVE-TAB`` + ``PS3_0``/``PS3_1``), ``PIXAR_SR``/``PIXAR_A2``,
``S_REGION`` and the gwcs the reference builds from those keywords.  Metadata
come from the cube's first input (``IFUCubeModel.update``) with keywords blended over
the inputs (DETECTOR, exposure times, ...) by the schema's rules, as ``model_blender``,
which also adds the ``HDRTAB`` extension: one row of header keywords per input.

The cube planes are streamed from the store tile by tile into the file: the
datamodel is built and validated by stdatamodels with memory-free placeholders
of the right shape (sparse memory maps), which stdatamodels turns into the
FITS headers and the ASDF extension; the data bytes are then written plane
block by plane block, so writing a cube never needs the cube in memory.  The
file is the same, byte for byte, as ``IFUCubeModel.save`` of the whole cube.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import warnings
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from ..fitsio import asdf_write_unvalidated
from ..modes.registry import mode_of_store
from ..naming import ProductNaming, product_filename
from ..results import COMPLETE, IfuCube
from ..store import Store
from ..store.records import ExposureRecord
from .blend import attach_hdrtab, blended_values, hdrtab_table
from .fits_io import validate_strict, validating
from .meta import cal_steps_for, flat_to_tree, merge_tree, stamp_model, top_level_meta
from .models import schema_model
from .writers import (
    PathLike,
    _asn_meta,
    _input_meta,
    _records,
    _resolved,
    _source_base,
    _status,
)

__all__ = ["attach_hdrtab", "cube_gwcs", "write_s3d"]

#: wcsinfo keywords of the inputs that mean nothing for a combined cube (the reference drops them)
_DROPPED_WCSINFO = ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity", "s_region",
                    "spectral_region", "waverange_start", "waverange_end")
#: cube plane -> (datamodel attribute, FITS extension, dtype)
_PLANES = {"sci": ("data", "SCI", np.float32), "err": ("err", "ERR", np.float32),
           "dq": ("dq", "DQ", np.uint32), "wmap": ("weightmap", "WMAP", np.float32)}


def cube_gwcs(wcsinfo: dict[str, Any], shape: tuple[int, int, int], wavelength: np.ndarray | None) -> Any:
    """The cube's gwcs, as the reference's ``create_fitswcs``: TAN sky axes and a linear or
    tabulated (``wavelength``, float32) spectral axis; bounding box = the cube."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models as am
    from gwcs import WCS
    from gwcs import coordinate_frames as cf
    from gwcs import utils as gwutils

    info: dict[str, Any] = {
        "WCSAXES": 3,
        "CRPIX": np.array([wcsinfo["crpix1"], wcsinfo["crpix2"], wcsinfo["crpix3"]], dtype=np.float64),
        "CRVAL": np.array([wcsinfo["crval1"], wcsinfo["crval2"], wcsinfo["crval3"]], dtype=np.float64),
        "CDELT": np.array([wcsinfo["cdelt1"], wcsinfo["cdelt2"], wcsinfo.get("cdelt3") or 1.0], dtype=np.float64),
        "CTYPE": np.array([wcsinfo["ctype1"], wcsinfo["ctype2"], wcsinfo["ctype3"]]),
        "CUNIT": np.array([u.Unit(wcsinfo["cunit1"]), u.Unit(wcsinfo["cunit2"]), u.Unit(wcsinfo["cunit3"])]),
        "PC": np.array([[wcsinfo[f"pc{i}_{j}"] for j in (1, 2, 3)] for i in (1, 2, 3)], dtype=np.float64),
        "RADESYS": "ICRS", "has_cd": False,
    }
    transform = gwutils.make_fitswcs_transform(info)
    if wavelength is None:
        spectral = am.Shift(-(info["CRPIX"][2] - 1)) | am.Scale(info["CDELT"][2]) | am.Shift(info["CRVAL"][2])
    else:
        spectral = am.Tabular1D(lookup_table=np.asarray(wavelength, dtype=np.float32))
    detector = cf.CoordinateFrame(name="detector", naxes=3, axes_order=(0, 1, 2), unit=(u.pix, u.pix, u.pix),
                                  axes_type=["SPATIAL", "SPATIAL", "SPECTRAL"], axes_names=("x", "y", "z"),
                                  axis_physical_types=None)
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS(),
                            unit=(u.Unit(wcsinfo["cunit1"]), u.Unit(wcsinfo["cunit2"])), axes_names=("RA", "DEC"))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.Unit(wcsinfo["cunit3"]),),
                            axes_names=("wavelength",))
    wcs = WCS([(detector, transform & spectral), (cf.CompositeFrame([sky, spec], name="world"), None)])
    nz, ny, nx = shape
    wcs.bounding_box = ((0, nx - 1), (0, ny - 1), (0, nz - 1))
    return wcs


def _s_region(wcs: Any) -> str:
    corners = wcs.footprint(axis_type="spatial")
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for point in corners for v in point)


def _wavetable(cube: IfuCube) -> np.ndarray:
    """The ``WCS-TABLE`` row: plane wavelengths (float32) ``(nz, 1)``."""
    info = cube.meta["wcsinfo"]
    nz = cube.shape[0]
    if cube.meta.get("linear", True):
        wave = info["crval3"] + (np.arange(nz) + 1 - info["crpix3"]) * info["cdelt3"]
    else:
        wave = np.asarray(cube.wavelength)
    table = np.zeros(1, dtype=[("wavelength", "<f4", (nz, 1))])
    table["wavelength"][0, :, 0] = np.asarray(wave, dtype=np.float32)
    return table


def _blended(records: Mapping[str, ExposureRecord], cube: IfuCube) -> dict[str, Any]:
    """Keywords combined over the cube's inputs (``meta path -> value``), as the reference's
    ``blend_output_metadata``: the schema's blend rules (DETECTOR ``MULTIPLE`` over NRS1+NRS2,
    exposure times summed, ...) over the (band, file) inputs -- a MIRI file counts once per
    band of the cube --, only when the association has more than one input (else the first
    input's values stand)."""
    inputs = _blend_inputs(cube)
    return blended_values([flat_to_tree(records[e].meta) for e in inputs]) if inputs else {}


def _hdrtab(store: Store, source: str, naming: ProductNaming, cube: IfuCube) -> np.ndarray | None:
    """The reference's HDRTAB of a cube built from several inputs: one row per (band, file) input
    (``blend_output_metadata``) of its metadata as it entered cube_build (the earlier steps'
    statuses, the ASN), the IFUImageModel schema's ``blend_table`` keywords as columns."""
    inputs = _blend_inputs(cube)
    if not inputs:
        return None
    records = _records(store)
    steps = {k: v for k, v in cal_steps_for("s2d", _status(store, source)).items()
             if k not in ("resample", "resample_spec")}
    metas = [_input_meta(records[e], None, naming, steps, image=True) for e in inputs]
    return hdrtab_table(metas, "IFUImageModel")


def _blend_inputs(cube: IfuCube) -> list[str]:
    inputs = cube.meta.get("blend_inputs")
    if inputs is None:  # a cube stored before the blend list: its distinct inputs
        inputs = cube.meta["inputs"] if len(cube.meta["inputs"]) > 1 else []
    return list(inputs)


def _cube_meta(store: Store, source: str, naming: ProductNaming, cube: IfuCube) -> dict[str, Any]:
    records = _records(store)
    reference = records[cube.meta["reference_input"]]
    meta = top_level_meta(reference, keep_sci=True)
    merge_tree(meta, _asn_meta(naming))
    for path, value in _blended(records, cube).items():
        node = meta
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    status = _status(store, source)
    steps = cal_steps_for("s2d", status)
    steps.pop("resample", None)
    steps["cube_build"] = COMPLETE
    merge_tree(meta, {"cal_step": steps})
    # blending copies the first input's metadata the cube schema has: WAVSTART/WAVEND stay
    kept = ("waverange_start", "waverange_end") if _blend_inputs(cube) else ()
    dropped = [k for k in _DROPPED_WCSINFO if k not in kept]
    wcsinfo = {k: v for k, v in dict(meta.get("wcsinfo", {})).items() if k not in dropped}
    wcsinfo.update(cube.meta["wcsinfo"])
    meta["wcsinfo"] = wcsinfo
    meta["photometry"] = dict(cube.meta["photometry"])
    meta["ifu"] = dict(cube.meta["ifu"])
    if cube.meta.get("channel"):
        meta.setdefault("instrument", {})["channel"] = cube.meta["channel"]
    if cube.meta.get("moving_target"):  # the reference: a moving target's cube sits at the mean ephemeris
        avra, avdec = (float(v) for v in cube.meta["moving_target"])
        wcsinfo.update(mt_ra=avra, mt_dec=avdec)
        meta.setdefault("target", {}).update(ra=avra, dec=avdec)
    meta.pop("wcs", None)
    return meta


@contextlib.contextmanager
def _placeholders(shape: tuple[int, int, int], folder: Path) -> Iterator[dict[str, np.ndarray]]:
    """Read-only memory maps of sparse files, one per plane: the right shape and dtype, no memory."""
    arrays: dict[str, np.ndarray] = {}
    files: list[Path] = []
    try:
        for plane, (_, _, dtype) in _PLANES.items():
            handle = tempfile.NamedTemporaryFile(prefix=".s3d-", dir=folder, delete=False)  # noqa: SIM115
            files.append(Path(handle.name))
            with handle:
                handle.truncate(int(np.prod(shape)) * np.dtype(dtype).itemsize)
            arrays[plane] = np.memmap(handle.name, dtype=dtype, mode="r", shape=shape)
        yield arrays
    finally:
        arrays.clear()
        for f in files:
            f.unlink(missing_ok=True)


def _model(cube: IfuCube, meta: dict[str, Any], planes: dict[str, np.ndarray]) -> Any:
    tree: dict[str, Any] = {"meta": meta, "wavetable": _wavetable(cube)}
    for plane, (attr, _, _) in _PLANES.items():
        tree[attr] = planes[plane]
    if not cube.meta.get("linear", True):
        tree["wavedim"] = f"(1,{cube.shape[0]:d})"
    model = schema_model(dm.IFUCubeModel, tree)
    wave = None if cube.meta.get("linear", True) else _wavetable(cube)["wavelength"].reshape(-1)
    model.meta.wcs = cube_gwcs(cube.meta["wcsinfo"], cube.shape, wave)
    model.meta.wcsinfo.s_region = _s_region(model.meta.wcs)
    model.meta.model_type = "IFUCubeModel"
    return model


def _big_endian(plane: str, values: np.ndarray) -> np.ndarray:
    """A tile plane as the bytes FITS stores: big-endian; uint32 DQ as int32 with BZERO 2**31."""
    if plane == "dq":
        return (np.ascontiguousarray(values, dtype=np.uint32) ^ np.uint32(0x80000000)).view(np.int32).astype(">i4")
    return np.ascontiguousarray(values, dtype=">f4")


def _stream(hdulist: fits.HDUList, cube: IfuCube, store: Store, source: str, path: Path) -> None:
    """Write ``hdulist`` to ``path`` with the cube planes streamed from the store's tiles."""
    streamed = {ext: plane for plane, (_, ext, _) in _PLANES.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long")
        fits.HDUList([hdulist[0]]).writeto(path)
        pending: list[Any] = []  # HDUs that are not planes, appended together (an append re-reads the file's headers)
        for hdu in [*hdulist[1:], None]:
            if hdu is not None and hdu.name not in streamed:
                pending.append(hdu)
                continue
            if pending:
                with fits.open(path, mode="append") as out:
                    for other in pending:
                        out.append(other)
                pending.clear()
            if hdu is None:
                break
            stream = fits.StreamingHDU(str(path), hdu.header)
            plane = streamed[hdu.name]
            for tile in cube.tiles:
                for slab in cube.iter_plane(store, source, tile, plane):
                    stream.write(_big_endian(plane, slab))
            stream.close()


def _save(model: Any, cube: IfuCube, store: Store, source: str, path: Path) -> Path:
    """Serialise (stdatamodels) and write the model atomically, planes streamed; validated first when
    products are (:func:`~.fits_io.validating`: the suite's every product, as the other writers')."""
    from stdatamodels import fits_support

    stamp_model(model)  # provenance, inside export's stamping block
    model.meta.filename = path.name
    if validating():
        validate_strict(model)
    # the temporary name of every product write: .<name>.<host>.<pid>.<random>.tmp beside the product
    prefix = f".{path.name}.{socket.gethostname().replace('.', '-')}.{os.getpid()}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        with asdf_write_unvalidated():
            model.on_save(str(path))
            hdulist = fits_support.to_fits(model._instance, model._schema)
        _stream(hdulist, cube, store, source, tmp)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_s3d(store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "s3d",
              only: Collection[str] | None = None) -> list[Path]:
    """Write every cube of the source (``only``: of these names) as ``<product>_<bands>_s3d.fits``
    (``IFUCubeModel``)."""
    naming = _resolved(store, naming)
    traits = mode_of_store(store).cube
    if traits is None:
        raise ValueError("s3d products exist only for IFU modes")
    base = _source_base(naming, source, store.list_cutouts(source))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for name in IfuCube.names(store, source):
        if only is not None and name not in only:
            continue
        cube = IfuCube.load(store, source, name)
        bands = [(str(a), str(b)) for a, b in cube.meta["bands"]]
        stem = traits.cube_name(base, bands, cube.meta.get("coord_system") == "internal_cal")
        path = Path(out_dir) / product_filename(stem, suffix)
        meta = _cube_meta(store, source, naming, cube)
        table = _hdrtab(store, source, naming, cube)
        with _placeholders(cube.shape, path.parent) as planes:
            model = _model(cube, meta, planes)
            with model:
                if table is not None:
                    attach_hdrtab(model, table)
                paths.append(_save(model, cube, store, source, path))
    return paths
