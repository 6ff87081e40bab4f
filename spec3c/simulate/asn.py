"""The spec3 association document both simulators write (NIRSpec and MIRI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["asn_document"]


def asn_document(rule: str, cfg: dict[str, Any], product: str, science: Sequence[str],
                 background: Sequence[str] = ()) -> dict[str, Any]:
    """A spec3 level-3 association: science members, then background members (same folder)."""
    acid = f"o{cfg['observation']}"
    candidate = f"[('{acid}', 'observation')]"
    members = [{"expname": nm, "exptype": role, "exposerr": "null", "asn_candidate": candidate}
               for role, names in (("science", science), ("background", background)) for nm in names]
    return {
        "asn_type": "spec3",
        "asn_rule": rule,
        "asn_id": acid,
        "asn_pool": f"jw{cfg['program']}_00001_pool",
        "program": cfg["program"],
        "target": cfg["target"],
        "version_id": None,
        "code_version": "spec3c-simulate",
        "degraded_status": "No known degraded exposures in association.",
        "constraints": "simulated",
        "products": [{"name": product, "members": members}],
    }
