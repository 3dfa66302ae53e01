"""Drift: every key a profile sets, compared with what the host has now.

Pure: takes the resolved targets (``profile_resolve.resolve``) and compares with the same
normalisation as ``converge.verify``. A setting the driver does not report (None) is not
drift — it cannot be read, so it cannot be said to differ (the verify rule); a VF that is
missing is drift in every key it should have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vfctl import converge, vfattrs
from vfctl.profile_resolve import Target
from vfctl.vfattrs import KEY_OF as _KEY_OF


def _entry(
    pf: Any, vf: int | None, key: str, want: Any, have: Any, drifted: bool
) -> dict[str, Any]:
    return {
        "pf": pf.address,
        "netdev": pf.netdev,
        "vf": vf,
        "key": key,
        "want": want,
        "have": have,
        "drifted": drifted,
    }


def compare(targets: Sequence[Target], ident: str) -> list[dict[str, Any]]:
    """One entry per profile key: pf, netdev, vf (None for PF keys), key, want, have, drifted.

    ``ident``: the host's identity (``HostModel.host_id``), for ``mac-address: auto``.
    """
    out: list[dict[str, Any]] = []
    for t in targets:
        pf = t.pf
        if t.total_vfs is not None:
            out.append(
                _entry(pf, None, "total-vfs", t.total_vfs, pf.num_vfs, pf.num_vfs != t.total_vfs)
            )
        if t.autoprobe is not None:
            ap = pf.autoprobe
            bad_ap = ap not in (None, t.autoprobe)
            out.append(_entry(pf, None, "drivers-autoprobe", t.autoprobe, ap, bad_ap))
        for w in t.vfs:
            v = pf.vf(w.index)
            for attr, want in converge.want_settings(w, pf, ident).items():
                have: Any = None if v is None else vfattrs.shown(attr, getattr(v.settings, attr))
                bad = v is None or (have is not None and not vfattrs.same(attr, have, want))
                out.append(_entry(pf, w.index, _KEY_OF[attr], want, have, bad))
            drv = converge.want_driver(w)
            if drv is not None:
                have_drv: str | None
                if v is None:
                    have_drv, bad = None, True
                elif drv == converge.DEFAULT_DRIVER:
                    have_drv = v.driver_override or converge.DEFAULT_DRIVER
                    bad = v.driver_override is not None
                else:
                    have_drv, bad = v.driver, v.driver != drv
                out.append(_entry(pf, w.index, "driver", drv, have_drv, bad))
            if "attach" in w.entry:
                want_att = converge.want_attach(w.entry["attach"])
                have_att = None if v is None else converge.current_attach(v)
                bad = have_att is None or any(have_att.get(k) != x for k, x in want_att.items())
                out.append(_entry(pf, w.index, "attach", want_att, have_att, bad))
    return out


def drifted(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["drifted"]]
