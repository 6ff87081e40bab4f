"""Tests of spec3c.asn: the level-3 association reader and writer.

Every fixture is made here in tmp_path: tiny FITS members (primary header with
EXP_TYPE + one small image or table HDU) and hand-written JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from spec3c.asn import AsnMember, Association, read_association, write_association
from spec3c.errors import InputError, Spec3cWarning

MOS = "NRS_MSASPEC"
FS = "NRS_FIXEDSLIT"
PRODUCT = "jw01345-o066_{source_id}_nirspec_f170lp-g235m"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def make_cal(path: Path, exp_type: str | None = MOS) -> Path:
    """A minimal cal-like file: primary header + one 8x8 float32 SCI image."""
    primary = fits.PrimaryHDU()
    if exp_type is not None:
        primary.header["EXP_TYPE"] = exp_type
    sci = fits.ImageHDU(np.arange(64, dtype="f4").reshape(8, 8), name="SCI")
    fits.HDUList([primary, sci]).writeto(path)
    return path


def make_x1d(path: Path, exp_type: str | None = MOS) -> Path:
    """A minimal x1d-like file: primary header + one small table."""
    primary = fits.PrimaryHDU()
    if exp_type is not None:
        primary.header["EXP_TYPE"] = exp_type
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="WAVELENGTH", format="D", array=np.linspace(1.0, 2.0, 5))],
        name="EXTRACT1D",
    )
    fits.HDUList([primary, table]).writeto(path)
    return path


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


def asn_doc(members: list[dict[str, object]], name: object = PRODUCT) -> dict[str, object]:
    return {"asn_id": "o066", "products": [{"name": name, "members": members}]}


def expect_error(call: Callable[[], object], path: Path | str, *fragments: str) -> InputError:
    """Assert ``call`` raises InputError naming ``path`` with each fragment in the problem."""
    with pytest.raises(InputError) as info:
        call()
    err = info.value
    assert err.path == str(path)
    assert str(err).startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in err.problem, err.problem
    return err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path.resolve() / "asn"
    d.mkdir()
    return d


@pytest.fixture
def good_asn(folder: Path) -> Path:
    make_cal(folder / "a_cal.fits")
    make_cal(folder / "b_cal.fits")
    make_x1d(folder / "bkg_x1d.fits", exp_type="NRS_MSASPEC")
    return write_association(
        folder / "jw01345-o066_spec3_asn.json",
        asn_id="o066",
        program="01345",
        target="t001",
        product_name=PRODUCT,
        members=[
            ("a_cal.fits", "science"),
            ("b_cal.fits", "science"),
            ("bkg_x1d.fits", "background"),
        ],
    )


# ----------------------------------------------------------------------------
# valid associations
# ----------------------------------------------------------------------------


def test_round_trip(good_asn: Path, folder: Path) -> None:
    asn = read_association(good_asn)
    assert isinstance(asn, Association)
    assert asn.path == good_asn
    assert asn.folder == folder
    assert asn.asn_id == "o066"
    assert asn.asn_type == "spec3"
    assert asn.program == "01345"
    assert asn.target == "t001"
    assert asn.product_name == PRODUCT
    assert asn.members == (
        AsnMember(folder / "a_cal.fits", "a_cal.fits", "science", MOS),
        AsnMember(folder / "b_cal.fits", "b_cal.fits", "science", MOS),
        AsnMember(folder / "bkg_x1d.fits", "bkg_x1d.fits", "background", MOS),
    )
    assert [m.expname for m in asn.science] == ["a_cal.fits", "b_cal.fits"]
    assert [m.expname for m in asn.background] == ["bkg_x1d.fits"]
    assert asn.exp_type == MOS


def test_written_file_has_jwst_fields(good_asn: Path) -> None:
    doc = json.loads(good_asn.read_text())
    assert list(doc) == [
        "asn_type", "asn_rule", "version_id", "code_version", "degraded_status", "program",
        "constraints", "asn_id", "target", "asn_pool", "products",
    ]  # fmt: skip
    assert doc["asn_rule"] == "candidate_Asn_Lv3SpecAux"
    assert doc["version_id"] is None
    assert doc["code_version"] == "spec3c"
    assert doc["degraded_status"] == "No known degraded exposures in association."
    assert doc["constraints"] == "none"
    assert doc["asn_pool"] == "jw01345_spec3c_pool"
    (product,) = doc["products"]
    assert product["name"] == PRODUCT
    assert product["members"][0] == {
        "expname": "a_cal.fits",
        "exptype": "science",
        "exposerr": None,
        "asn_candidate": "[('o066', 'observation')]",
    }
    assert oct(good_asn.stat().st_mode & 0o777) == oct(0o644)
    assert not [p for p in good_asn.parent.iterdir() if p.name.endswith(".tmp")]


def test_write_association_rejects_bad_members(folder: Path) -> None:
    kwargs = dict(asn_id="o001", program="01000", target="t001", product_name="x")
    with pytest.raises(ValueError, match="at least one member"):
        write_association(folder / "a.json", members=[], **kwargs)
    with pytest.raises(ValueError, match="two non-empty strings"):
        write_association(folder / "a.json", members=[("", "science")], **kwargs)


def test_reader_writes_nothing(good_asn: Path, folder: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    read_association(good_asn)
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_exptype_defaults_to_science_and_is_lower_cased(folder: Path) -> None:
    make_cal(folder / "a.fits")
    make_x1d(folder / "b.fits", exp_type=None)  # background: EXP_TYPE not required
    make_cal(folder / "c.fits")
    path = write_json(
        folder / "asn.json",
        asn_doc(
            [
                {"expname": "a.fits"},
                {"expname": "b.fits", "exptype": "BACKGROUND"},
                {"expname": "c.fits", "exptype": "Science"},
            ]
        ),
    )
    asn = read_association(path)
    assert [m.exptype for m in asn.members] == ["science", "background", "science"]
    assert asn.background[0].exp_type == ""
    assert asn.program is None and asn.target is None and asn.asn_type == ""


def test_missing_asn_id_is_none(folder: Path) -> None:
    make_cal(folder / "a.fits")
    path = write_json(
        folder / "asn.json", {"products": [{"name": "p", "members": [{"expname": "a.fits"}]}]}
    )
    assert read_association(path).asn_id is None


def test_background_exp_type_may_differ(folder: Path) -> None:
    make_cal(folder / "a.fits", exp_type=FS)
    make_x1d(folder / "bkg_x1d.fits", exp_type=MOS)
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "a.fits"}, {"expname": "bkg_x1d.fits", "exptype": "background"}]),
    )
    asn = read_association(path)
    assert asn.exp_type == FS
    assert asn.background[0].exp_type == MOS


def test_other_member_types_are_not_opened(folder: Path) -> None:
    make_cal(folder / "a.fits")
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "a.fits"}, {"expname": "psf_missing.fits", "exptype": "psf"}]),
    )
    asn = read_association(path)
    assert asn.members[1].exptype == "psf"
    assert asn.members[1].exp_type == ""


def test_check_files_false_does_not_open_members(folder: Path) -> None:
    path = write_json(folder / "asn.json", asn_doc([{"expname": "absent_cal.fits"}]))
    asn = read_association(path, check_files=False)
    assert asn.members[0].path == folder / "absent_cal.fits"
    assert asn.exp_type == ""


def test_only_first_product_is_used_with_warning(folder: Path) -> None:
    make_cal(folder / "a.fits")
    doc = asn_doc([{"expname": "a.fits"}], name="first")
    doc["products"].append({"name": "second", "members": [{"expname": "zzz.fits"}]})  # type: ignore[attr-defined]
    path = write_json(folder / "asn.json", doc)
    with pytest.warns(Spec3cWarning, match=r"2 products; only the first \('first'\)"):
        asn = read_association(path)
    assert asn.product_name == "first"


def test_member_in_subfolder_and_dotdot_staying_inside(folder: Path) -> None:
    (folder / "sub").mkdir()
    make_cal(folder / "sub" / "a.fits")
    make_cal(folder / "b.fits")
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "sub/a.fits"}, {"expname": "sub/../b.fits"}]),
    )
    asn = read_association(path)
    assert [m.path for m in asn.members] == [folder / "sub" / "a.fits", folder / "b.fits"]
    assert asn.members[1].expname == "sub/../b.fits"


def test_symlink_inside_folder_is_accepted(folder: Path) -> None:
    make_cal(folder / "real.fits")
    (folder / "link.fits").symlink_to(folder / "real.fits")
    path = write_json(folder / "asn.json", asn_doc([{"expname": "link.fits"}]))
    assert read_association(path).members[0].path == folder / "real.fits"


def test_symlinked_asn_resolves_members_beside_its_target(folder: Path, tmp_path: Path) -> None:
    # Like jwst (ModelContainer resolves the ASN path before taking its folder).
    make_cal(folder / "a.fits")
    target = write_json(folder / "asn.json", asn_doc([{"expname": "a.fits"}]))
    elsewhere = tmp_path.resolve() / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "asn.json").symlink_to(target)
    asn = read_association(elsewhere / "asn.json")
    assert asn.path == target
    assert asn.members[0].path == folder / "a.fits"


# ----------------------------------------------------------------------------
# bad member files
# ----------------------------------------------------------------------------


def test_missing_member(folder: Path) -> None:
    make_cal(folder / "a_cal.fits")
    path = write_json(
        folder / "asn.json", asn_doc([{"expname": "a_cal.fits"}, {"expname": "x_cal.fits"}])
    )
    err = expect_error(lambda: read_association(path), folder / "x_cal.fits")
    assert err.problem == f"member 'x_cal.fits' does not exist (looked in {folder})"


def test_member_is_a_directory(folder: Path) -> None:
    (folder / "d.fits").mkdir()
    path = write_json(folder / "asn.json", asn_doc([{"expname": "d.fits"}]))
    expect_error(
        lambda: read_association(path), folder / "d.fits", "member 'd.fits' is not a regular file"
    )


def test_garbage_member(folder: Path) -> None:
    (folder / "g_cal.fits").write_bytes(b"this is not a FITS file\x00\xff" * 200)
    path = write_json(folder / "asn.json", asn_doc([{"expname": "g_cal.fits"}]))
    expect_error(
        lambda: read_association(path),
        folder / "g_cal.fits",
        "member 'g_cal.fits' is not a readable FITS file",
    )


def test_empty_member(folder: Path) -> None:
    (folder / "e_cal.fits").write_bytes(b"")
    path = write_json(folder / "asn.json", asn_doc([{"expname": "e_cal.fits"}]))
    expect_error(
        lambda: read_association(path),
        folder / "e_cal.fits",
        "member 'e_cal.fits' is empty (0 bytes)",
    )


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def test_truncated_member_in_data(folder: Path) -> None:
    member = make_cal(folder / "t_cal.fits")
    assert member.stat().st_size == 3 * 2880  # primary header, SCI header, SCI data
    _truncate(member, 2 * 2880 + 100)
    path = write_json(folder / "asn.json", asn_doc([{"expname": "t_cal.fits"}]))
    err = expect_error(lambda: read_association(path), member)
    assert err.problem == (
        f"member 't_cal.fits' is truncated: HDU 1 (SCI) needs {3 * 2880} bytes "
        f"but the file has {2 * 2880 + 100}"
    )


def test_truncated_member_in_padding(folder: Path) -> None:
    member = make_cal(folder / "t_cal.fits")
    _truncate(member, 3 * 2880 - 1)  # all data present, last block short
    path = write_json(folder / "asn.json", asn_doc([{"expname": "t_cal.fits"}]))
    expect_error(
        lambda: read_association(path), member, "is truncated: HDU 1 (SCI) needs 8640 bytes"
    )


def test_truncated_member_in_extension_header(folder: Path) -> None:
    member = make_cal(folder / "t_cal.fits")
    _truncate(member, 2880 + 100)  # cut inside the SCI header
    path = write_json(folder / "asn.json", asn_doc([{"expname": "t_cal.fits"}]))
    expect_error(
        lambda: read_association(path), member, "member 't_cal.fits' is truncated or corrupt"
    )


def test_truncated_background_member(folder: Path) -> None:
    make_cal(folder / "a_cal.fits")
    bkg = make_x1d(folder / "bkg_x1d.fits")
    _truncate(bkg, bkg.stat().st_size - 2000)
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "a_cal.fits"}, {"expname": "bkg_x1d.fits", "exptype": "background"}]),
    )
    expect_error(lambda: read_association(path), bkg, "member 'bkg_x1d.fits' is truncated")


def test_science_member_without_exp_type(folder: Path) -> None:
    make_cal(folder / "n_cal.fits", exp_type=None)
    path = write_json(folder / "asn.json", asn_doc([{"expname": "n_cal.fits"}]))
    expect_error(
        lambda: read_association(path),
        folder / "n_cal.fits",
        "member 'n_cal.fits' has no EXP_TYPE keyword in its primary header",
    )


def test_mixed_exp_types(folder: Path) -> None:
    make_cal(folder / "a_cal.fits", MOS)
    make_cal(folder / "b_cal.fits", FS)
    make_cal(folder / "c_cal.fits", MOS)
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "a_cal.fits"}, {"expname": "b_cal.fits"}, {"expname": "c_cal.fits"}]),
    )
    err = expect_error(lambda: read_association(path), path)
    assert err.problem == (
        "mixed EXP_TYPE among science members: "
        "NRS_MSASPEC (a_cal.fits, c_cal.fits), NRS_FIXEDSLIT (b_cal.fits)"
    )


# ----------------------------------------------------------------------------
# bad JSON
# ----------------------------------------------------------------------------


def test_asn_does_not_exist(folder: Path) -> None:
    path = folder / "nope.json"
    expect_error(lambda: read_association(path), path, "association file does not exist")


def test_not_json(folder: Path) -> None:
    path = folder / "asn.json"
    path.write_text("this is not json")
    err = expect_error(lambda: read_association(path), path)
    assert err.problem == "not valid JSON: Expecting value at line 1 column 1"


def test_not_utf8(folder: Path) -> None:
    path = folder / "asn.json"
    path.write_bytes(b'{"products": "\xff"}')
    expect_error(lambda: read_association(path), path, "not valid JSON: not UTF-8 text")


def test_top_level_not_object(folder: Path) -> None:
    path = write_json(folder / "asn.json", [1, 2])
    expect_error(
        lambda: read_association(path), path, "top-level JSON value is a list, not an object"
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"asn_id": "o001"}, "no products (the 'products' field is missing)"),
        ({"products": []}, "no products (the 'products' list is empty)"),
        ({"products": {"name": "x"}}, "'products' must be a list, not an object"),
        ({"products": ["x"]}, "products[0] must be an object, not a string"),
        ({"products": [{"members": [{"expname": "a.fits"}]}]}, "the product has no 'name'"),
        (
            {"products": [{"name": 5, "members": []}]},
            "the product 'name' must be a string, not a number",
        ),
        ({"products": [{"name": " ", "members": []}]}, "the product 'name' is empty"),
        ({"products": [{"name": "p"}]}, "product 'p' has no members"),
        ({"products": [{"name": "p", "members": []}]}, "product 'p' has no members"),
        ({"products": [{"name": "p", "members": {}}]}, "'members' of product 'p' must be a list"),
        ({"products": [{"name": "p", "members": ["a.fits"]}]}, "members[0] must be an object"),
        (
            {"products": [{"name": "p", "members": [{"exptype": "science"}]}]},
            "members[0] has no 'expname'",
        ),
        (
            {"products": [{"name": "p", "members": [{"expname": ""}]}]},
            "'expname' must be a non-empty string",
        ),
        (
            {"products": [{"name": "p", "members": [{"expname": "a.fits", "exptype": 1}]}]},
            "members[0] ('a.fits') 'exptype' must be a string",
        ),
        (
            {
                "products": [
                    {"name": "p", "members": [{"expname": "a.fits", "exptype": "background"}]}
                ]
            },
            "product 'p' has no science members",
        ),
        (
            {"program": 1345, "products": [{"name": "p", "members": [{"expname": "a.fits"}]}]},
            "'program' must be a string",
        ),
        (
            {"products": [{"name": "p{", "members": [{"expname": "a.fits"}]}]},
            "is not a valid name template",
        ),
        (
            {"products": [{"name": "p\nq", "members": [{"expname": "a.fits"}]}]},
            "contains control characters",
        ),
    ],
)
def test_bad_structure(folder: Path, document: object, problem: str) -> None:
    make_cal(folder / "a.fits")
    path = write_json(folder / "asn.json", document)
    expect_error(lambda: read_association(path), path, problem)


# ----------------------------------------------------------------------------
# paths leaving the association folder
# ----------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A valid cal file next to (not inside) the association folder."""
    return make_cal(tmp_path.resolve() / "x.fits")


def test_member_escaping_with_dotdot(folder: Path, outside: Path) -> None:
    path = write_json(folder / "asn.json", asn_doc([{"expname": "../x.fits"}]))
    err = expect_error(lambda: read_association(path), path)
    assert err.problem == (
        "member '../x.fits' is outside the association folder (pass --allow-outside-paths to permit)"
    )
    assert read_association(path, allow_outside=True).members[0].path == outside


def test_member_absolute_path(folder: Path, outside: Path) -> None:
    path = write_json(folder / "asn.json", asn_doc([{"expname": str(outside)}]))
    expect_error(
        lambda: read_association(path),
        path,
        f"member '{outside}' is an absolute path",
        "--allow-outside-paths",
    )
    assert read_association(path, allow_outside=True).members[0].path == outside


def test_absolute_path_inside_folder_is_still_refused(folder: Path) -> None:
    member = make_cal(folder / "a.fits")
    path = write_json(folder / "asn.json", asn_doc([{"expname": str(member)}]))
    expect_error(lambda: read_association(path), path, "is an absolute path")


def test_member_symlink_escaping(folder: Path, outside: Path) -> None:
    (folder / "link.fits").symlink_to(outside)
    path = write_json(folder / "asn.json", asn_doc([{"expname": "link.fits"}]))
    err = expect_error(lambda: read_association(path), path)
    assert err.problem == (
        f"member 'link.fits' links to {outside}, outside the association folder "
        "(pass --allow-outside-paths to permit)"
    )
    assert read_association(path, allow_outside=True).members[0].path == outside


def test_member_through_symlinked_subfolder_escaping(folder: Path, outside: Path) -> None:
    (folder / "sub").symlink_to(outside.parent, target_is_directory=True)
    path = write_json(folder / "asn.json", asn_doc([{"expname": "sub/x.fits"}]))
    expect_error(lambda: read_association(path), path, "links to", "outside the association folder")


@pytest.mark.parametrize("name", ["sub/jw01345-o066_{source_id}", "../jw01345", "a..b", "x\\y"])
def test_product_name_with_path_parts(folder: Path, name: str) -> None:
    make_cal(folder / "a.fits")
    path = write_json(folder / "asn.json", asn_doc([{"expname": "a.fits"}], name=name))
    expect_error(
        lambda: read_association(path),
        path,
        f"product name {name!r} contains a path separator or '..'",
        "--allow-outside-paths",
    )
    assert read_association(path, allow_outside=True).product_name == name


# ----------------------------------------------------------------------------
# duplicates
# ----------------------------------------------------------------------------


def test_duplicate_member(folder: Path) -> None:
    make_cal(folder / "a_cal.fits")
    path = write_json(
        folder / "asn.json", asn_doc([{"expname": "a_cal.fits"}, {"expname": "a_cal.fits"}])
    )
    err = expect_error(lambda: read_association(path), path)
    assert err.problem == "member 'a_cal.fits' is listed twice (also as 'a_cal.fits')"


def test_duplicate_member_under_another_spelling(folder: Path) -> None:
    make_cal(folder / "a_cal.fits")
    path = write_json(
        folder / "asn.json",
        asn_doc([{"expname": "a_cal.fits"}, {"expname": "./a_cal.fits", "exptype": "background"}]),
    )
    expect_error(
        lambda: read_association(path),
        path,
        "member './a_cal.fits' is listed twice (also as 'a_cal.fits')",
    )


def test_duplicate_through_symlink(folder: Path) -> None:
    make_cal(folder / "a_cal.fits")
    os.symlink("a_cal.fits", folder / "alias.fits")
    path = write_json(
        folder / "asn.json", asn_doc([{"expname": "a_cal.fits"}, {"expname": "alias.fits"}])
    )
    expect_error(lambda: read_association(path), path, "member 'alias.fits' is listed twice")


def test_complete_members_are_scanned_from_their_headers_alone(folder: Path, monkeypatch) -> None:
    """A complete plain FITS member is checked and typed from its raw headers (astropy's scan
    costs 3 ms per HDU): the same EXP_TYPE and INSTRUME, without astropy."""
    import spec3c.asn as asn_module

    cal = make_cal(folder / "a_cal.fits")
    with fits.open(cal, mode="update") as hdul:
        hdul[0].header["INSTRUME"] = "nirspec "
    path = write_json(folder / "asn.json", asn_doc([{"expname": "a_cal.fits"}]))
    expected = read_association(path).members[0]
    monkeypatch.setattr(asn_module.fits, "open", lambda *a, **k: pytest.fail("astropy scanned a complete file"))
    member = read_association(path).members[0]
    assert (member.exp_type, member.instrument) == (expected.exp_type, expected.instrument) == (MOS, "NIRSPEC")


@pytest.mark.parametrize("damage", ["truncated data", "truncated padding", "extra block", "extra bytes", "not fits"])
def test_raw_header_scan_leaves_incomplete_files_to_astropy(folder: Path, damage: str) -> None:
    from spec3c.ingest.fitsraw import Unsupported, primary_header

    member = make_cal(folder / "d_cal.fits")
    raw = member.read_bytes()
    assert primary_header(member)["EXP_TYPE"] == MOS
    damaged = {"truncated data": raw[:2 * 2880 + 100], "truncated padding": raw[:-1],
               "extra block": raw + b"\0" * 2880, "extra bytes": raw + b"x", "not fits": b"x" + raw}[damage]
    member.write_bytes(damaged)
    with pytest.raises(Unsupported):
        primary_header(member)
