"""Run one calwebb_spec3 step on FITS products: inputs, dispatch and the reference's standalone names.

Inputs are FITS files, or one association (JSON) whose members are the
files.  Names follow stpipe for a step run alone: the input's root, its known
suffix (``_s2d``, ``_cal`` ...) removed, plus the step class in lower case
(:func:`spec3c.params_asdf.standalone_suffix`):

==================  =====================================  ===============================================
step                inputs                                 products
==================  =====================================  ===============================================
extract_1d          ``_s2d`` files                         ``<root>_extract1dstep.fits`` per input
combine_1d          ``_x1d`` files, or an ASN of them      one ``<root>_combine1dstep.fits`` (root of the
                                                           ASN, else of the first file)
resample_spec       ``_cal``/``_crf`` files, or an ASN     one ``<root>_resamplespecstep.fits``
outlier_detection   ``_cal``/``_crf`` files, or an ASN     ``<input root>[_<asn_id>]_outlierdetectionstep.fits``
                                                           per science input (asn_id with an ASN)
master_background   an ASN (science + background)          ``<input root>_masterbackgroundstep.fits`` per
                                                           science input
==================  =====================================  ===============================================
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..asn import Association, read_association
from ..config import PipelineConfig
from ..errors import InputError, Spec3cError
from ..log import step_logger
from ..naming import exposure_product_filename
from ..params_asdf import standalone_suffix
from ..store import ExposureRecord

__all__ = ["SINGLE_STEPS", "StepRun", "run_step", "standalone_name"]

#: the steps that run alone on FITS products, and what they take
SINGLE_STEPS = {
    "extract_1d": "_s2d files (SlitModel or MultiSlitModel) or IFU _s3d cubes (IFUCubeModel)",
    "combine_1d": "_x1d files, or an association of them",
    "resample_spec": "_cal/_crf exposures, or an association",
    "outlier_detection": "_cal/_crf exposures, or an association",
    "master_background": "an association with background members (or user_background)",
}


@dataclass
class StepRun:
    """What ``spec3c step`` did: the files written and one message per input or source."""

    step: str
    written: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def standalone_name(input_name: str, step: str, asn_id: str | None = None) -> str:
    """The reference's name of ``step``'s output for ``input_name`` (a file or association name)."""
    return exposure_product_filename(input_name, asn_id, standalone_suffix(step))


def _is_association(path: Path) -> bool:
    return path.suffix.lower() == ".json"


def _members(asn_path: Path) -> list[Path]:
    """The science members of an association of products (no exposure checks: they may be x1d files)."""
    asn = read_association(asn_path, allow_outside=True, check_files=False)
    return [m.path for m in asn.science]


def _association_of(inputs: Sequence[Path], work: Path) -> Association:
    """``inputs`` as an association: the one ASN given, or the files as its science members."""
    if len(inputs) == 1 and _is_association(inputs[0]):
        return read_association(inputs[0], allow_outside=True)
    if any(_is_association(p) for p in inputs):
        raise InputError(next(p for p in inputs if _is_association(p)),
                         "give one association, or FITS files, not both")
    root = Path(inputs[0]).name.removesuffix(".fits")
    document = {"asn_type": "spec3", "asn_id": None, "asn_pool": None, "program": None, "target": None,
                "products": [{"name": root, "members": [{"expname": str(Path(p).resolve()), "exptype": "science"}
                                                        for p in inputs]}]}
    path = work / f"{root}_asn.json"
    path.write_text(json.dumps(document))
    return read_association(path, allow_outside=True)


def _extract(inputs: Sequence[Path], config: PipelineConfig, out_dir: Path) -> StepRun:
    from .spectra import extract_file

    run = StepRun("extract_1d")
    files = _members(inputs[0]) if len(inputs) == 1 and _is_association(inputs[0]) else list(inputs)
    for path in files:
        written, outcomes = extract_file(path, config, out_dir / standalone_name(path.name, "extract_1d"))
        if written is not None:
            run.written.append(written)
        run.messages += [f"{path.name}: {o.status} {o.message}".rstrip() for o in outcomes]
        for note in dict.fromkeys(note for o in outcomes for note in o.notes):  # also in the product's PROVENANCE
            step_logger("extract_1d").warning("%s: %s", path.name, note)
    return run


def _combine(inputs: Sequence[Path], config: PipelineConfig, out_dir: Path) -> StepRun:
    from .spectra import combine_files

    association = len(inputs) == 1 and _is_association(inputs[0])
    files = _members(inputs[0]) if association else list(inputs)
    written, outcome = combine_files(files, config, out_dir / standalone_name(inputs[0].name, "combine_1d"))
    run = StepRun("combine_1d", [written] if written is not None else [])
    run.messages.append(f"{outcome.status} {outcome.message}".rstrip())
    return run


def _on_exposures(step: str, inputs: Sequence[Path], config: PipelineConfig, out_dir: Path) -> StepRun:
    from .exposures import run_on_exposures

    association = len(inputs) == 1 and _is_association(inputs[0])
    if step == "master_background" and not association:
        raise InputError(inputs[0], "master_background runs on an association (its background members "
                                    "make the master background)")
    with tempfile.TemporaryDirectory(prefix="spec3c-step-") as tmp:
        asn = _association_of(inputs, Path(tmp))
        asn_id = asn.asn_id if association and step == "outlier_detection" else None

        def out_name(record: ExposureRecord | None) -> str:
            if record is None:  # the one product of resample_spec
                return standalone_name(inputs[0].name, step)
            return standalone_name(Path(record.filename).name, step, asn_id)

        written, done = run_on_exposures(step, asn, config, out_name, out_dir)
    run = StepRun(step, written)
    run.messages += [f"source {source}: {o.status} {o.message}".rstrip() for source, o in done.outcomes.items()]
    return run


def run_step(step: str, inputs: Sequence[str | Path], output_dir: str | Path, config: PipelineConfig) -> StepRun:
    """Run ``step`` alone on ``inputs`` (FITS products or one association) and write its products
    into ``output_dir`` under the reference's standalone names.

    Raises
    ------
    Spec3cError
        For a step that does not run alone, or inputs it does not take
        (:class:`InputError` naming the file).
    """
    if step not in SINGLE_STEPS:
        raise Spec3cError(f"{step} does not run as a single step; single steps: "
                          + "; ".join(f"{name} ({what})" for name, what in SINGLE_STEPS.items()))
    paths = [Path(p) for p in inputs]
    if not paths:
        raise Spec3cError(f"{step}: no input given")
    for path in paths:
        if not path.is_file():
            raise InputError(path, "no such file")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if step == "extract_1d":
        return _extract(paths, config, out_dir)
    if step == "combine_1d":
        return _combine(paths, config, out_dir)
    return _on_exposures(step, paths, config, out_dir)
