"""An IFU source's products written in parts by this process and a spawned helper
(:func:`spec3c.parallel.share_with_helper`): the same files as one process writes, every part
written once, and the helper's failures handled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.parallel import share_with_helper
from spec3c.products import export as export_module
from spec3c.simulate import SimOptions, simulate
from spec3c.simulate.miri.reffiles import reference_file_paths

#: keywords a second export of the same computation writes differently
_VARYING = {"DATE", "CHECKSUM", "DATASUM"}


def _pid_of_part(item: str, k: int) -> tuple[int, int]:
    return k, os.getpid()


def _fails_on(item: str, k: int) -> int:
    if k == int(item):
        raise ValueError(f"part {k} failed")
    return k


def _helper_dies(item: str, parent: int, k: int) -> tuple[int, int]:
    if os.getpid() != parent:
        os._exit(3)  # the helper process dies (killed, out of memory)
    return k, os.getpid()


def test_parts_are_shared_in_order_and_run_once():
    results = share_with_helper(_pid_of_part, "x", [(k,) for k in range(12)])
    assert [k for k, _ in results] == list(range(12))
    here = os.getpid()
    owners = ["here" if pid == here else "helper" for _, pid in results]
    # this process takes parts from the back, the helper from the front, until they meet
    assert owners == sorted(owners, key=lambda o: o == "here")
    assert owners[-1] == "here"


def test_a_failing_part_raises_and_a_dead_helper_leaves_its_parts_to_this_process():
    with pytest.raises(ValueError, match="part 0 failed"):
        share_with_helper(_fails_on, "0", [(k,) for k in range(4)])
    here = os.getpid()
    assert [k for k, _ in share_with_helper(_helper_dies, "x", [(here, k) for k in range(6)])] == list(range(6))
    assert share_with_helper(_pid_of_part, "x", [(0,)]) == [(0, here)]  # one part: no helper


def _cards(hdu) -> list[tuple]:
    return [(c.keyword, c.value, c.comment) for c in hdu.header.cards if c.keyword not in _VARYING]


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.glob("*.fits"))
    assert names == sorted(p.name for p in b.glob("*.fits")) and names
    for name in names:
        with fits.open(a / name) as ha, fits.open(b / name) as hb:
            assert [h.name for h in ha] == [h.name for h in hb]
            for x, y in zip(ha, hb, strict=True):
                if x.name == "ASDF":
                    continue
                assert _cards(x) == _cards(y), (name, x.name)
                if isinstance(x, fits.BinTableHDU):
                    assert x.data.tobytes() == y.data.tobytes(), (name, x.name)
                elif x.data is not None:
                    assert np.array_equal(x.data, y.data, equal_nan=True), (name, x.name)


def test_run_and_export_write_an_ifu_source_in_parts_as_one_process_would(tmp_path, monkeypatch):
    sim = simulate("miri-mrs", tmp_path / "in", SimOptions(seed=8, n_exposures=2, channels=(1, 2), bands=("SHORT",)))
    monkeypatch.setenv("SPEC3C_INLINE_BYTES", "0")  # keep two workers for this small association
    parts: list[int] = []
    real = export_module._export_in_parts
    monkeypatch.setattr(export_module, "_export_in_parts",
                        lambda *a: parts.append(len(a[4])) or real(*a))
    args = ["run", str(sim.asn_path), "-o", str(tmp_path / "run"), "--workers", "2"]
    for step, params in reference_file_paths(sim.asn_path).jwst_overrides().items():
        args += [f"--steps.{step}.{k}={v}" for k, v in params.items()]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert parts == [2 + 2 + 2]  # the crf of the 2 cal files (channels 1 and 2 share a detector), 2 cubes' s3d and x1d
    one = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "spec3c.store"), "-o", str(tmp_path / "one"),
                                    "--workers", "1"], catch_exceptions=False)
    assert one.exit_code == 0, one.output
    _same_files(tmp_path / "run", tmp_path / "one")
    # spec3c export with a pool of two: the parts are the pool's jobs
    two = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "spec3c.store"), "-o", str(tmp_path / "two"),
                                    "--workers", "2"], catch_exceptions=False)
    assert two.exit_code == 0, two.output
    assert parts == [6, 6]
    _same_files(tmp_path / "two", tmp_path / "one")
    # every part's files are in the folder's manifest: exporting again leaves them all alone
    again = CliRunner().invoke(main, ["export", str(tmp_path / "run" / "spec3c.store"), "-o", str(tmp_path / "run"),
                                      "--workers", "1"], catch_exceptions=False)
    assert again.exit_code == 0 and "wrote 0 products" in again.output and "(6 unchanged)" in again.output
