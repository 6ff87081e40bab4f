"""Regenerate ``spec3c/data/jwst_spec3_parameters.json`` from the reference pipeline.

    python benchmarks/jwst_parameters.py [--check]

Runs jwst (its own venv, :func:`oracle.jwst_python`) and records, for
``calwebb_spec3`` and each of its steps: the step class, the parameters with
their default values (as ``export_config`` writes them) and the reference
file types the step can override (``override_<reftype>``).  spec3c reads the
file to accept and write jwst ASDF parameter files (:mod:`spec3c.params_asdf`)
and to refuse a parameter it does not implement unless it has its default.
``--check`` compares instead of writing (exit 1 when they differ).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import JWST_VERSION, jwst_python  # noqa: E402

TARGET = Path(__file__).resolve().parents[1] / "spec3c" / "data" / "jwst_spec3_parameters.json"

# Runs inside the jwst venv; prints the JSON document.
_CHILD = """\
import json, sys
import jwst
from jwst.pipeline import Spec3Pipeline

def cls_name(obj):
    return f"{type(obj).__module__}.{type(obj).__name__}"

pipe = Spec3Pipeline()
pars = pipe.get_pars()
out = {"jwst_version": jwst.__version__,
       "pipeline": {"class": cls_name(pipe), "name": type(pipe).__name__,
                    "parameters": {k: v for k, v in pars.items() if k != "steps"}},
       "steps": {}}
for name in pars["steps"]:
    step = getattr(pipe, name)
    alone = type(step)()
    out["steps"][name] = {"class": cls_name(step), "class_name": type(step).__name__,
                          "parameters": alone.get_pars(),
                          "reference_types": sorted(getattr(step, "reference_file_types", []) or [])}
print(json.dumps(out, indent=1, sort_keys=False))
"""


def reference_parameters() -> dict:
    py = jwst_python()
    if py is None:
        raise SystemExit("no jwst venv (SPEC3C_JWST_PYTHON or .venv-jwst)")
    done = subprocess.run([str(py), "-c", _CHILD], capture_output=True, text=True, check=True,
                          env={"STPIPE_DISABLE_CRDS_STEPPARS": "true", "CRDS_MODE": "local", "PATH": "/usr/bin:/bin"})
    data = json.loads(done.stdout)
    if data["jwst_version"] != JWST_VERSION:
        raise SystemExit(f"jwst {data['jwst_version']} in the venv, expected {JWST_VERSION}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args(argv)
    text = json.dumps(reference_parameters(), indent=1) + "\n"
    if args.check:
        same = TARGET.is_file() and json.loads(TARGET.read_text()) == json.loads(text)
        print(f"{TARGET}: {'up to date' if same else 'DIFFERS from jwst'}")
        return 0 if same else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
