"""Tests of spec3c.naming against the names the reference pipeline produces.

The expected names are those of the jwst 3.0 regression tests (ALGORITHMS §2.2):
``test_nirspec_mos_spec3``, ``test_nirspec_mos_fs_spec3``, ``test_nirspec_fs_spec3``,
``test_nirspec_ifu_spec3``, ``test_miri_mrs_spec3``, ``test_miri_lrs_slit_spec3``.
"""

from __future__ import annotations

import pytest

from spec3c.naming import (
    exposure_product_filename,
    fill_product_name,
    fs_slit_token,
    product_filename,
    product_name,
    source_token,
    strip_known_suffix,
)

MOS = "NRS_MSASPEC"
FS = "NRS_FIXEDSLIT"

# Product name (template) written by the current association rule for MOS
# (dms_product_name_sources): jw{program}-{acid}_{source_id}_{instrument}_{opt_elem}.
MOS_TEMPLATE = "jw01345-o066_{source_id}_nirspec_f170lp-g235m"


# ----------------------------------------------------------------------------
# source tokens
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_id", "source_name", "token"),
    [
        (4385, "1345_4385", "s000004385"),
        (7380, "1345_7380", "s000007380"),
        (30, "1345_BKG30", "b000000030"),  # background slitlet: 'BKG' in the name
        (31, "BKG31", "b000000031"),
        (-48, "1345_VRT48", "v000000048"),  # virtual slit: negative id
        (-56, None, "v000000056"),
        (0, "x", "s000000000"),
    ],
)
def test_mos_source_tokens(source_id: int, source_name: str | None, token: str) -> None:
    assert source_token(source_id, source_name, mos=True) == token


def test_mos_bkg_wins_over_negative_id() -> None:
    # The background test comes first in the reference; the sign is kept.
    assert source_token(-3, "BKG", mos=True) == "b0000000-3"


def test_bkg_is_case_sensitive() -> None:
    assert source_token(5, "bkg5", mos=True) == "s000000005"


def test_general_source_tokens() -> None:
    assert source_token(1, None) == "s000000001"
    assert source_token(21, "BKG") == "s000000021"  # BKG only matters for MOS


def test_source_token_padding_is_textual() -> None:
    # Reference: f"s{str(source_id):>09s}" -- no truncation, sign kept outside MOS.
    assert source_token(1234567890, None, mos=True) == "s1234567890"
    assert source_token(-5, None) == "s0000000-5"


def test_source_token_requires_an_integer() -> None:
    with pytest.raises(TypeError):
        source_token(1.5, None, mos=True)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# fixed-slit slit token
# ----------------------------------------------------------------------------


def test_fs_slit_token() -> None:
    assert fs_slit_token(["S200A2", "S200A2", "S200A2"]) == "s200a2"
    assert fs_slit_token(["S200A1", "s400a1", "S200A1", "S1600A1"]) == "s200a1-s400a1-s1600a1"
    with pytest.raises(ValueError, match="at least one"):
        fs_slit_token([])


# ----------------------------------------------------------------------------
# format-template fill
# ----------------------------------------------------------------------------


def test_fill_leaves_unknown_fields() -> None:
    assert fill_product_name("a_{source_id}_{slit_name}") == "a_{source_id}_{slit_name}"
    assert fill_product_name("a_{source_id}_{slit_name}", source_id="s1") == "a_s1_{slit_name}"
    assert fill_product_name("a_{x!r:>5}") == "a_{x!r:>5}"


def test_fill_appends_unused_values_sorted() -> None:
    assert fill_product_name("n={name}", name="fred", zeta="z", extra="more") == "n=fred_more_z"


def test_fill_none_values() -> None:
    assert fill_product_name("a{sub}b", sub=None) == "ab"  # in template: empty
    assert fill_product_name("ab", sub=None) == "ab"  # unused: not appended


def test_fill_lowercases_by_default() -> None:
    assert fill_product_name("JW01_{source_id}", source_id="S1") == "jw01_s1"
    assert fill_product_name("JW01_{source_id}", lowercase=False, source_id="S1") == "JW01_S1"


def test_fill_format_spec_and_malformed_template() -> None:
    assert fill_product_name("{n:0>3}", n=7) == "007"
    with pytest.raises(ValueError, match="malformed name template"):
        fill_product_name("a{b")


# ----------------------------------------------------------------------------
# real product names
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["cal", "crf", "s2d", "x1d"])
@pytest.mark.parametrize(
    ("source_id", "source_name", "token"),
    [
        (4385, "1345_4385", "s000004385"),
        (30, "1345_BKG30", "b000000030"),
        (-48, "1345_VRT48", "v000000048"),
    ],
)
def test_mos_real_names(suffix: str, source_id: int, source_name: str, token: str) -> None:
    base = product_name(MOS_TEMPLATE, source_token(source_id, source_name, mos=True))
    assert (
        product_filename(base, suffix) == f"jw01345-o066_{token}_nirspec_f170lp-g235m_{suffix}.fits"
    )


def test_mos_fs_real_name() -> None:
    base = product_name(
        "jw02674-o004_{source_id}_nirspec_f290lp-g395m", source_token(12105, "2674_12105", mos=True)
    )
    assert product_filename(base, "x1d") == "jw02674-o004_s000012105_nirspec_f290lp-g395m_x1d.fits"


@pytest.mark.parametrize(
    ("source_id", "slit"),
    [(1, "S200A2"), (21, "S200A1"), (23, "S400A1"), (24, "S1600A1"), (25, "S200B1")],
)
def test_fs_real_names(source_id: int, slit: str) -> None:
    # The regression-test ASN (nirspec/fs/jw01309-o022_spec3_regtest_asn.json) yields
    # jw01309-o022_s000000001_nirspec_f290lp-g395h-s200a2-allslits_*.fits, i.e. its
    # product name must be "jw01309-o022_{source_id}_nirspec_f290lp-g395h-{slit_name}-allslits"
    # ("-allslits" is the subarray the rule adds after the slit field).  The current
    # rule (dms_product_name_nrsfs_sources) writes
    # "jw{program}-{acid}_{target}-{source_id}_{instrument}_{opt_elem}-{slit_name}{subarray}",
    # which gives "..._t001-s000000001_..." instead: see test_fs_current_rule_template.
    template = "jw01309-o022_{source_id}_nirspec_f290lp-g395h-{slit_name}-allslits"
    base = product_name(template, source_token(source_id, None), fs_slit_token([slit, slit]))
    expected = f"jw01309-o022_s{source_id:09d}_nirspec_f290lp-g395h-{slit.lower()}-allslits"
    assert base == expected
    assert product_filename(base, "x1d") == expected + "_x1d.fits"


def test_fs_current_rule_template() -> None:
    template = "jw01309-o022_t001-{source_id}_nirspec_f290lp-g395h-{slit_name}-allslits"
    base = product_name(template, source_token(1, None), fs_slit_token(["S200A2"]))
    assert base == "jw01309-o022_t001-s000000001_nirspec_f290lp-g395h-s200a2-allslits"


def test_missing_fields_are_appended_like_the_reference() -> None:
    # A template without the placeholders gets the tokens appended (sorted by field name).
    assert product_name("jw01_t001_nirspec", "s000000001") == "jw01_t001_nirspec_s000000001"
    assert product_name("jw01", "s000000001", "s200a2") == "jw01_s200a2_s000000001"


@pytest.mark.parametrize(
    ("asn_name", "suffix", "expected"),
    [
        (
            "jw01249-o005_t001_nirspec_g395h-f290lp",
            "x1d",
            "jw01249-o005_t001_nirspec_g395h-f290lp_x1d.fits",
        ),
        ("jw01024-c1000_t002_miri_ch3-long", "s3d", "jw01024-c1000_t002_miri_ch3-long_s3d.fits"),
        ("jw01530-o005_t004_miri_p750l", "s2d", "jw01530-o005_t004_miri_p750l_s2d.fits"),
    ],
)
def test_single_source_names(asn_name: str, suffix: str, expected: str) -> None:
    assert product_filename(product_name(asn_name), suffix) == expected


def test_product_filename_rejects_bad_parts() -> None:
    with pytest.raises(ValueError):
        product_filename("", "x1d")
    with pytest.raises(ValueError):
        product_filename("base", "a/b")


# ----------------------------------------------------------------------------
# exposure-based names
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["nrs1", "nrs2"])
def test_ifu_crf_real_names(detector: str) -> None:
    name = f"jw01249005001_03101_00001_{detector}_cal.fits"
    assert (
        exposure_product_filename(name, "o005", "crf")
        == f"jw01249005001_03101_00001_{detector}_o005_crf.fits"
    )


def test_exposure_name_uses_only_the_file_name() -> None:
    assert (
        exposure_product_filename("/data/in/jw1_nrs1_cal.fits", "o005", "crf")
        == "jw1_nrs1_o005_crf.fits"
    )


def test_exposure_name_without_known_suffix_or_asn_id() -> None:
    assert (
        exposure_product_filename("jw1_nrs1_foo.fits", "o005", "crf")
        == "jw1_nrs1_foo_o005_crf.fits"
    )
    assert exposure_product_filename("jw1_nrs1_cal.fits", None, "crf") == "jw1_nrs1_crf.fits"


def test_exposure_name_keeps_dash_separator() -> None:
    # stpipe keeps the separator found before the removed suffix.
    assert exposure_product_filename("jw1_nrs1-cal.fits", "o005", "crf") == "jw1_nrs1_o005-crf.fits"


def test_strip_known_suffix() -> None:
    assert strip_known_suffix("a_cal_cal") == ("a_cal", "_")  # one suffix only
    assert strip_known_suffix("a_crfints") == ("a", "_")
    assert strip_known_suffix("a_CAL") == ("a_CAL", "_")  # case-sensitive
    assert strip_known_suffix("_cal") == ("_cal", "_")  # root may not be empty
    assert strip_known_suffix("a_master_background") == ("a", "_")
