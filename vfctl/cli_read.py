"""Read-only commands: list, show, decode, doctor (registered in order by vfctl.cli)."""

from typing import Optional

import typer

from vfctl.cli_app import guarded, session
from vfctl.cli_opts import JsonOpt
from vfctl.errors import NotFoundError, UsageError


def list_cmd(
    json_: bool = JsonOpt(False),
    all_: bool = typer.Option(False, "--all", "-a", help="Include the VFs."),
) -> None:
    """List SR-IOV physical functions."""

    def go() -> None:
        from vfctl import pciids, readjson, render

        s = session()
        if json_:
            readjson.list_json(s)
            return
        m = pciids.named(s.model(lenient=True))
        for p in m.pfs:
            for problem in p.problems:
                render.warn(f"{p.address}: {problem}")
        if not m.pfs:
            render.out.print("no SR-IOV physical functions found")
            return
        render.out.print(render.pf_table(m, all_))

    guarded(json_, False, go)


def show(
    pf: str = typer.Argument(..., help="PF netdev or PCI address."), json_: bool = JsonOpt(False)
) -> None:
    """Show one PF and its VFs."""

    def go() -> None:
        from vfctl import readjson, render

        s = session()
        if json_:
            readjson.show_json(s, pf)
            return
        p, pooled = readjson.show_pf(s, pf)
        render.out.print(render.pf_summary(p), markup=False)
        for note in p.notes:
            render.warn(note, "note")
        nets = sorted({n for a, n in (pooled or {}).items() if a in {v.address for v in p.vfs}})
        for net in nets:
            members = [f"vf{v.index}" for v in p.vfs if (pooled or {}).get(v.address) == net]
            render.out.print(
                f"libvirt hostdev network {net!r} pools {', '.join(members)}", markup=False
            )
        if p.vfs:
            render.out.print(render.vf_table(p))

    guarded(json_, False, go)


def decode(
    file: str = typer.Argument(..., help="Raw config space or lspci -x/-xxx/-xxxx dump."),
    json_: bool = JsonOpt(False),
) -> None:
    """Decode a config-space file: capabilities, SR-IOV, ARI, ACS, PCIe link."""

    def go() -> None:
        from vfctl import render
        from vfctl.host.files import read_regular
        from vfctl.pci import configspace, dumpfile

        raw = read_regular(file, 1 << 20, "file", missing=NotFoundError)
        try:
            data = dumpfile.load_dump(raw)
        except ValueError as e:
            raise UsageError(f"{file}: {e}") from None
        doc = configspace.parse(data)
        if json_:
            render.emit_json(doc)
        else:
            render.decode_text(doc)

    guarded(json_, False, go)


def doctor(
    pf: Optional[str] = typer.Argument(None, help="Check only this PF."),
    json_: bool = JsonOpt(False),
) -> None:
    """Check that this host can pass VFs to VMs: IOMMU, vfio, drivers, ARI/ACS, groups."""

    def go() -> None:
        from rich.table import Table

        from vfctl import cli_pool_read, render
        from vfctl import doctor as doc
        from vfctl.discover import resolve_pf

        s = session()
        h = s.host()
        m = s.model(with_devices=True, with_backends=False)
        pfs = [resolve_pf(m, pf, h)] if pf else list(m.pfs)
        checks = doc.run(h, m, pfs)
        checks += cli_pool_read.doctor_checks(s, m)
        failed = [c for c in checks if c.status == doc.FAIL]
        if json_:
            render.emit_json({"ok": not failed, "checks": [c.to_json() for c in checks]})
        else:
            t = Table(title="vfctl doctor", title_justify="left")
            for col in ("status", "check", "target", "detail", "remedy"):
                t.add_column(col)
            style = {doc.OK: "green", doc.WARN: "yellow", doc.FAIL: "red", doc.INFO: "dim"}
            for c in checks:
                t.add_row(
                    f"[{style[c.status]}]{c.status}[/]",
                    *(render.esc(x) for x in (c.name, c.target or "", c.detail, c.remedy or "")),
                )
            render.out.print(t)
        if failed:
            raise typer.Exit(5)

    guarded(json_, False, go)
