"""Adding a mode is a new folder plus one registry line: shown on a copy of the package.

The copy gets a toy mode (NIRSpec bright-object exposures processed as fixed
slits), then runs ``spec3c run`` end to end on simulated data relabelled as
that mode, from the copy.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import spec3c

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TOY_MODE = '''"""A toy mode for the registry test: NIRSpec bright-object exposures processed as fixed slits."""

import dataclasses

from ..slit import NIRSPEC_FS

TOY_BRIGHTOBJ = dataclasses.replace(NIRSPEC_FS, name="toy-brightobj", exp_types=("NRS_BRIGHTOBJ",))
'''

RELABEL = """
import sys, warnings
from stdatamodels.jwst import datamodels
warnings.simplefilter("ignore")
for path in sys.argv[1:]:
    with datamodels.open(path) as model:
        model.meta.exposure.type = "NRS_BRIGHTOBJ"
        for slit in model.slits:
            if slit.meta.hasattr("exposure"):
                slit.meta.exposure.type = "NRS_BRIGHTOBJ"
        model.save(path)
"""


def add_toy_mode(root: Path) -> None:
    """The whole change a new mode needs: its folder, and one import plus one line in the registry."""
    (root / "modes" / "toy").mkdir()
    (root / "modes" / "toy" / "__init__.py").write_text(TOY_MODE)
    registry = root / "modes" / "registry.py"
    text = registry.read_text()
    text = text.replace("from .slitless import MIRI_LRS_SLITLESS\n",
                        "from .slitless import MIRI_LRS_SLITLESS\nfrom .toy import TOY_BRIGHTOBJ\n")
    text = text.replace("MODES: tuple[Mode, ...] = (\n", "MODES: tuple[Mode, ...] = (\n    TOY_BRIGHTOBJ,\n")
    registry.write_text(text)


def changed_files(before: Path, after: Path) -> list[str]:
    """Source files added or changed between two package trees."""
    changed = []
    for path in sorted(after.rglob("*")):
        if path.suffix not in (".py", ".pyx", ".pxd", ".pyi", ".json", ".toml") or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(after)
        old = before / rel
        if not old.exists() or not filecmp.cmp(old, path, shallow=False):
            changed.append(str(rel))
    return changed


def _copy_package(dest: Path) -> Path:
    source = Path(spec3c.__file__).parent
    root = dest / "spec3c"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _run(args: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_a_new_mode_touches_two_files(tmp_path):
    root = _copy_package(tmp_path / "pkg")
    add_toy_mode(root)
    touched = changed_files(Path(spec3c.__file__).parent, root)
    print(f"files a new mode touches: {len(touched)}: {touched}")
    assert touched == ["modes/registry.py", "modes/toy/__init__.py"]


@pytest.mark.slow
def test_the_new_mode_runs_end_to_end(tmp_path):
    pkg = tmp_path / "pkg"
    add_toy_mode(_copy_package(pkg))
    check = _run(["-c", "import spec3c; print(spec3c.__file__)"], tmp_path, pkg)
    assert check.stdout.strip() == str(pkg / "spec3c" / "__init__.py"), check.stderr

    sim = _run(["-m", "spec3c.cli", "simulate", "nirspec-fs", "--output-dir", "sim", "--seed", "2"], tmp_path, pkg)
    assert sim.returncode == 0, sim.stderr
    cal_files = sorted(str(p) for p in (tmp_path / "sim").glob("*_cal.fits"))
    relabel = _run(["-c", RELABEL, *cal_files], tmp_path, pkg)
    assert relabel.returncode == 0, relabel.stderr

    asn = next((tmp_path / "sim").glob("*_asn.json"))
    run = _run(["-m", "spec3c.cli", "run", str(asn), "--output-dir", "out", "--workers", "1",
                f"--steps.extract_1d.override_extract1d={EXAMPLES / 'extract1d_nirspec_fs.json'}"], tmp_path, pkg)
    assert run.returncode == 0, run.stdout + run.stderr
    x1d = sorted(p.name for p in (tmp_path / "out").glob("*_x1d.fits"))
    s2d = sorted(p.name for p in (tmp_path / "out").glob("*_s2d.fits"))
    assert x1d and len(x1d) == len(s2d)
    listing = _run(["-m", "spec3c.cli", "ls", "out/spec3c.store"], tmp_path, pkg)
    assert "NRS_BRIGHTOBJ" in listing.stdout
