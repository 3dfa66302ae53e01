"""The host ops (the only writers of sysfs for numvfs, autoprobe and driver binding).

Names and params are the journal's: ``sysfs.write``, ``sriov.numvfs``, ``pci.driver`` replay
from journals of earlier versions unchanged. Planning is in ``vfctl.plan_host``.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Mapping
from typing import Any

from vfctl.errors import HostError, UsageError
from vfctl.host import netlink
from vfctl.host.sysfs import PCI_DEVICES, PCI_DRIVERS, Host
from vfctl.plan import Context, op
from vfctl.plan_host import STUB_DRIVERS, VFIO, default_timeout

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


def ensure_driver(host: Host, driver: str, check: bool) -> list[str]:
    """Make PCI driver ``driver`` exist before any write: load its module, or refuse (exit 2).

    Without this a bind to a driver nobody loaded would wait 5 s for a bind that cannot happen
    and roll back. ``check`` loads nothing: a module modprobe cannot find is refused as the
    run would be; one it can find is noted (returned) as loaded by the run.
    """
    if host.exists(f"{PCI_DRIVERS}/{driver}"):
        return []
    if check:
        if host.module_known(driver) is False:
            raise UsageError(f"--driver {driver}: no PCI driver {driver} and no module {driver}")
        return [f"PCI driver {driver} is not loaded: the run loads module {driver} first"]
    try:
        host.modprobe(driver)
    except OSError as e:
        raise UsageError(
            f"--driver {driver}: no PCI driver {driver}; loading module {driver} failed "
            f"({e.strerror or e})"
        ) from None
    host.settle()
    if not host.exists(f"{PCI_DRIVERS}/{driver}"):
        raise UsageError(
            f"--driver {driver}: module {driver} is loaded but registers no PCI driver "
            f"{driver} ({PCI_DRIVERS}/{driver} is missing)"
        )
    return []
