"""The ``netlink.vf`` op: the only writer of VF settings (planned by ``vfctl.vfsettings``).

It writes one group of settings through the PF and reads them back, because some drivers
accept a setting and silently ignore it. Name and params are the journal's: journals of
earlier versions replay unchanged.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

from vfctl import vfattrs
from vfctl.errors import HostError
from vfctl.host import netlink
from vfctl.model import VFSettings
from vfctl.plan import Context, op


@op("netlink.vf")
def _op_vf(ctx: Context, p: Mapping[str, Any]) -> None:
    settings: dict[str, Any] = dict(p["settings"])
    names = ", ".join(vfattrs.LABEL.get(k, k) for k in settings)
    try:
        netlink.set_vf(ctx.host, p["pf"], int(p["vf"]), settings)
    except OSError as e:
        if p.get("undo") and e.errno == errno.EOPNOTSUPP:
            return  # the driver cannot set this at all: the forward step changed nothing
        why = {errno.EOPNOTSUPP: "not supported by the driver", errno.EINVAL: "rejected (EINVAL)"}
        reason = why.get(e.errno or 0, e.strerror or str(e))
        raise HostError(
            f"{p['pf']} VF {p['vf']}: {names}: {reason} (driver {p.get('driver') or '?'})"
        ) from None
    if p.get("undo"):
        return
    got = netlink.vf_info(ctx.host, p["pf"])
    cur = got[int(p["vf"])] if int(p["vf"]) < len(got) else VFSettings()
    for k, v in settings.items():
        have = getattr(cur, k)
        if k == "mac" and isinstance(have, str):
            have = have.lower()
        if have is not None and not vfattrs.same(k, have, v):
            raise HostError(
                f"{p['pf']} VF {p['vf']}: driver {p.get('driver') or '?'} accepted "
                f"{vfattrs.LABEL.get(k, k)}={v} but reports {have}"
            )
