"""``spec3c compare DIR_A DIR_B``: a parity report between two folders of FITS products.

Made to compare spec3c's products with calwebb_spec3's (or two runs of
either), file by file and HDU by HDU:

* **names**: ``*.fits`` files present in one folder only; in each file, HDUs
  (by EXTNAME and EXTVER) present in one only; table columns present in one only;
* **shapes** of every image and table;
* **data**: for floating-point arrays and table columns, the median and the
  maximum of ``|a - b| / |b|`` over the elements finite in both with
  ``b != 0`` (B is the reference), the largest ``|a - b|``, and how many
  elements are NaN in one and finite in the other;
* **DQ** (``DQ`` images and columns, and other integer arrays): how many
  elements differ and in which bits;
* **headers**: keywords present in one only and keywords whose values differ,
  leaving out the structural ones (NAXIS, TFORM ...) and those that name the
  run rather than the data (DATE, FILENAME, CAL_VER ... :data:`VOLATILE_KEYWORDS`).

A comparison fails (:attr:`CompareReport.failures`, exit status 1 of the
command) on a missing file, HDU or column, a shape difference, a median
relative difference above ``median_rel``, a maximum above ``max_rel`` (when
given), NaN-pattern or DQ differences above their fractions, and, with
``strict_headers``, any header difference.  ASDF extensions (the datamodel
tree, gwcs included) are compared by size only.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["ArrayDiff", "CompareReport", "FileReport", "HeaderDiff", "Tolerances", "VOLATILE_KEYWORDS",
           "compare_dirs", "compare_files"]

#: keywords that describe the run (time, software, file name), not the product's content
VOLATILE_KEYWORDS = (
    "DATE", "FILENAME", "CAL_VER", "CAL_VCS", "CAL_SVN", "CRDS_VER", "CRDS_CTX", "ASNTABLE", "ASNPOOL",
    "CHECKSUM", "DATASUM", "S3CSRC", "S3CKEY", "DATAMODL",
)  # fmt: skip
#: keywords of the FITS structure, compared through shapes and columns instead
_STRUCTURAL_PREFIXES = ("NAXIS", "TFORM", "TTYPE", "TUNIT", "TDIM", "TNULL", "TSCAL", "TZERO", "TDISP")
_STRUCTURAL = ("SIMPLE", "BITPIX", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "TFIELDS", "EXTNAME", "EXTVER",
               "COMMENT", "HISTORY", "", "BZERO", "BSCALE")
#: HDUs whose content is an opaque blob (the ASDF tree): compared by size
_OPAQUE_HDUS = ("ASDF",)
_DQ_NAMES = ("DQ",)


@dataclass(frozen=True)
class Tolerances:
    """Above these, a comparison fails.

    Attributes
    ----------
    median_rel : float
        Largest accepted median of ``|a - b| / |b|`` of an array or column.
    max_rel : float or None
        Largest accepted maximum of the same (None: reported, not checked).
    nan_fraction : float
        Largest accepted fraction of elements NaN in one and finite in the other.
    dq_fraction : float
        Largest accepted fraction of DQ (integer) elements that differ.
    strict_headers : bool
        Any header difference (beyond ``ignore_keywords``) fails.
    ignore_keywords : tuple of str
        Header keywords left out of the comparison (besides the structural ones).
    ignore_hdus : tuple of str
        EXTNAMEs left out (e.g. ``PROVENANCE``, which only spec3c writes).
    """

    median_rel: float = 1e-4
    max_rel: float | None = None
    nan_fraction: float = 0.0
    dq_fraction: float = 0.0
    strict_headers: bool = False
    ignore_keywords: tuple[str, ...] = VOLATILE_KEYWORDS
    ignore_hdus: tuple[str, ...] = ()


@dataclass
class ArrayDiff:
    """One image or table column compared."""

    hdu: str
    column: str | None
    kind: str  # "float" | "dq" | "other"
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    n_compared: int = 0
    median_rel: float | None = None
    max_rel: float | None = None
    max_abs: float | None = None
    nan_mismatch: int = 0
    n_differ: int = 0
    bits: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.hdu if self.column is None else f"{self.hdu}[{self.column}]"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape_b)) if self.shape_b else 1


@dataclass
class HeaderDiff:
    """Header keywords of one HDU that differ."""

    hdu: str
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    differ: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.only_a or self.only_b or self.differ)


@dataclass
class FileReport:
    """One file present in both folders."""

    name: str
    hdus_only_a: list[str] = field(default_factory=list)
    hdus_only_b: list[str] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)  # columns in one only, table vs image, no data
    arrays: list[ArrayDiff] = field(default_factory=list)
    headers: list[HeaderDiff] = field(default_factory=list)
    error: str | None = None


@dataclass
class CompareReport:
    """The whole comparison; :meth:`failures` applies the tolerances."""

    dir_a: Path
    dir_b: Path
    tolerances: Tolerances
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)

    def failures(self) -> list[str]:
        """One line per difference above the tolerances (empty: the folders agree)."""
        tol = self.tolerances
        out = [f"only in A: {n}" for n in self.only_a] + [f"only in B: {n}" for n in self.only_b]
        for f in self.files:
            out += _file_failures(f, tol)
        return out

    @property
    def ok(self) -> bool:
        return not self.failures()

    def render(self, verbose: bool = False) -> str:
        """The report as text: a summary line per file and every failure."""
        return "\n".join(_render(self, verbose))

    def to_json(self) -> str:
        data = asdict(self)
        data["dir_a"], data["dir_b"] = str(self.dir_a), str(self.dir_b)
        data["failures"] = self.failures()
        return json.dumps(_finite(data), indent=1, default=_json_value, allow_nan=False)


def _json_value(value: Any) -> Any:
    return str(value)  # anything json does not know (numpy scalars, paths)


def _finite(value: Any) -> Any:
    """Infinite or NaN floats as text, so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _file_failures(f: FileReport, tol: Tolerances) -> list[str]:
    where = f.name
    if f.error:
        return [f"{where}: {f.error}"]
    out = [f"{where}: HDU {h} only in A" for h in f.hdus_only_a]
    out += [f"{where}: HDU {h} only in B" for h in f.hdus_only_b]
    out += [f"{where}: {problem}" for problem in f.structure]
    for a in f.arrays:
        out += [f"{where} {a.label}: {problem}" for problem in _array_problems(a, tol)]
    if tol.strict_headers:
        for h in f.headers:
            if h:
                out.append(f"{where} {h.hdu}: header differs ({_header_summary(h)})")
    return out


def _array_problems(a: ArrayDiff, tol: Tolerances) -> list[str]:
    if a.shape_a != a.shape_b:
        return [f"shape {a.shape_a} in A, {a.shape_b} in B"]
    out = []
    size = max(a.size, 1)
    if a.kind == "float":
        if a.median_rel is not None and a.median_rel > tol.median_rel:
            out.append(f"median relative difference {a.median_rel:.3g} > {tol.median_rel:g}")
        if tol.max_rel is not None and a.max_rel is not None and a.max_rel > tol.max_rel:
            out.append(f"max relative difference {a.max_rel:.3g} > {tol.max_rel:g}")
        if a.nan_mismatch / size > tol.nan_fraction:
            out.append(f"{a.nan_mismatch} elements NaN in one only ({a.nan_mismatch / size:.3g} > "
                       f"{tol.nan_fraction:g})")
    elif a.n_differ / size > tol.dq_fraction:
        bits = f", bits {a.bits}" if a.bits else ""
        out.append(f"{a.n_differ} of {a.size} values differ ({a.n_differ / size:.3g} > {tol.dq_fraction:g}{bits})")
    return out


def _header_summary(h: HeaderDiff) -> str:
    parts = []
    if h.only_a:
        parts.append("only in A: " + ", ".join(h.only_a))
    if h.only_b:
        parts.append("only in B: " + ", ".join(h.only_b))
    if h.differ:
        parts.append("values: " + ", ".join(f"{k} {va!s} != {vb!s}" for k, va, vb in h.differ))
    return "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def _render(report: CompareReport, verbose: bool) -> Iterable[str]:
    yield f"A: {report.dir_a}"
    yield f"B: {report.dir_b} (reference)"
    yield (f"{len(report.files)} files in both, {len(report.only_a)} only in A, {len(report.only_b)} only in B")
    for f in report.files:
        floats = [a for a in f.arrays if a.kind == "float" and a.median_rel is not None]
        worst_median = max((a.median_rel for a in floats if a.median_rel is not None), default=None)
        worst_max = max((a.max_rel for a in floats if a.max_rel is not None), default=None)
        dq = sum(a.n_differ for a in f.arrays if a.kind != "float")
        n_headers = sum(len(h.only_a) + len(h.only_b) + len(h.differ) for h in f.headers)
        yield (f"  {f.name}: {len(f.arrays)} arrays, median rel <= {_fmt(worst_median)}, "
               f"max rel <= {_fmt(worst_max)}, DQ/int differences {dq}, header differences {n_headers}"
               + (f"  ERROR {f.error}" if f.error else ""))
        if verbose:
            yield from _render_file(f)
    failures = report.failures()
    yield f"{len(failures)} difference(s) above the tolerances" + (":" if failures else "")
    for line in failures:
        yield f"  {line}"


def _render_file(f: FileReport) -> Iterable[str]:
    for a in f.arrays:
        if a.kind == "float":
            yield (f"      {a.label}: {a.shape_b} median rel {_fmt(a.median_rel)}, max rel {_fmt(a.max_rel)}, "
                   f"max abs {_fmt(a.max_abs)}, NaN in one only {a.nan_mismatch}")
        else:
            yield f"      {a.label}: {a.shape_b} {a.n_differ} differ" + (f" (bits {a.bits})" if a.bits else "")
    for h in f.headers:
        if h:
            yield f"      header {h.hdu}: {_header_summary(h)}"


# -- comparing -----------------------------------------------------------------------


def _hdu_key(hdu: Any, index: int) -> str:
    if index == 0:
        return "PRIMARY"
    name = str(hdu.name or f"HDU{index}")
    ver = hdu.header.get("EXTVER", 1)
    return f"{name},{ver}"


def _kind(array: np.ndarray, name: str) -> str:
    if array.dtype.kind == "f" or array.dtype.kind == "c":
        return "float"
    if array.dtype.kind in "iub":
        return "dq" if name.upper() in _DQ_NAMES else "other"
    return "other"


def _float_diff(diff: ArrayDiff, a: np.ndarray, b: np.ndarray) -> None:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    fa, fb = np.isfinite(a), np.isfinite(b)
    diff.nan_mismatch = int(np.count_nonzero(fa != fb))
    both = fa & fb
    delta = np.abs(a[both] - b[both])
    diff.n_compared = int(delta.size)
    if delta.size:
        diff.max_abs = float(delta.max())
        ref = np.abs(b[both])
        nonzero = ref > 0
        rel = delta[nonzero] / ref[nonzero]
        if rel.size:
            diff.median_rel = float(np.median(rel))
            diff.max_rel = float(rel.max())
        else:
            diff.median_rel = diff.max_rel = 0.0 if not delta.any() else math.inf


def _int_diff(diff: ArrayDiff, a: np.ndarray, b: np.ndarray) -> None:
    differ = a != b
    diff.n_compared = int(a.size)
    diff.n_differ = int(np.count_nonzero(differ))
    if diff.kind == "dq" and diff.n_differ:
        xor = np.bitwise_or.reduce(np.bitwise_xor(a[differ].astype(np.uint64), b[differ].astype(np.uint64)))
        diff.bits = [bit for bit in range(64) if int(xor) >> bit & 1]


def compare_arrays(hdu: str, column: str | None, a: Any, b: Any) -> ArrayDiff:
    """Compare one image (or table column) ``a`` with the reference ``b``."""
    a, b = np.asarray(a), np.asarray(b)
    name = column if column is not None else hdu.split(",")[0]
    diff = ArrayDiff(hdu, column, _kind(b, name), tuple(a.shape), tuple(b.shape))
    if a.shape != b.shape:
        return diff
    if diff.kind == "float" or _kind(a, name) == "float":
        diff.kind = "float"
        _float_diff(diff, a, b)
    elif a.dtype.kind in "iub" and b.dtype.kind in "iub":
        _int_diff(diff, a, b)
    else:
        diff.n_compared = int(b.size)
        diff.n_differ = int(np.count_nonzero(np.asarray(a != b)))
    return diff


def _tables(report: FileReport, key: str, a: Any, b: Any, ignore: Sequence[str] = ()) -> None:
    """Columns of two tables; in HDRTAB (the inputs' headers, a column per keyword) the ignored
    keywords' columns are left out as the keywords are."""
    cols_a = list(a.columns.names) if a is not None else []
    cols_b = list(b.columns.names) if b is not None else []
    report.structure += [f"column {key}[{c}] only in A" for c in cols_a if c not in cols_b]
    report.structure += [f"column {key}[{c}] only in B" for c in cols_b if c not in cols_a]
    if a is None or b is None:
        return
    skipped = {k.upper() for k in ignore} if key.split(",")[0] == "HDRTAB" else set()
    for col in (c for c in cols_b if c in cols_a and c.upper() not in skipped):
        report.arrays.append(compare_arrays(key, col, a[col], b[col]))


def _headers(key: str, ha: Any, hb: Any, ignore: Sequence[str]) -> HeaderDiff:
    skip = {k.upper() for k in ignore} | set(_STRUCTURAL)

    def kept(header: Any) -> dict[str, Any]:
        return {k: header[k] for k in header if k not in skip and not k.startswith(_STRUCTURAL_PREFIXES)}

    a, b = kept(ha), kept(hb)
    diff = HeaderDiff(key, sorted(set(a) - set(b)), sorted(set(b) - set(a)))
    for k in (k for k in b if k in a):
        if not _same_value(a[k], b[k]):
            diff.differ.append((k, str(a[k]), str(b[k])))
    return diff


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12) or (
            math.isnan(float(a)) and math.isnan(float(b)))
    return str(a).strip() == str(b).strip()


def _compare_hdu(report: FileReport, key: str, a: Any, b: Any, tol: Tolerances) -> None:
    report.headers.append(_headers(key, a.header, b.header, tol.ignore_keywords))
    if key.split(",")[0] in _OPAQUE_HDUS:
        return
    is_table_a, is_table_b = hasattr(a, "columns"), hasattr(b, "columns")
    if is_table_a != is_table_b:
        report.structure.append(f"{key} is a {'table' if is_table_a else 'image'} in A, "
                                f"a {'table' if is_table_b else 'image'} in B")
    elif is_table_b:
        _tables(report, key, a.data, b.data, tol.ignore_keywords)
    elif (a.data is None) != (b.data is None):
        report.structure.append(f"{key} has data only in {'B' if a.data is None else 'A'}")
    elif a.data is not None:
        report.arrays.append(compare_arrays(key, None, a.data, b.data))


def compare_files(path_a: str | Path, path_b: str | Path, tolerances: Tolerances = Tolerances()) -> FileReport:
    """Compare one FITS file with the reference ``path_b``."""
    from astropy.io import fits

    report = FileReport(Path(path_b).name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-standard keywords of either writer
            with fits.open(path_a, memmap=False) as ha, fits.open(path_b, memmap=False) as hb:
                ignored = {name.upper() for name in tolerances.ignore_hdus}
                hdus_a = {k: h for i, h in enumerate(ha) if (k := _hdu_key(h, i)).split(",")[0] not in ignored}
                hdus_b = {k: h for i, h in enumerate(hb) if (k := _hdu_key(h, i)).split(",")[0] not in ignored}
                report.hdus_only_a = [k for k in hdus_a if k not in hdus_b]
                report.hdus_only_b = [k for k in hdus_b if k not in hdus_a]
                for key in (k for k in hdus_b if k in hdus_a):
                    _compare_hdu(report, key, hdus_a[key], hdus_b[key], tolerances)
    except (OSError, ValueError, TypeError) as exc:
        report.error = f"cannot be compared: {type(exc).__name__}: {exc}"
    return report


def _fits_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    return sorted(p.name for p in folder.glob("*.fits") if p.is_file())


def compare_dirs(dir_a: str | Path, dir_b: str | Path, tolerances: Tolerances = Tolerances(),
                 names: Iterable[str] | None = None) -> CompareReport:
    """Compare every ``*.fits`` file of ``dir_a`` with the same-named file of ``dir_b`` (the reference).

    ``names``: only these file names (default: all in either folder).
    """
    a, b = Path(dir_a), Path(dir_b)
    in_a, in_b = _fits_names(a), _fits_names(b)
    if names is not None:
        wanted = set(names)
        in_a = [n for n in in_a if n in wanted]
        in_b = [n for n in in_b if n in wanted]
    report = CompareReport(a, b, tolerances, [n for n in in_a if n not in in_b], [n for n in in_b if n not in in_a])
    for name in (n for n in in_b if n in in_a):
        report.files.append(compare_files(a / name, b / name, tolerances))
    return report
