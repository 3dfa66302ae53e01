"""Host operations as plans: numvfs, autoprobe, driver binding — plus the ops that run them.

Planning functions are pure (model in, actions out) apart from the in-use probes, which read
the host through ``Host``/netlink; the ``@op`` functions are the only writers.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfctl import vfattrs
from vfctl.errors import HostError, RefusedError, UsageError
from vfctl.host import netlink
from vfctl.host.sysfs import PCI_DEVICES, PCI_DRIVERS, Host
from vfctl.model import PF, VF, HostModel
from vfctl.plan import Action, Context, op

VFIO = "vfio-pci"
STUB_DRIVERS = ("vfio-pci", "pci-stub")


def default_timeout(n: int) -> float:
    """Some NICs take about a second per VF to enable; scale with the count."""
    return 10.0 + 1.0 * n


# ---------------------------------------------------------------- in-use and safety probes


@dataclass(frozen=True)
class User:
    address: str
    what: str

    def __str__(self) -> str:
        return f"{self.address}: {self.what}"


def vfio_holders(host: Host, vf: VF) -> list[str]:
    if vf.driver != VFIO or vf.iommu_group is None:
        return []
    vm = vf.held_by.vm if vf.held_by is not None else None
    return [
        f"pid {pid} ({comm}{', VM ' + vm if vm and vf.held_by and vf.held_by.pid == pid else ''})"
        for pid, comm in host.fd_holders(f"dev/vfio/{vf.iommu_group}")
    ]


def pool_user(vf: VF) -> tuple[str, bool] | None:
    """(why, hard) when the VF is an entry of a PVE pool; hard: not vfctl's to move, even --force.

    A pool's entries are PVE's to hand out at VM start; only a pool vfctl created may be
    overridden with --force. At boot (no VM manager asked) pools are unknown: only the host's
    own facts (held_by, netdevs) count then.
    """
    if vf.pool is None:
        return None
    why = f"entry of {vf.pool.describe()}"
    if not vf.pool.managed:
        why += "; vfctl does not change a mapping it did not create: remove the entry in PVE first"
    return why, not vf.pool.managed


def vf_users(host: Host, pf: PF) -> tuple[list[User], list[User]]:
    """(hard, soft) users of a PF's VFs: hard ones block even --force (the kernel would hang)."""
    hard: list[User] = []
    soft: list[User] = []
    for vf in pf.vfs:
        for h in vfio_holders(host, vf):
            hard.append(User(vf.address, f"/dev/vfio/{vf.iommu_group} held open by {h}"))
        pu = pool_user(vf)
        if pu is not None:
            (hard if pu[1] else soft).append(User(vf.address, pu[0]))
        if vf.held_by is not None and vf.held_by.pid is None:
            soft.append(User(vf.address, f"reserved by {vf.held_by.describe()}"))
        for a in vf.attached_to:
            soft.append(User(vf.address, f"attached to {a.backend} VM {a.vm} ({a.element})"))
        if vf.netdev:
            li = netlink.link_info(host, vf.netdev)
            if li.up and li.addresses:
                soft.append(
                    User(vf.address, f"netdev {vf.netdev} is up with {', '.join(li.addresses)}")
                )
    return hard, soft


def host_nic_reason(host: Host, netdevs: Sequence[str]) -> str | None:
    """Why these netdevs carry the host's connectivity (default route through them), or None."""
    for nd in netdevs:
        for ifname in netlink.upper_chain(host, nd):
            if netlink.link_info(host, ifname).default_route:
                via = f" (via {ifname})" if ifname != nd else ""
                return f"{nd} carries the host's default route{via}"
    return None


def unbind_blockers(host: Host, netdevs: Sequence[str]) -> list[str]:
    """Reasons not to take these netdevs away from the host: addresses, routes, masters."""
    out = []
    for nd in netdevs:
        li = netlink.link_info(host, nd)
        if li.addresses:
            out.append(f"{nd} has addresses {', '.join(li.addresses)}")
        if li.default_route:
            out.append(f"{nd} carries the default route")
        if li.master:
            out.append(f"{nd} is a member of {li.master}")
    return out


def check_host_nic(host: Host, pf: PF, force_host_nic: bool) -> None:
    reason = host_nic_reason(host, pf.netdevs)
    if reason and not force_host_nic:
        raise RefusedError(
            f"{pf.address}: {reason}; changing its VFs may reset the link and cut the host off "
            "(--force-host-nic to do it anyway)",
            override="--force-host-nic",
        )


# ---------------------------------------------------------------- planning


def _pfdir(pf: PF) -> str:
    return f"{PCI_DEVICES}/{pf.address}"


def plan_autoprobe(pf: PF, value: bool | None) -> list[Action]:
    if value is None or pf.autoprobe is None or pf.autoprobe == value:
        return []
    path = f"{_pfdir(pf)}/sriov_drivers_autoprobe"
    old, new = "1" if pf.autoprobe else "0", "1" if value else "0"
    return [
        Action(
            "sysfs.write",
            f"{pf.address} sriov_drivers_autoprobe",
            f"{old} -> {new}",
            {"path": path, "value": new},
            Action(
                "sysfs.write",
                f"{pf.address} sriov_drivers_autoprobe",
                f"{new} -> {old}",
                {"path": path, "value": old},
            ),
        )
    ]


def plan_numvfs(
    host: Host,
    pf: PF,
    n: int,
    *,
    force: bool = False,
    force_host_nic: bool = False,
    timeout: float | None = None,
    autoprobe: bool | None = None,
    was_autoprobe: bool | None = None,
) -> list[Action]:
    """Actions taking a PF from its current VF count to n, with the kernel's rules checked first.

    ``was_autoprobe``: the PF's autoprobe before the run when ``pf`` already shows a planned
    new value (profiles plan autoprobe as a phase of its own).
    """
    from vfctl.discover import MAX_VFS, check_sound

    check_sound(pf)
    name = pf.netdev or pf.address
    if not 0 <= n <= MAX_VFS:
        raise UsageError(f"invalid VF count {n} for {name}: 0 to {MAX_VFS}")
    if pf.driver is None:
        raise HostError(
            f"{name} ({pf.address}) has no driver bound: the PF driver creates VFs "
            "(ENOENT, no sriov_configure); load or bind its driver first"
        )
    if n > pf.total_vfs:
        cap = (
            f"; the capability allows {pf.cap_total_vfs}, the driver or firmware limits it"
            if pf.cap_total_vfs and pf.cap_total_vfs > pf.total_vfs
            else ""
        )
        raise UsageError(f"{name}: {n} VFs requested but sriov_totalvfs is {pf.total_vfs}{cap}")
    actions = plan_autoprobe(pf, autoprobe)
    if n == pf.num_vfs:
        return actions
    check_host_nic(host, pf, force_host_nic)
    if pf.num_vfs > 0:
        hard, soft = vf_users(host, pf)
        if hard:
            raise RefusedError(
                f"{name}: cannot change the VF count while VFs are held open — "
                + "; ".join(map(str, hard))
                + " (the kernel would block until they close; stop those processes first)"
            )
        if soft and not force:
            raise RefusedError(
                f"{name}: VFs in use — "
                + "; ".join(map(str, soft))
                + " (--force to remove them anyway)",
                override="--force",
            )
    t = timeout if timeout is not None else default_timeout(max(n, pf.num_vfs))
    expect_probe = (autoprobe if autoprobe is not None else pf.autoprobe) is not False
    # the VFs there now were probed under the autoprobe value they were created with: an undo
    # that re-creates them must do it under that value again, not under the run's new one
    created_with = (pf.autoprobe if was_autoprobe is None else was_autoprobe) is not False

    def set_n(frm: int, to: int) -> Action:
        back: dict[str, Any] = {"pf": pf.address, "num": frm, "timeout": t, "probe": expect_probe}
        if frm == pf.num_vfs and frm > 0 and to == 0:
            # removing VFs loses their binding and admin settings: a rollback puts them back
            back["probe"] = created_with
            back["autoprobe"] = created_with
            back["restore"] = vf_state(pf)
            back["pf_netdev"] = pf.netdev
        return Action(
            "sriov.numvfs",
            f"{pf.address} sriov_numvfs",
            f"{frm} -> {to}",
            {"pf": pf.address, "num": to, "timeout": t, "probe": expect_probe},
            Action("sriov.numvfs", f"{pf.address} sriov_numvfs", f"{to} -> {frm}", back),
        )

    if pf.num_vfs > 0 and n > 0:
        # the kernel refuses a different non-zero count (EBUSY): go through 0
        actions += [set_n(pf.num_vfs, 0), set_n(0, n)]
    else:
        actions.append(set_n(pf.num_vfs, n))
    return actions


def vf_state(pf: PF) -> list[dict[str, Any]]:
    """What re-created VFs need back: their driver (host driver, vfio-pci or none),
    driver_override and the settings that are not defaults — every VF, so a rollback can
    check each one."""
    out = []
    for vf in pf.vfs:
        s = vf.settings
        settings = {
            k: getattr(s, k)
            for k, default in vfattrs.DEFAULTS.items()
            if getattr(s, k) is not None and getattr(s, k) != default
        }
        if settings.get("vlan_proto") and not (settings.get("vlan") or settings.get("qos")):
            settings.pop("vlan_proto")
        out.append(
            {
                "index": vf.index,
                "driver": vf.driver,
                "override": vf.driver_override,
                "settings": settings,
            }
        )
    return out


def plan_bind(
    host: Host,
    model: HostModel,
    pf: PF,
    vfs: Sequence[VF],
    driver: str | None,
    *,
    force: bool = False,
) -> list[Action]:
    """Bind VFs to ``driver`` (None: back to their default driver) through driver_override."""
    actions: list[Action] = []
    selected = {v.address for v in vfs}
    for vf in vfs:
        want_override = driver
        if driver is None:
            if vf.driver_override is None:
                continue
        elif vf.driver == driver and vf.driver_override == driver:
            continue
        if vf.driver and vf.driver != driver:
            if vf.netdev:
                blockers = unbind_blockers(host, [vf.netdev])
                if blockers and not force:
                    raise RefusedError(
                        f"{vf.address} (VF {vf.index} of {pf.netdev or pf.address}): "
                        + "; ".join(blockers)
                        + " (--force to unbind anyway)",
                        override="--force",
                    )
            for h in vfio_holders(host, vf):
                raise RefusedError(f"{vf.address}: /dev/vfio/{vf.iommu_group} is held open by {h}")
            pu = pool_user(vf)
            if pu is not None and (pu[1] or not force):
                raise RefusedError(
                    f"{vf.address}: {pu[0]}" + ("" if pu[1] else " (--force to rebind anyway)"),
                    override=None if pu[1] else "--force",
                )
            if vf.held_by is not None and not force:
                raise RefusedError(
                    f"{vf.address}: held by {vf.held_by.describe()} (--force to rebind anyway)",
                    override="--force",
                )
            for a in vf.attached_to:
                if not force:
                    raise RefusedError(
                        f"{vf.address}: attached to {a.backend} VM {a.vm}; "
                        "detach it first (--force to rebind anyway)",
                        override="--force",
                    )
        if driver in STUB_DRIVERS and vf.iommu_group is not None:
            check_group_viable(model, vf, selected)
        target = f"{vf.address} driver"
        actions.append(
            Action(
                "pci.driver",
                target,
                f"{vf.driver or 'none'} -> {driver or 'default'}",
                {
                    "address": vf.address,
                    "override": want_override,
                    "expect": driver,
                    "group": vf.iommu_group,
                },
                Action(
                    "pci.driver",
                    target,
                    f"{driver or 'default'} -> {vf.driver or 'none'}",
                    {
                        "address": vf.address,
                        "override": vf.driver_override,
                        "expect": vf.driver,
                        "group": vf.iommu_group,
                    },
                ),
            )
        )
    return actions


def check_group_viable(model: HostModel, vf: VF, selected: set[str]) -> None:
    """Every other device in the VF's IOMMU group must be vfio/stub-bound, driverless or a bridge."""
    assert vf.iommu_group is not None
    blockers = []
    for d in model.group_members(vf.iommu_group):
        if d.address == vf.address or d.address in selected or d.is_bridge:
            continue
        if d.driver is None or d.driver in STUB_DRIVERS:
            continue
        nd = f", netdev {','.join(d.netdevs)}" if d.netdevs else ""
        blockers.append(f"{d.address} (driver {d.driver}{nd})")
    if blockers:
        raise RefusedError(
            f"{vf.address}: IOMMU group {vf.iommu_group} is not viable for vfio — "
            + "; ".join(blockers)
            + " also in the group; bind them to vfio-pci too, or use a slot/ACS setup that "
            "isolates the VF"
        )


# ---------------------------------------------------------------- verification (re-discovery)


def verify_numvfs(host: Host, address: str, n: int) -> None:
    """After the run: the kernel reports n VFs and n virtfn links for the PF."""
    from vfctl.discover import discover

    for p in discover(host).pfs:
        if p.address == address and (p.num_vfs != n or len(p.vfs) != n):
            raise HostError(
                f"{address}: verify failed: numvfs {p.num_vfs}, {len(p.vfs)} VF links, wanted {n}"
            )


def verify_driver(host: Host, addresses: Sequence[str], driver: str | None) -> None:
    """After the run: each VF is on ``driver`` (None: whatever its default driver is)."""
    if driver is None:
        return
    from vfctl.discover import discover

    now = {v.address: v for q in discover(host).pfs for v in q.vfs}
    for a in addresses:
        got = now.get(a)
        if got is None or got.driver != driver:
            raise HostError(
                f"{a}: verify failed: driver {got.driver if got else 'gone'}, wanted {driver}"
            )


# ---------------------------------------------------------------- ops (the only writers)


@op("sysfs.write")
def _op_write(ctx: Context, p: Mapping[str, Any]) -> None:
    ctx.host.write(p["path"], p["value"])


def _wait(pred: Any, timeout: float, what: str, ctx: Context) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not pred():
        if time.monotonic() >= deadline:
            raise HostError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
        ctx.host.settle()


@op("sriov.numvfs")
def _op_numvfs(ctx: Context, p: Mapping[str, Any]) -> None:
    """Set the VF count; an undo that re-creates VFs does it under the autoprobe value they
    were created with (then puts the current value back) and restores each VF. Idempotent:
    a replay by `vfctl recover` after a kill finishes what is missing."""
    host, pf, n = ctx.host, p["pf"], int(p["num"])
    d = f"{PCI_DEVICES}/{pf}"
    ap_path = f"{d}/sriov_drivers_autoprobe"
    cur = host.read_int(f"{d}/sriov_numvfs", 10)
    want_ap = p.get("autoprobe")
    saved_ap = host.read_opt(ap_path) if want_ap is not None and n else None
    switch = saved_ap is not None and saved_ap != ("1" if want_ap else "0")
    if cur == n and not p.get("restore"):
        return
    try:
        if switch:
            host.write(ap_path, "1" if want_ap else "0")
        if cur != n:
            if cur and n:
                host.write(f"{d}/sriov_numvfs", "0")
            host.write(f"{d}/sriov_numvfs", str(n))
            got = host.read_int(f"{d}/sriov_numvfs", 10) or 0
            if got != n:
                raise HostError(f"{pf}: asked the driver for {n} VFs, it created {got}")
        timeout = float(p.get("timeout") or default_timeout(n))

        def links() -> int:
            return sum(host.exists(f"{d}/virtfn{i}") for i in range(n))

        ctx.progress(f"{pf}: waiting for {n} VFs")
        _wait_count(links, n, timeout, f"{n} VFs of {pf} to appear", ctx)
        if n and p.get("probe") and host.read_opt(ap_path) != "0":

            def probed() -> int:
                return sum(host.exists(f"{d}/virtfn{i}/driver") for i in range(n))

            _wait_count(probed, n, timeout, f"the VF driver to bind the VFs of {pf}", ctx)
        _restore(ctx, d, p)
    finally:
        if switch:
            assert saved_ap is not None
            host.write(ap_path, saved_ap)


def _restore(ctx: Context, d: str, p: Mapping[str, Any]) -> None:
    """Give re-created VFs (a rollback of a removal) their driver and admin settings back."""
    from vfctl.host import netlink

    failed = []
    for entry in p.get("restore") or []:
        i = int(entry["index"])
        addr = ctx.host.link_name(f"{d}/virtfn{i}")
        if addr is None:
            failed.append(f"VF {i}: missing")
            continue
        vd = f"{PCI_DEVICES}/{addr}"
        override = entry.get("override")
        want = entry.get("driver", override)  # journals of older versions: no "driver"
        try:
            cur_override = ctx.host.read_opt(f"{vd}/driver_override")
            cur_override = None if cur_override in (None, "", "(null)") else cur_override
            cur = ctx.host.link_name(f"{vd}/driver")
            if override or cur_override != override or (cur != want and want is not None):
                group = ctx.host.link_name(f"{vd}/iommu_group")
                _op_driver(
                    ctx,
                    {
                        "address": addr,
                        "override": override,
                        "expect": want,
                        "group": int(group) if group and group.isdigit() else None,
                    },
                )
            cur = ctx.host.link_name(f"{vd}/driver")
            if want is None and cur is not None and "driver" in entry:
                # it was driverless (created while autoprobe was off): take the probe back
                ctx.host.write(f"{PCI_DRIVERS}/{cur}/unbind", addr)
            settings = dict(entry.get("settings") or {})
            if settings and p.get("pf_netdev"):
                netlink.set_vf(ctx.host, str(p["pf_netdev"]), i, settings)
        except (OSError, HostError) as e:
            failed.append(f"VF {i}: {getattr(e, 'message', None) or e}")
    if failed:
        raise HostError(f"{p['pf']}: VFs re-created but not all restored: {'; '.join(failed)}")


def _wait_count(count: Any, total: int, timeout: float, what: str, ctx: Context) -> None:
    """Wait until count() reaches total; a progress bar when a person is watching a terminal."""
    if not ctx.interactive or total < 2 or count() >= total:
        _wait(lambda: count() >= total, timeout, what, ctx)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*cols, transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(render_escape(what), total=total)

        def done() -> bool:
            c = count()
            bar.update(task, completed=c)
            return bool(c >= total)

        _wait(done, timeout, what, ctx)


def render_escape(text: str) -> str:
    from vfctl import render

    return render.esc(text)


def _stderr_console() -> Any:
    from vfctl import render

    return render.err


@op("pci.driver")
def _op_driver(ctx: Context, p: Mapping[str, Any]) -> None:
    host, addr = ctx.host, p["address"]
    d = f"{PCI_DEVICES}/{addr}"
    override, expect = p.get("override"), p.get("expect")
    if override in STUB_DRIVERS and not host.exists(f"{PCI_DRIVERS}/{override}"):
        host.modprobe(override)
    cur_override = host.read_opt(f"{d}/driver_override")
    if (cur_override in (None, "(null)", "")) != (override is None) or (
        override is not None and cur_override != override
    ):
        host.write(f"{d}/driver_override", override if override else "\n")
    cur = host.link_name(f"{d}/driver")
    if cur is not None and cur != expect:
        host.write(f"{PCI_DRIVERS}/{cur}/unbind", addr)
    if host.link_name(f"{d}/driver") is None and (expect is not None or override is None):
        try:
            host.write("sys/bus/pci/drivers_probe", addr)
        except OSError as e:
            # a VF whose PF has autoprobe off cannot probe: then "no driver" is the default;
            # otherwise the reprobe failed and the VF would silently stay driverless
            if (
                e.errno not in (errno.ENODEV, errno.EINVAL)
                or expect is not None
                or host.read_opt(f"{d}/physfn/sriov_drivers_autoprobe") != "0"
            ):
                raise
    if expect is None:
        return  # default driver, whatever the kernel matched (or none)

    def bound() -> bool:
        return bool(host.link_name(f"{d}/driver") == expect)

    _wait(bound, 5.0, f"{addr} to bind to {expect}", ctx)
    group = p.get("group")
    if expect == VFIO and group is not None:
        _wait(lambda: host.exists(f"dev/vfio/{group}"), 5.0, f"/dev/vfio/{group}", ctx)


def vfio_loaded(host: Host) -> bool:
    return host.exists(f"{PCI_DRIVERS}/{VFIO}") or os.path.exists(host.path("sys/module/vfio_pci"))
