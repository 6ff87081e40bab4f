"""What cube_build needs to know about an IFU instrument: its bands, how they group into
cubes and how the cubes are named (jwst 3.0.0 ``cube_build.CubeData``, ``file_table``,
``IFUCubeData.define_cubename_suffix``), ALGORITHMS.md §11.1.

A band is ``(channel, subchannel)`` for MIRI MRS and ``(grating, filter)`` for
NIRSpec IFU, lower case.  Everything here is a fact of the instrument;
:mod:`spec3c.steps.cube_build` asks the mode's :class:`IfuTraits` and never
names an instrument itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import Spec3cError
from .cubepar import BandKey
from .frames import instrument_table

__all__ = ["MIRI_TRAITS", "NIRSPEC_TRAITS", "IfuTraits", "parse_choice"]



def parse_choice(text: str) -> list[str]:
    """A cube_build band choice (``all``, ``1``, ``1,2``, ``['short', 'long']``) as lower-case values."""
    values = [v.strip().strip("[]'\" ").lower() for v in str(text).split(",")]
    values = [v for v in values if v]
    return values or ["all"]


@dataclass(frozen=True)
class IfuTraits:
    """Band and naming rules of one IFU instrument.

    Attributes
    ----------
    instrument : str
        ``MIRI`` or ``NIRSPEC`` (the CUBEPAR model and the product metadata).
    band_order : tuple of BandKey
        Every band in the order the reference builds its cubes.
    group_by : mapping of output_type to "band" / "par1" / "none"
        How bands group into cubes: one per band, one per first band element
        (MIRI channel), or no cube for that output type.
    per_channel : bool
        MIRI: a file holds two channels side by side; the marker metadata
        (footprint, rotation, column ranges) is per channel.
    spectral_tears : bool
        Wipe the reference's "spectral tear" planes (MIRI).
    slice_fov : bool
        NIRSpec slice-line field-of-view DQ flags (else none, as the reference's MIRI code).
    internal_cal : bool
        ``coord_system=internal_cal`` is allowed (NIRSpec only).
    across_slice_axis : int
        Frame axis across the slices (perpendicular to the dispersion): MIRI 1
        (x), NIRSpec 0 (y); outlier_detection compares neighbours along it.
    point_background_pathloss : bool
        master_background scales a point source's background by
        ``pathloss_uniform/pathloss_point`` (NIRSpec, ``correct_nrs_ifu_bkg``).
    """

    instrument: str
    band_order: tuple[BandKey, ...]
    group_by: dict[str, str]
    per_channel: bool
    spectral_tears: bool
    slice_fov: bool
    internal_cal: bool
    across_slice_axis: int = 1
    point_background_pathloss: bool = False

    def region(self, band: BandKey) -> str:
        """Key of a band's entries in the exposure's ``ifu`` metadata."""
        return band[0] if self.per_channel else "all"

    def select(self, present: Sequence[BandKey], first: str, second: str) -> list[BandKey]:
        """The bands of ``present`` to build, in the reference's order.

        ``first``/``second``: the ``channel``/``band`` (MIRI) or ``grating``/``filter``
        (NIRSpec) parameters.  (Choosing bands does not change ``output_type``: in
        jwst 3.0.0 the step's ``output_type`` overwrites the "user" type its choice sets.)
        """
        want1, want2 = parse_choice(first), parse_choice(second)
        all1, all2 = want1 == ["all"], want2 == ["all"]
        if not self.per_channel and all1 != all2:
            raise Spec3cError("cube_build: set both grating and filter, or neither "
                              f"(grating={first!r}, filter={second!r})")
        chosen = [b for b in self.band_order if b in set(present)
                  and (all1 or b[0] in want1) and (all2 or b[1] in want2)]
        if not chosen:
            names = ("channel", "band") if self.per_channel else ("grating", "filter")
            raise Spec3cError(f"cube_build: the data cover no band with {names[0]}={first!r} and {names[1]}={second!r} "
                              f"(bands present: {', '.join('/'.join(b) for b in present)})")
        return chosen

    def groups(self, bands: Sequence[BandKey], output_type: str) -> list[list[BandKey]]:
        """The cubes to build: lists of bands."""
        rule = "one" if output_type == "multi" else self.group_by.get(output_type, "none")
        if rule == "one":
            return [list(bands)]
        if rule == "band":
            return [[b] for b in bands]
        if rule == "par1":
            return [[b for b in bands if b[0] == key] for key in sorted({b[0] for b in bands})]
        return []

    def cube_name(self, base: str, bands: Sequence[BandKey], internal: bool = False) -> str:
        """Product base name of a cube: the association's name plus the cube's bands."""
        tail = "_internal" if internal else ""
        if self.per_channel:
            channels = list(dict.fromkeys(b[0] for b in bands))
            subs = sorted({b[1] for b in bands})[::-1]
            return f"{base}_ch{'-'.join(channels)}-{''.join(subs)}{tail}"
        last = base[base.rfind("_") + 1:]
        if last in instrument_table()["nirspec"]["grating_suffixes"]:
            base = base[: base.rfind("_")]
        return f"{base}_{'-'.join(f'{g}-{f}' for g, f in bands).lower()}{tail}"

    def table_name(self, bands: Sequence[BandKey]) -> str:
        """The CUBEPAR wavelength table of a non-linear cube (NIRSpec: the last band's resolution)."""
        if self.per_channel:
            return "multichannel"
        return str(instrument_table()["nirspec"]["resolution"][bands[-1][0]])

    def sky_footprint_from_s_region(self, bands: Sequence[BandKey], output_type: str) -> bool:
        """Whether the reference may take a file's footprint from its S_REGION for this cube (MIRI:
        not for band/channel cubes holding channel 1 or 3, whose FOV is smaller on the detector)."""
        if not self.per_channel or output_type == "multi":
            return True
        return not any(b[0] in ("1", "3") for b in bands)


def _miri_bands() -> tuple[BandKey, ...]:
    table = instrument_table()["miri"]
    return tuple((c, s) for c in table["channels"] for s in table["subchannels"])


def _nirspec_bands() -> tuple[BandKey, ...]:
    return tuple((g, f) for g, f in instrument_table()["nirspec"]["bands"])


MIRI_TRAITS = IfuTraits(
    instrument="MIRI", band_order=_miri_bands(),
    group_by={"band": "band", "channel": "par1"},
    per_channel=True, spectral_tears=True, slice_fov=False, internal_cal=False,
)

NIRSPEC_TRAITS = IfuTraits(
    instrument="NIRSPEC", band_order=_nirspec_bands(),
    group_by={"band": "band", "grating": "band"},
    per_channel=False, spectral_tears=False, slice_fov=True, internal_cal=True, across_slice_axis=0,
    point_background_pathloss=True,
)
