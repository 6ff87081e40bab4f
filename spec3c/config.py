"""Typed step parameters: defaults as the reference (jwst 3.x code defaults).

Precedence: defaults < parameter file (``--config``, TOML or JSON) < command
line (``--steps.STEP.PARAM=VALUE``) < ``--skip STEP``.  Every step has
``skip``; parameters are frozen dataclasses whose field metadata carries the
help text.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from .errors import InputError, Spec3cError


def _p(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's word
    return field(default=default, metadata={"help": help})


def fill_value(text: str, where: str) -> float:
    """The float of a ``fillval`` parameter: ``NAN``/``INDEF`` (any case) or a number."""
    word = str(text).strip().upper()
    if word in ("NAN", "INDEF"):
        return float("nan")
    try:
        return float(word)
    except ValueError:
        raise Spec3cError(f"--steps.{where}.fillval={text!r}: expected NAN, INDEF or a number") from None


@dataclass(frozen=True)
class StepParams:
    skip: bool = _p(False, "Do not run this step.")

    def uses_reference(self, reftype: str) -> bool:
        """Whether the step, with these parameters, reads its ``override_<reftype>`` file
        (CRDS chooses only those, :mod:`spec3c.reffiles`)."""
        return True


@dataclass(frozen=True)
class AssignMtwcsParams(StepParams):
    pass


@dataclass(frozen=True)
class MasterBackgroundParams(StepParams):
    median_kernel: int = _p(1, "Running-median width applied to the master background (odd).")
    user_background: str | None = _p(None, "1-D spectrum file to use as the background.")
    save_background: bool = _p(False, "Write the _masterbg1d/_masterbg2d products.")
    force_subtract: bool = _p(False, "Subtract even if stage 2 already subtracted a background.")


@dataclass(frozen=True)
class OutlierDetectionParams(StepParams):
    weight_type: str = _p("ivm", "Drizzle weighting of the median inputs: ivm or exptime.")
    pixfrac: float = _p(1.0, "Drizzle pixel shrink factor.")
    kernel: str = _p("square", "Drizzle kernel: square or point.")
    fillval: str = _p("NAN", "Value of output pixels with no input.")
    maskpt: float = _p(0.7, "Mask resampled pixels with weight below maskpt x mean weight.")
    snr: str = _p("5.0 4.0", "Two S/N thresholds (detection, dilation neighbours).")
    scale: str = _p("1.2 0.7", "Two derivative scale factors matching snr.")
    backg: float = _p(0.0, "Background level subtracted before flagging.")
    resample_data: bool = _p(True, "Resample before taking the median (False: median on the input grid).")
    good_bits: str = _p("~DO_NOT_USE", "DQ bits that count as good.")
    kernel_size: str = _p("7 7", "IFU: median-filter window (two odd sizes, y x) normalising the neighbour differences.")
    threshold_percent: float = _p(99.8, "IFU: flag pixels above this percentile of the normalised neighbour difference.")
    ifu_second_check: bool = _p(False, "IFU: also flag pixels whose neighbour difference is NaN in every exposure.")
    save_intermediate_results: bool = _p(False, "Not supported yet: the median and blot images stay in memory.")

    def __post_init__(self) -> None:
        fill_value(self.fillval, "outlier_detection")
        if self.save_intermediate_results:
            raise Spec3cError("--steps.outlier_detection.save_intermediate_results=true is not supported yet: "
                              "spec3c keeps the per-group resampled, median and blot images in memory only")

    def fill(self) -> float:
        """``fillval`` of the per-group drizzled images, as a float."""
        return fill_value(self.fillval, "outlier_detection")

    def thresholds(self) -> tuple[float, float, float, float]:
        """(snr1, snr2, scale1, scale2) parsed from the string parameters."""
        snr = [float(v) for v in self.snr.split()]
        scale = [float(v) for v in self.scale.split()]
        if len(snr) != 2 or len(scale) != 2:
            raise Spec3cError(f"outlier_detection: snr and scale need two values each, got {self.snr!r}, {self.scale!r}")
        return snr[0], snr[1], scale[0], scale[1]


@dataclass(frozen=True)
class PixelReplaceParams(StepParams):
    skip: bool = _p(True, "Do not run this step (skipped by default, as in the reference).")
    algorithm: str = _p("mingrad", "mingrad or fit_profile.")
    n_adjacent_cols: int = _p(3, "fit_profile: valid profiles used on each side.")


@dataclass(frozen=True)
class ResampleSpecParams(StepParams):
    pixfrac: float = _p(1.0, "Drizzle pixel shrink factor.")
    kernel: str = _p("square", "Drizzle kernel: square or point.")
    fillval: str = _p("NAN", "Value of output pixels with no input.")
    weight_type: str = _p("ivm", "Input weighting: ivm, exptime or none.")
    output_shape: str | None = _p(None, "Output shape 'nx ny' (default: from the inputs).")
    pixel_scale_ratio: float = _p(1.0, "Output/input spatial pixel-scale ratio.")
    pixel_scale: float | None = _p(None, "Output spatial pixel scale in arcsec (overrides the ratio).")

    def __post_init__(self) -> None:
        fill_value(self.fillval, "resample_spec")

    def fill(self) -> float:
        """``fillval`` of the output pixels that received no input, as a float."""
        return fill_value(self.fillval, "resample_spec")

_CUBE_CHOICES = {
    "output_type": ("band", "channel", "grating", "multi"),
    "weighting": ("drizzle", "emsm", "msm"),
    "coord_system": ("skyalign", "world", "ifualign", "internal_cal"),
}
_MEMORY_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30,
                 "T": 2**40, "TB": 2**40}


def memory_bytes(text: str, where: str) -> int:
    """Bytes of a memory size such as ``4GB``, ``512MB`` or ``1000000``."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _MEMORY_UNITS or float(match.group(1)) <= 0:
        raise Spec3cError(f"{where}={text!r}: expected a size such as 4GB, 512MB or a number of bytes")
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


def quarter_of_ram() -> int:
    """The default memory budget (cube_build's ``max_memory``, ingest's parallel reads): a quarter of
    the physical memory (os.sysconf: no psutil at run time; it is a ``bench`` extra)."""
    import os

    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)


@dataclass(frozen=True)
class CubeBuildParams(StepParams):
    channel: str = _p("all", "MIRI channels to build: all, or 1-4 (comma-separated).")
    band: str = _p("all", "MIRI sub-bands: all, short, medium, long (comma-separated; cross-dichroic names allowed).")
    grating: str = _p("all", "NIRSpec gratings: all, or e.g. g395h (with filter).")
    filter: str = _p("all", "NIRSpec filters: all, or e.g. f290lp (with grating).")
    output_type: str = _p("band", "Cubes to make: band, channel (MIRI), grating (NIRSpec) or multi (one of all).")
    linear_wave: bool = _p(True, "Linear wavelength axis (False: the CUBEPAR table; forced False for multi).")
    scalexy: float = _p(0.0, "Spaxel size in arcsec (0: CUBEPAR).")
    scalew: float = _p(0.0, "Wavelength step in micron (0: CUBEPAR).")
    weighting: str = _p("drizzle", "drizzle, emsm or msm.")
    coord_system: str = _p("skyalign", "skyalign (world), ifualign or internal_cal (NIRSpec, one exposure).")
    ra_center: float | None = _p(None, "RA of the cube centre in degrees (default: from the data).")
    dec_center: float | None = _p(None, "Dec of the cube centre in degrees (default: from the data).")
    cube_pa: float | None = _p(None, "Position angle of the cube (degrees E of N; skyalign).")
    nspax_x: int | None = _p(None, "Spaxels along axis 1 (odd; even values are increased by 1).")
    nspax_y: int | None = _p(None, "Spaxels along axis 2 (odd; even values are increased by 1).")
    rois: float = _p(0.0, "Spatial region of interest in arcsec (msm/emsm; 0: CUBEPAR).")
    roiw: float = _p(0.0, "Spectral region of interest in micron (msm/emsm; 0: CUBEPAR).")
    weight_power: float = _p(2.0, "msm weighting power (0: CUBEPAR).")
    wavemin: float | None = _p(None, "Minimum wavelength of the cubes in micron.")
    wavemax: float | None = _p(None, "Maximum wavelength of the cubes in micron.")
    skip_dqflagging: bool = _p(False, "Do not flag holes from the field of view (empty voxels are all NON_SCIENCE).")
    offset_file: str | None = _p(None, "ASDF file of RA/Dec offsets (arcsec) per input file.")
    override_cubepar: str | None = _p(None, "jwst-format CUBEPAR reference file (required: this or CRDS's "
                                            "when CRDS_PATH is set).")
    max_memory: str | None = _p(None, "Memory for one cube, e.g. 4GB (default: a quarter of the machine's RAM); "
                                      "larger cubes are built in wavelength tiles. Also --max-memory.")

    def __post_init__(self) -> None:
        for name, allowed in _CUBE_CHOICES.items():
            if str(getattr(self, name)).lower() not in allowed:
                raise Spec3cError(f"--steps.cube_build.{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if self.max_memory is not None:
            memory_bytes(self.max_memory, "--steps.cube_build.max_memory")
        for name in ("nspax_x", "nspax_y"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise Spec3cError(f"--steps.cube_build.{name}={value}: expected a positive number of spaxels")

    def choice(self, name: str) -> str:
        """A choice parameter in lower case (``world`` read as ``skyalign``)."""
        value = str(getattr(self, name)).lower()
        return "skyalign" if name == "coord_system" and value == "world" else value


@dataclass(frozen=True)
class Extract1dParams(StepParams):
    override_extract1d: str | None = _p(None, "jwst-format EXTRACT1D JSON aperture file (default: CRDS's when "
                                              "CRDS_PATH is set, else none: the whole slit; N/A: none).")
    apply_apcorr: bool = _p(True, "Apply the aperture correction (needs an APCORR file: override_apcorr or CRDS).")
    override_apcorr: str | None = _p(None, "jwst-format APCORR file (default: CRDS's when CRDS_PATH is set; N/A: none).")
    subtract_background: bool | None = _p(None, "Subtract the side-band background (None: as the aperture file says).")
    use_source_posn: bool | None = _p(None, "Centre the aperture on the source position (None: mode default).")
    position_offset: float = _p(0.0, "Extra aperture offset in pixels.")
    bkg_fit: str | None = _p(None, "Background fit: poly, mean or median (None: aperture file / poly).")
    bkg_order: int | None = _p(None, "Polynomial order of the background fit.")
    smoothing_length: int | None = _p(None, "Boxcar width applied to the background along dispersion.")
    extraction_type: str = _p("box", "box (optimal is only defined for MIRI LRS with a PSF file).")
    center_xy: str | None = _p(None, "IFU: aperture centre 'x y' in cube spaxels (0-based), instead of the "
                                     "source position.")
    ifu_autocen: bool = _p(False, "IFU point sources: centre on the brightest source the DAOFIND method finds in "
                                  "the cube's median image (below 26 micron).")
    bkg_sigma_clip: float = _p(3.0, "IFU: sigma-clipping threshold of the background statistics.")
    ifu_rfcorr: bool = _p(True, "MIRI MRS band cubes: 1-D residual fringe correction into the RF_* columns. Not "
                                "in spec3c yet: the RF_* columns are NaN (as the reference's with false), and a "
                                "note says so when true.")
    ifu_set_srctype: str | None = _p(None, "MIRI MRS: extract as POINT or EXTENDED whatever SRCTYPE says.")
    ifu_rscale: float | None = _p(None, "MIRI MRS: extraction radius in PSF FWHMs (0.5-3; the EXTRACT1D radii "
                                        "are 2 FWHM).")
    ifu_covar_scale: float = _p(1.0, "IFU: factor on the extracted errors for the cube's spaxel covariance.")
    override_pastasoss: str | None = _p(None, "NIRISS SOSS: jwst-format PASTASOSS file (trace positions and "
                                              "wavelengths against the pupil-wheel position; required).")
    override_specprofile: str | None = _p(None, "NIRISS SOSS: jwst-format SPECPROFILE file (spatial profiles; "
                                                "required, as the reference reads it).")
    override_speckernel: str | None = _p(None, "NIRISS SOSS: jwst-format SPECKERNEL file (spectral kernels; "
                                               "required, as the reference reads it).")
    soss_atoca: bool = _p(True, "NIRISS SOSS: model the orders with ATOCA and subtract the other orders' models "
                                "before the box extraction (false: box extraction of the data as they are).")
    soss_threshold: float = _p(1e-2, "NIRISS SOSS ATOCA: profile threshold of the pixels modelled.")
    soss_n_os: int = _p(2, "NIRISS SOSS ATOCA: oversampling of the modelled wavelength grid.")
    soss_wave_grid_in: str | None = _p(None, "NIRISS SOSS ATOCA: wavelength grid file to model on.")
    soss_wave_grid_out: str | None = _p(None, "NIRISS SOSS ATOCA: write the wavelength grid used to this file.")
    soss_estimate: str | None = _p(None, "NIRISS SOSS ATOCA: spectrum file estimating the flux (grid refinement).")
    soss_rtol: float = _p(1.0e-4, "NIRISS SOSS ATOCA: relative tolerance of the adaptive wavelength grid.")
    soss_max_grid_size: int = _p(20000, "NIRISS SOSS ATOCA: largest adaptive wavelength grid.")
    soss_tikfac: float | None = _p(None, "NIRISS SOSS ATOCA: Tikhonov factor (None: searched).")
    soss_width: float = _p(40.0, "NIRISS SOSS: width of the box aperture along each trace, pixels.")
    soss_bad_pix: str = _p("masking", "NIRISS SOSS: bad pixels are masked (masking) or take the ATOCA model "
                                      "(model).")
    soss_modelname: str | None = _p(None, "NIRISS SOSS: write the trace models and apertures (not supported yet).")
    soss_order_3: bool = _p(True, "NIRISS SOSS: also extract order 3 (SUBSTRIP256).")

    def __post_init__(self) -> None:
        self.center()
        if self.ifu_set_srctype is not None and self.ifu_set_srctype not in ("POINT", "EXTENDED"):
            raise Spec3cError(f"--steps.extract_1d.ifu_set_srctype={self.ifu_set_srctype!r}: expected POINT or "
                              "EXTENDED")
        if self.soss_bad_pix not in ("masking", "model"):
            raise Spec3cError(f"--steps.extract_1d.soss_bad_pix={self.soss_bad_pix!r}: expected masking or model")
        if self.soss_modelname is not None:
            raise Spec3cError("--steps.extract_1d.soss_modelname is not supported yet: spec3c does not write the "
                              "SOSS trace models and apertures")
        if self.soss_width <= 0:
            raise Spec3cError(f"--steps.extract_1d.soss_width={self.soss_width}: expected a positive width")
        if self.ifu_rscale is not None and not 0.5 <= self.ifu_rscale <= 3.0:
            raise Spec3cError(f"--steps.extract_1d.ifu_rscale={self.ifu_rscale}: expected a value from 0.5 to 3")

    def center(self) -> tuple[float, float] | None:
        """``center_xy`` as two floats (``"x y"``, ``"x,y"`` or ``"[x, y]"``), or None."""
        if self.center_xy is None:
            return None
        words = str(self.center_xy).replace(",", " ").strip("[]() ").split()
        try:
            x, y = (float(w) for w in words)
        except ValueError:
            raise Spec3cError(f"--steps.extract_1d.center_xy={self.center_xy!r}: expected two numbers, x and y") \
                from None
        return x, y

    def uses_reference(self, reftype: str) -> bool:
        return reftype != "apcorr" or self.apply_apcorr

    def soss_params(self) -> dict[str, Any]:
        """The ``soss_*`` parameters by name (what the SOSS extraction and ATOCA take)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith("soss_")}


@dataclass(frozen=True)
class PhotomParams(StepParams):
    override_photom: str | None = _p(None, "NIRISS SOSS: jwst-format PHOTOM file calibrating the extracted spectra "
                                           "(NisSossPhotomModel; default: CRDS's when CRDS_PATH is set; N/A or "
                                           "none: the step skips, the spectra stay in DN/s).")
    override_area: str | None = _p(None, "Pixel-area reference file (not read for SOSS spectra; accepted as the "
                                         "reference prefetches it).")
    inverse: bool = _p(False, "Divide by the conversion instead (not supported).")
    source_type: str | None = _p(None, "Override SRCTYPE (not supported).")
    apply_time_correction: bool = _p(True, "Apply the PHOTOM file's time-dependence correction.")

    def __post_init__(self) -> None:
        if self.inverse:
            raise Spec3cError("--steps.photom.inverse=true is not supported by spec3c")
        if self.source_type is not None:
            raise Spec3cError("--steps.photom.source_type is not supported by spec3c (SOSS spectra are point "
                              "sources)")

    def uses_reference(self, reftype: str) -> bool:
        return reftype != "area"


@dataclass(frozen=True)
class Combine1dParams(StepParams):
    exptime_key: str = _p("exposure_time", "Weight: exposure_time, integration_time or unit_weight.")
    sigma_clip: float | None = _p(None, "Reject points beyond this many MADs of the median.")


@dataclass(frozen=True)
class SpectralLeakParams(StepParams):
    override_mrsptcorr: str | None = _p(None, "jwst-format MRSPTCORR reference file (MIRI MRS; its LEAKCOR table "
                                              "gives the fraction of channel 1B light leaking into channel 3A; "
                                              "default: CRDS's when CRDS_PATH is set; N/A: none, the step skips).")


@dataclass(frozen=True)
class PipelineConfig:
    """Resolved parameters of every step, one typed attribute per step."""

    assign_mtwcs: AssignMtwcsParams = field(default_factory=AssignMtwcsParams)
    master_background: MasterBackgroundParams = field(default_factory=MasterBackgroundParams)
    outlier_detection: OutlierDetectionParams = field(default_factory=OutlierDetectionParams)
    pixel_replace: PixelReplaceParams = field(default_factory=PixelReplaceParams)
    resample_spec: ResampleSpecParams = field(default_factory=ResampleSpecParams)
    cube_build: CubeBuildParams = field(default_factory=CubeBuildParams)
    extract_1d: Extract1dParams = field(default_factory=Extract1dParams)
    photom: PhotomParams = field(default_factory=PhotomParams)
    combine_1d: Combine1dParams = field(default_factory=Combine1dParams)
    spectral_leak: SpectralLeakParams = field(default_factory=SpectralLeakParams)

    def step(self, name: str) -> StepParams:
        """The parameters of step ``name`` (any step of :data:`STEP_PARAMS`)."""
        if name not in STEP_PARAMS:
            raise Spec3cError(f"unknown step {name!r}; steps: {', '.join(STEP_PARAMS)}")
        params: StepParams = getattr(self, name)
        return params

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in fields(self)}


#: step name -> its parameter class, in the reference's order
STEP_PARAMS: dict[str, type[StepParams]] = {
    f.name: get_type_hints(PipelineConfig)[f.name] for f in fields(PipelineConfig)
}


def _base_type(typ: Any) -> tuple[type, bool]:
    """(underlying type, None allowed) of an annotation such as ``float | None``."""
    args = [a for a in get_args(typ) if a is not type(None)]
    return (args[0] if args else typ), bool(get_args(typ)) and type(None) in get_args(typ)


def _coerce(step: str, name: str, typ: Any, value: Any) -> Any:
    """Convert a CLI/file value to the parameter's declared type."""
    base, nullable = _base_type(typ)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if nullable:
            return None
        raise Spec3cError(f"--steps.{step}.{name}: may not be None")
    if base is bool and not isinstance(value, bool):
        low = str(value).lower()
        if low not in _BOOLEANS:
            raise Spec3cError(f"--steps.{step}.{name}={value!r}: expected true or false")
        return _BOOLEANS[low]
    try:
        return base(value)
    except (TypeError, ValueError) as exc:
        raise Spec3cError(f"--steps.{step}.{name}={value!r}: expected {base.__name__}") from exc


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _apply(params: StepParams, step: str, updates: Mapping[str, Any]) -> StepParams:
    hints = get_type_hints(type(params))
    known = {f.name for f in fields(params)}
    clean = {}
    for name, value in updates.items():
        if name not in known:
            raise Spec3cError(f"step {step!r} has no parameter {name!r}; known: {', '.join(sorted(known))}")
        clean[name] = _coerce(step, name, hints[name], value)
    return dataclasses.replace(params, **clean)


def read_param_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{step: {param: value}}`` from a TOML or JSON file (``[steps.STEP]`` or ``[STEP]`` tables)."""
    path = Path(path)
    try:
        text = path.read_bytes()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text.decode())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable parameter file: {exc}") from exc
    data = data.get("steps", data)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(path, "expected tables of step parameters, e.g. [steps.resample_spec]")
    return data


def parse_cli_overrides(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["steps.resample_spec.pixfrac=0.5"]`` → ``{"resample_spec": {"pixfrac": "0.5"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = key.removeprefix("--").split(".")
        if not sep or len(parts) != 3 or parts[0] != "steps":
            raise Spec3cError(f"{item!r}: expected --steps.STEP.PARAM=VALUE")
        out.setdefault(parts[1], {})[parts[2]] = value
    return out


def resolve_config(
    param_file: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    skip: Iterable[str] = (),
) -> PipelineConfig:
    """Defaults < parameter file < overrides < skip list."""
    config = PipelineConfig()
    layers: list[Mapping[str, Mapping[str, Any]]] = [read_param_file(param_file) if param_file else {},
                                                     dict(overrides or {}), {name: {"skip": True} for name in skip}]
    for layer in layers:
        for step, updates in layer.items():
            if step == "exp_to_source":
                raise Spec3cError("exp_to_source has no parameters and cannot be skipped: ingest groups every "
                                  "cutout by source, as the reference's exp_to_source (which always runs)")
            change: dict[str, Any] = {step: _apply(config.step(step), step, updates)}
            config = dataclasses.replace(config, **change)
    return config
