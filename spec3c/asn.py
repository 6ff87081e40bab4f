"""Read and write JWST level-3 association (ASN) files.

:func:`read_association` validates an ASN (ALGORITHMS §2.1) and, by default,
its member files, and returns an :class:`Association`.  It never writes.
:func:`write_association` writes a jwst-format ASN (used by the simulator).

Every problem raises :class:`~spec3c.errors.InputError` naming a file:

* the ASN file for problems in its content: JSON, missing or ill-typed fields,
  members outside the association folder, duplicated members, mixed EXP_TYPE;
* the member file for problems with that file: missing, unreadable, not FITS,
  truncated, no EXP_TYPE.

Like the reference only ``products[0]`` is used (a :class:`Spec3cWarning` is
issued when there are more).  Member paths are resolved against the folder of
the *resolved* ASN path (a symlinked ASN resolves to its target's folder, as in
jwst).  By default members must lie in that folder (after following symlinks)
and the product name must be a plain file-name stem; ``allow_outside=True``
(CLI ``--allow-outside-paths``) lifts both rules.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astropy.io import fits

from .errors import InputError, Spec3cWarning
from .naming import fill_product_name

__all__ = [
    "BACKGROUND",
    "SCIENCE",
    "AsnMember",
    "Association",
    "read_association",
    "write_association",
]

SCIENCE = "science"
BACKGROUND = "background"

_ALLOW_HINT = "(pass --allow-outside-paths to permit)"
_FITS_MAGIC = b"SIMPLE"
# Fragments of astropy warnings that mean the file ends early or is corrupt.
_DAMAGE_WORDS = ("truncat", "corrupt", "multiple of 2880", "extra bytes")
_ACID_KIND = {"o": "observation", "c": "mosaic", "a": "discovered"}
_DEGRADED = "No known degraded exposures in association."


@dataclass(frozen=True)
class AsnMember:
    """One member of an association product.

    Attributes
    ----------
    path : Path
        Resolved absolute path of the file.
    expname : str
        The name as written in the ASN.
    exptype : str
        Member type, lower-cased: ``"science"``, ``"background"`` or another
        value (e.g. ``"psf"``), which spec3 ignores.
    exp_type : str
        EXP_TYPE from the primary header; ``""`` when files were not checked,
        for members other than science/background, or when absent from a
        background member.
    instrument : str
        INSTRUME from the primary header (``""`` as for ``exp_type``).
    """

    path: Path
    expname: str
    exptype: str
    exp_type: str = ""
    instrument: str = ""


@dataclass(frozen=True)
class Association:
    """A validated level-3 association (its first product).

    Attributes
    ----------
    path : Path
        Resolved absolute path of the ASN file.
    asn_id : str or None
        Association id (``o066``, ``c1000``, ``a3001``), used in exposure-based
        product names; ``None`` when absent.
    asn_type : str
        ``asn_type`` field (informational; ``""`` when absent).
    program, target : str or None
        ``program`` and ``target`` fields.
    product_name : str
        ``products[0].name``; may hold ``{source_id}`` / ``{slit_name}``.
    members : tuple of AsnMember
        The product's members in ASN order.
    """

    path: Path
    asn_id: str | None
    asn_type: str
    program: str | None
    target: str | None
    product_name: str
    members: tuple[AsnMember, ...]
    pool: str | None = None  # ``asn_pool`` (ASNPOOL of the products)

    @property
    def folder(self) -> Path:
        """Folder member paths are resolved against."""
        return self.path.parent

    @property
    def science(self) -> tuple[AsnMember, ...]:
        """Members with exptype ``science``."""
        return tuple(m for m in self.members if m.exptype == SCIENCE)

    @property
    def background(self) -> tuple[AsnMember, ...]:
        """Members with exptype ``background`` (spec2 x1d files)."""
        return tuple(m for m in self.members if m.exptype == BACKGROUND)

    @property
    def exp_type(self) -> str:
        """EXP_TYPE shared by the science members (``""`` if files were not checked)."""
        science = self.science
        return science[0].exp_type if science else ""


# ----------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------


def read_association(
    path: str | os.PathLike[str],
    *,
    allow_outside: bool = False,
    check_files: bool = True,
) -> Association:
    """Read and validate a level-3 association.

    Parameters
    ----------
    path : path-like
        The ASN JSON file.
    allow_outside : bool
        Accept members outside the ASN folder (absolute paths, ``..``,
        symlinks leading out) and product names with path separators or ``..``.
    check_files : bool
        Open every science and background member: it must be a complete,
        readable FITS file; science members need EXP_TYPE in the primary
        header and must all share one; all members must come from one
        instrument (INSTRUME).

    Returns
    -------
    Association

    Raises
    ------
    InputError
        For any problem, naming the file and the problem.
    """
    given = os.fspath(path)
    data = _load_json(given)
    asn_path = Path(given).expanduser().resolve()
    folder = asn_path.parent
    product = _first_product(given, data)
    name = _product_name(given, product, allow_outside)
    members = [
        AsnMember(path=resolved, expname=expname, exptype=exptype)
        for expname, exptype, resolved in _member_entries(
            given, product, name, folder, allow_outside
        )
    ]
    if not any(m.exptype == SCIENCE for m in members):
        raise InputError(given, f"product {name!r} has no science members")
    if check_files:
        members = [_checked_member(m) for m in members]
        _check_single_instrument(given, members)
        _check_single_exp_type(given, members)
    return Association(
        path=asn_path,
        asn_id=_optional_str(given, data, "asn_id"),
        asn_type=_optional_str(given, data, "asn_type") or "",
        program=_optional_str(given, data, "program"),
        target=_optional_str(given, data, "target"),
        product_name=name,
        members=tuple(members),
        pool=_optional_str(given, data, "asn_pool"),
    )


def _kind(value: object) -> str:
    """Plain-words JSON type of a value."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _load_json(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise InputError(path, "association file does not exist") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, not an association file") from None
    except OSError as exc:
        raise InputError(path, f"association file cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            path, f"not valid JSON: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError(path, "not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(
            path, f"not an association: the top-level JSON value is {_kind(data)}, not an object"
        )
    return data


def _optional_str(path: str, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(path, f"'{key}' must be a string, not {_kind(value)}")
    return value


def _first_product(path: str, data: dict[str, Any]) -> dict[str, Any]:
    if "products" not in data:
        raise InputError(path, "no products (the 'products' field is missing)")
    products = data["products"]
    if not isinstance(products, list):
        raise InputError(path, f"'products' must be a list, not {_kind(products)}")
    if not products:
        raise InputError(path, "no products (the 'products' list is empty)")
    product = products[0]
    if not isinstance(product, dict):
        raise InputError(path, f"products[0] must be an object, not {_kind(product)}")
    if len(products) > 1:
        warnings.warn(
            f"{path}: the association has {len(products)} products; only the first "
            f"({product.get('name')!r}) is processed",
            Spec3cWarning,
            stacklevel=3,
        )
    return product


def _product_name(path: str, product: dict[str, Any], allow_outside: bool) -> str:
    if "name" not in product:
        raise InputError(path, "the product has no 'name'")
    name = product["name"]
    if not isinstance(name, str):
        raise InputError(path, f"the product 'name' must be a string, not {_kind(name)}")
    if not name.strip():
        raise InputError(path, "the product 'name' is empty")
    if any(not ch.isprintable() for ch in name):
        raise InputError(path, f"product name {name!r} contains control characters")
    try:
        fill_product_name(name, lowercase=False)
    except ValueError as exc:
        raise InputError(
            path, f"product name {name!r} is not a valid name template: {exc}"
        ) from None
    separators = {"/", "\\", os.sep}
    if not allow_outside and (any(s in name for s in separators) or ".." in name):
        raise InputError(
            path, f"product name {name!r} contains a path separator or '..' {_ALLOW_HINT}"
        )
    return name


def _member_entries(
    path: str, product: dict[str, Any], name: str, folder: Path, allow_outside: bool
) -> list[tuple[str, str, Path]]:
    """Return ``(expname, exptype, resolved path)`` per member, validated."""
    members = product.get("members")
    if members is None or (isinstance(members, list) and not members):
        raise InputError(path, f"product {name!r} has no members")
    if not isinstance(members, list):
        raise InputError(
            path, f"'members' of product {name!r} must be a list, not {_kind(members)}"
        )
    entries: list[tuple[str, str, Path]] = []
    seen: dict[Path, str] = {}
    for index, member in enumerate(members):
        expname, exptype = _member_fields(path, index, member)
        resolved = _resolve_member(path, folder, expname, allow_outside)
        if resolved in seen:
            raise InputError(
                path, f"member {expname!r} is listed twice (also as {seen[resolved]!r})"
            )
        seen[resolved] = expname
        entries.append((expname, exptype, resolved))
    return entries


def _member_fields(path: str, index: int, member: object) -> tuple[str, str]:
    where = f"members[{index}]"
    if not isinstance(member, dict):
        raise InputError(path, f"{where} must be an object, not {_kind(member)}")
    if "expname" not in member:
        raise InputError(path, f"{where} has no 'expname'")
    expname = member["expname"]
    if not isinstance(expname, str) or not expname.strip():
        raise InputError(path, f"{where} 'expname' must be a non-empty string")
    exptype = member.get("exptype", SCIENCE)
    if not isinstance(exptype, str):
        raise InputError(path, f"{where} ({expname!r}) 'exptype' must be a string")
    return expname, exptype.strip().lower()


def _resolve_member(path: str, folder: Path, expname: str, allow_outside: bool) -> Path:
    relative = Path(expname)
    if relative.is_absolute() and not allow_outside:
        raise InputError(
            path,
            f"member {expname!r} is an absolute path; members must lie in the "
            f"association folder {_ALLOW_HINT}",
        )
    try:
        resolved = (folder / relative).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(path, f"member {expname!r} cannot be resolved: {exc}") from None
    if allow_outside or resolved.is_relative_to(folder):
        return resolved
    lexical = Path(os.path.normpath(folder / relative))
    if lexical.is_relative_to(folder):
        problem = f"member {expname!r} links to {resolved}, outside the association folder"
    else:
        problem = f"member {expname!r} is outside the association folder"
    raise InputError(path, f"{problem} {_ALLOW_HINT}")


def _checked_member(member: AsnMember) -> AsnMember:
    """Check a member's file; return it with ``exp_type`` filled in."""
    if member.exptype not in (SCIENCE, BACKGROUND):
        return member  # spec3 never opens other member types
    path, expname = member.path, member.expname
    if not path.exists():
        raise InputError(path, f"member {expname!r} does not exist (looked in {path.parent})")
    if not path.is_file():
        raise InputError(path, f"member {expname!r} is not a regular file")
    exp_type, instrument = _scan_fits(path, expname)
    if member.exptype == SCIENCE and not exp_type:
        raise InputError(path, f"member {expname!r} has no EXP_TYPE keyword in its primary header")
    return AsnMember(path=path, expname=expname, exptype=member.exptype, exp_type=exp_type,
                     instrument=instrument)


def _header_text(header: fits.Header, key: str) -> str:
    return _value_text(header.get(key, ""))


def _value_text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _complete_primary_header(path: Path) -> dict[str, Any] | None:
    """The primary header's values of a plain FITS file whose headers all parse and whose data
    end where the file ends, read from its headers alone (astropy takes 3 ms per HDU, seconds for
    a MOS file of 600 slits); None for any other file, which astropy scans and names the problem of."""
    from .ingest.fitsraw import Unsupported, primary_header

    try:
        return primary_header(path)
    except (Unsupported, OSError, ValueError):
        return None


def _scan_fits(path: Path, expname: str) -> tuple[str, str]:
    """Read every header of a FITS file, check it is complete; return (EXP_TYPE, INSTRUME)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(len(_FITS_MAGIC))
    except OSError as exc:
        raise InputError(
            path, f"member {expname!r} cannot be read: {exc.strerror or exc}"
        ) from None
    if size == 0:
        raise InputError(path, f"member {expname!r} is empty (0 bytes)")
    primary = _complete_primary_header(path)
    if primary is not None:
        return _value_text(primary.get("EXP_TYPE")), _value_text(primary.get("INSTRUME")).upper()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                extents = _hdu_extents(hdul)
                exp_type = _header_text(hdul[0].header, "EXP_TYPE")
                instrument = _header_text(hdul[0].header, "INSTRUME").upper()
        except (OSError, ValueError, IndexError, KeyError, fits.VerifyError) as exc:
            raise InputError(
                path, f"member {expname!r} is not a readable FITS file: {exc}"
            ) from None
    if magic == _FITS_MAGIC:  # uncompressed: data offsets are file offsets
        for index, label, end in extents:
            if end > size:
                raise InputError(
                    path,
                    f"member {expname!r} is truncated: HDU {index}{label} needs {end} bytes "
                    f"but the file has {size}",
                )
    for warning in caught:
        text = str(warning.message)
        if any(word in text.lower() for word in _DAMAGE_WORDS):
            first_line = " ".join(text.split())
            raise InputError(path, f"member {expname!r} is truncated or corrupt: {first_line}")
    return exp_type, instrument


def _hdu_extents(hdul: fits.HDUList) -> list[tuple[int, str, int]]:
    """``(index, " (EXTNAME)", end byte of padded data)`` for every HDU.

    Iterates the HDUs once: ``HDUList.fileinfo(i)`` re-walks the list for each
    index (63 s instead of 2 s for a 1800-HDU MultiSlit file).
    """
    extents = []
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo() or {}
        start, span = info.get("datLoc"), info.get("datSpan")
        if start is None or span is None:
            continue
        extname = hdu.header.get("EXTNAME")
        label = f" ({extname})" if extname else ""
        extents.append((index, label, int(start) + int(span)))
    return extents


def _check_single_instrument(path: str, members: Sequence[AsnMember]) -> None:
    by_instrument: dict[str, list[str]] = {}
    for member in members:
        if member.exptype in (SCIENCE, BACKGROUND) and member.instrument:  # a file without INSTRUME: unknown
            by_instrument.setdefault(member.instrument, []).append(member.expname)
    if len(by_instrument) > 1:
        listing = ", ".join(f"{name} ({', '.join(names)})" for name, names in by_instrument.items())
        raise InputError(path, f"mixed instruments among the members: {listing}; an association is "
                               "processed by one instrument's pipeline")


def _check_single_exp_type(path: str, members: Sequence[AsnMember]) -> None:
    by_type: dict[str, list[str]] = {}
    for member in members:
        if member.exptype == SCIENCE:
            by_type.setdefault(member.exp_type, []).append(member.expname)
    if len(by_type) > 1:
        listing = ", ".join(f"{t} ({', '.join(names)})" for t, names in by_type.items())
        raise InputError(path, f"mixed EXP_TYPE among science members: {listing}")


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------


def write_association(
    path: str | os.PathLike[str],
    *,
    asn_id: str,
    program: str,
    target: str,
    product_name: str,
    members: Sequence[tuple[str, str]],
    asn_type: str = "spec3",
    asn_rule: str = "candidate_Asn_Lv3SpecAux",
) -> Path:
    """Write a jwst-format level-3 association with one product.

    Parameters
    ----------
    path : path-like
        Output file; replaced atomically if it exists.
    asn_id : str
        Association id (``o066``, ``c1000``, ``a3001``).
    program, target : str
        E.g. ``"01345"``, ``"t001"``.
    product_name : str
        Product name (template), e.g. ``jw01345-o066_{source_id}_nirspec_f170lp-g235m``.
    members : sequence of (expname, exptype)
        File names (normally relative to the ASN folder) and member types.
    asn_type, asn_rule : str
        Informational fields.

    Returns
    -------
    Path
        The written file.
    """
    if not members:
        raise ValueError("an association needs at least one member")
    for expname, exptype in members:
        if not isinstance(expname, str) or not isinstance(exptype, str) or not expname:
            raise ValueError(f"member ({expname!r}, {exptype!r}) must be two non-empty strings")
    candidate = f"[('{asn_id}', '{_ACID_KIND.get(asn_id[:1], 'observation')}')]"
    document = {
        "asn_type": asn_type,
        "asn_rule": asn_rule,
        "version_id": None,
        "code_version": "spec3c",
        "degraded_status": _DEGRADED,
        "program": program,
        "constraints": "none",
        "asn_id": asn_id,
        "target": target,
        "asn_pool": f"jw{program}_spec3c_pool",
        "products": [
            {
                "name": product_name,
                "members": [
                    {
                        "expname": expname,
                        "exptype": exptype,
                        "exposerr": None,
                        "asn_candidate": candidate,
                    }
                    for expname, exptype in members
                ],
            }
        ],
    }
    out = Path(path)
    text = json.dumps(document, indent=4) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or ".")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; an ASN is a shared text file
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
