"""The batch VF reads: C and Python twins agree on anything, and both equal Host's own reads."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from needs import missing
from simcli import SimHost
from vfscan_trees import driver_tree, hostile

from vfctl import discover as disc
from vfctl import discover_vfs
from vfctl.host import vfscan
from vfctl.host.open import open_host
from vfctl.host.sysfs import PCI_DEVICES, PCI_DRIVERS, Host

NewHost = Callable[..., SimHost]
FLAGS = [0, vfscan.SKIP_DRIVER, vfscan.SKIP_NET, vfscan.SKIP_DRIVER | vfscan.SKIP_NET]


@pytest.fixture
def c_scan() -> None:
    if vfscan._C_MOD is None:
        missing("the vfctl.host._vfscan extension is not built", "VFCTL_C_EXT")


def _busy(h: SimHost) -> None:
    """Every PF with all its VFs; some VFs on vfio-pci (driver_override set, no netdev)."""
    for pf in h("list", "--json").json()["pfs"]:
        assert h("enable", pf["netdev"], str(pf["total_vfs"])).code == 0
        assert h("bind", pf["netdev"], "vf0-1").code == 0


@pytest.fixture
def busy(new_host: NewHost) -> SimHost:
    return new_host("vfscan-busy", "default", _busy)


def _vf_addrs(h: SimHost) -> list[str]:
    return [v["address"] for p in h("list", "--json").json()["pfs"] for v in p["vfs"]]


@pytest.mark.usefixtures("c_scan")
@pytest.mark.parametrize("flags", FLAGS)
def test_twins_agree_on_a_busy_simulated_host(busy: SimHost, flags: int) -> None:
    devdir = str(busy.root / PCI_DEVICES)
    addrs = _vf_addrs(busy)
    assert len(addrs) == 140
    got = vfscan._C_MOD.scan(devdir, addrs, flags)  # type: ignore[union-attr]
    assert got == vfscan.scan_python(devdir, addrs, flags)
    assert {r[0] for r in vfscan.scan_python(devdir, addrs)} == {"vfio-pci", "igbvf", "ixgbevf"}
    _columns_agree(devdir, addrs, flags, got)
    pf = "0000:01:00.0"
    names = [f"{pf}/virtfn{i}" for i in range(70)]  # past the last VF: None
    assert vfscan._C_MOD.links(devdir, names) == vfscan.links_python(devdir, names)  # type: ignore[union-attr]
    # the PF attribute batch (discover_vfs.PF_ATTRS): the same text as Host.read_opt
    pf_files = [f"{p}/{a}" for p in ("0000:01:00.0", "0000:03:00.1") for a in discover_vfs.PF_ATTRS]
    got_reads = vfscan._C_MOD.reads(devdir, pf_files)  # type: ignore[union-attr]
    assert got_reads == vfscan.reads_python(devdir, pf_files)
    h = open_host(busy.root)
    assert [None if r is None else r.strip() for r in got_reads] == [
        h.read_opt(f"{PCI_DEVICES}/{f}") for f in pf_files
    ]
    net = str(busy.root / "sys/class/net")
    ifs = sorted(os.listdir(net))
    assert vfscan._C_MOD.links(net, ifs, True) == vfscan.links_python(net, ifs, True)  # type: ignore[union-attr]


def _columns_agree(devdir: str, names: list[str], flags: int, rows: list[vfscan.Raw]) -> None:
    """columns() in both twins: scan()'s rows one list per fact (skipped facts None as a
    whole, groups ints where the name is 1-18 ASCII digits, else the name)."""
    cols = vfscan._C_MOD.columns(devdir, names, flags)  # type: ignore[union-attr]
    assert cols == vfscan.columns_python(devdir, names, flags)
    drv, ovr, grp, net = cols
    assert drv == (None if flags & vfscan.SKIP_DRIVER else [r[0] for r in rows])
    assert net == (None if flags & vfscan.SKIP_NET else [r[3] for r in rows])
    assert ovr == [r[1] for r in rows]
    for g, r in zip(grp, rows, strict=True):
        digits = r[2] is not None and re.fullmatch(r"[0-9]{1,18}", r[2]) is not None
        assert g == (int(r[2]) if digits else r[2]) and isinstance(g, int) == digits  # type: ignore[arg-type]


def _equals_host_reads(h: Host, monkeypatch: pytest.MonkeyPatch) -> int:
    """Discovery (C batch and Python twin) against Host's reads file by file; VFs seen."""
    seen = []
    for no_c in ("0", "1"):
        monkeypatch.setattr(vfscan, "HAVE_C", no_c == "0" and vfscan._C_MOD is not None)
        model = disc.discover(h)
        n = 0
        for pf in model.pfs:
            for v in pf.vfs:
                vd = f"{PCI_DEVICES}/{v.address}"
                assert v.address == h.link_name(f"{PCI_DEVICES}/{pf.address}/virtfn{v.index}")
                assert v.driver == h.link_name(f"{vd}/driver")
                raw = h.read_opt(f"{vd}/driver_override")
                assert v.driver_override == (None if raw in (None, "", "(null)") else raw)
                assert v.netdev == (h.listdir(f"{vd}/net") or [None])[0]
                assert v.iommu_group == disc._group(h, vd)
                # the kernel's rule the simulator follows: a VF's IDs are its PF's vendor
                # and the PF's SR-IOV VF Device ID (drivers/pci/iov.c)
                assert v.vendor_id == disc._hex4(h.read_opt(f"{vd}/vendor"))
                assert v.device_id == disc._hex4(h.read_opt(f"{vd}/device"))
                n += 1
        seen.append((n, model))
    assert seen[0] == seen[1]
    return seen[0][0]


def test_discovery_equals_per_vf_host_reads(busy: SimHost, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batched, bulk-listed and PF-derived facts equal what Host reads file by file."""
    assert _equals_host_reads(open_host(busy.root), monkeypatch) == 140


def test_odd_groups_overrides_and_a_shared_vf_equal_host_reads(
    busy: SimHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's columns off the kernel's ways: group names that are not 1-18 ASCII digits
    (kept as text by the batch, decided by discovery's own rule), overrides of their own, and
    a VF two PFs link (not one run of the scan per PF: each PF's facts picked by position)."""
    devs = busy.root / PCI_DEVICES
    vfs = _vf_addrs(busy)
    for vf, name in ((vfs[3], "x7"), (vfs[4], "9" * 19), (vfs[5], "0012"), (vfs[6], "")):
        link = devs / vf / "iommu_group"
        link.unlink()
        os.symlink(f"../../../kernel/iommu_groups/{name}", link)
    for vf, text in ((vfs[7], "igbvf\n"), (vfs[8], "vfio-pci"), (vfs[9], "\n"), (vfs[10], "x")):
        (devs / vf / "driver_override").write_text(text)
    pfs = [p["address"] for p in busy("list", "--json").json()["pfs"]]
    link = devs / pfs[1] / "virtfn0"  # the second PF's first link: the first PF's first VF
    link.unlink()
    os.symlink(f"../{vfs[0]}", link)
    h = open_host(busy.root)
    assert _equals_host_reads(h, monkeypatch) == 140
    model = disc.discover(h)
    got = {v.address: v for p in model.pfs for v in p.vfs}
    assert [got[v].iommu_group for v in vfs[3:7]] == [None, int("9" * 19), 12, None]
    assert [got[v].driver_override for v in vfs[7:11]] == ["igbvf", "vfio-pci", None, "x"]
    assert model.pfs[1].vfs[0].address == vfs[0] == model.pfs[0].vfs[0].address


def test_bulk_listings_match_per_vf_links(busy: SimHost) -> None:
    h = open_host(busy.root)
    flags, drivers, nets = discover_vfs.bulk_listings(h, 140)
    assert flags == vfscan.SKIP_DRIVER | vfscan.SKIP_NET and drivers and nets
    vfs = _vf_addrs(busy)
    drvdir = str(busy.root / PCI_DRIVERS)
    listed = vfscan.owners(drvdir, drivers, vfs)
    assert listed == vfscan.owners_python(drvdir, drivers, vfs)
    for a, drv in zip(vfs, listed, strict=True):
        assert drv == h.link_name(f"{PCI_DEVICES}/{a}/driver")
        assert sorted(nets.get(a, [])) == h.listdir(f"{PCI_DEVICES}/{a}/net")
    assert discover_vfs.bulk_listings(h, 15) == (0, None, None)  # few VFs: one read each is cheaper


@pytest.mark.usefixtures("c_scan")
@pytest.mark.parametrize("flags", FLAGS)
def test_twins_agree_on_a_hostile_tree(tmp_path: Path, flags: int) -> None:
    root = tmp_path / "devices"
    root.mkdir()
    names = hostile(root)
    got = vfscan._C_MOD.scan(str(root), names, flags)  # type: ignore[union-attr]
    assert got == vfscan.scan_python(str(root), names, flags)
    _columns_agree(str(root), names, flags, got)
    by = dict(zip(names, got, strict=True))
    assert by["0000:00:00.1"][1] is None  # FIFO refused, without blocking
    assert by["0000:00:00.2"][1] == "secret\n" and by["0000:00:00.2"][2] == ""
    assert by["0000:00:00.3"][1] is not None and len(by["0000:00:00.3"][1]) <= 1 << 16
    assert len(by["0000:00:00.3"][3]) == 300 * (not flags & vfscan.SKIP_NET)
    assert by["0000:00:00.4"][1] is None and by["0000:00:00.4"][2] == "17"
    assert by["0000:00:00.6"] == (None, None, None, [])
    links = [f"{n}/driver" for n in names] + [f"{n}/iommu_group" for n in names]
    for full in (False, True):
        assert vfscan._C_MOD.links(str(root), links, full) == vfscan.links_python(  # type: ignore[union-attr]
            str(root), links, full
        )
    files = [f"{n}/{a}" for n in names for a in ("driver_override", "driver", "net", "iommu_group")]
    assert vfscan._C_MOD.reads(str(root), files) == vfscan.reads_python(str(root), files)  # type: ignore[union-attr]
    read = dict(zip(files, vfscan.reads_python(str(root), files), strict=True))
    assert read["0000:00:00.1/driver_override"] is None  # a FIFO: refused, without blocking
    assert read["0000:00:00.2/driver_override"] == "secret\n"  # a symlink: followed
    assert read["0000:00:00.4/driver_override"] is None  # a directory
    with pytest.raises(FileNotFoundError):
        vfscan._C_MOD.scan(str(tmp_path / "missing"), names)  # type: ignore[union-attr]
    with pytest.raises(FileNotFoundError):
        vfscan._C_MOD.columns(str(tmp_path / "missing"), names)  # type: ignore[union-attr]
    with pytest.raises(FileNotFoundError):
        vfscan._C_MOD.reads(str(tmp_path / "missing"), files)  # type: ignore[union-attr]


@pytest.mark.usefixtures("c_scan")
def test_owners_twins_agree_on_a_hostile_drivers_directory(tmp_path: Path) -> None:
    """Each name's driver from the drivers' listings: C (hash lookups) equals Python (a dict)."""
    import random

    for seed in range(4):
        root = tmp_path / f"drivers{seed}"
        root.mkdir()
        drivers, names = driver_tree(root, random.Random(seed))
        got = vfscan._C_MOD.owners(str(root), drivers, names)  # type: ignore[union-attr]
        assert got == vfscan.owners_python(str(root), drivers, names)
        by = dict(zip(names, got, strict=True))
        assert by["bind"] is None and by["module"] is None and by[""] is None  # not devices
        assert by["0000:00:00.0"] in (None, "igbvf", "ixgbevf", "linked")  # never the file's text
        assert "vfio-pci" not in got  # 'linked' (the same directory) is listed after it
        assert any(got) and by["0000:99:00.0"] is None
        rev = drivers[::-1]  # the last driver listing a device is its driver
        assert vfscan._C_MOD.owners(str(root), rev, names) == vfscan.owners_python(  # type: ignore[union-attr]
            str(root), rev, names
        )
    assert vfscan._C_MOD.owners(str(tmp_path / "missing"), drivers, names[:3]) == [None] * 3  # type: ignore[union-attr]
    assert vfscan._C_MOD.owners(str(root), [], names[:2]) == [None, None]  # type: ignore[union-attr]
    assert vfscan._C_MOD.owners(str(root), drivers, []) == []  # type: ignore[union-attr]
    for bad in (["a\0b"],):
        with pytest.raises(ValueError):
            vfscan._C_MOD.owners(str(root), drivers, bad)  # type: ignore[union-attr]
        with pytest.raises(ValueError):
            vfscan.owners_python(str(root), drivers, bad)
    with pytest.raises(TypeError):
        vfscan._C_MOD.owners(str(root), [1], names)  # type: ignore[union-attr]


def _counting_fstat(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fstat

    def fstat(fd: int) -> os.stat_result:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(vfscan.os, "fstat", fstat)
    return calls


def test_on_real_sysfs_no_file_is_fstated(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own /sys: both twins see sysfs (one fstatfs), skip the per-file regular
    check there, and still read exactly alike."""
    devdir = "/sys/bus/pci/devices"
    if not os.path.isdir(devdir) or not os.listdir(devdir):
        missing("no PCI devices in this machine's /sys")
    addrs = sorted(os.listdir(devdir))
    assert vfscan.checks_regular(devdir) is False
    if vfscan._C_MOD is not None:
        assert vfscan._C_MOD.checks_regular(devdir) is False
        files = [f"{a}/{n}" for a in addrs for n in discover_vfs.PF_ATTRS]
        assert vfscan._C_MOD.reads(devdir, files) == vfscan.reads_python(devdir, files)
        for flags in FLAGS:
            assert vfscan._C_MOD.scan(devdir, addrs, flags) == vfscan.scan_python(
                devdir, addrs, flags
            )
            assert vfscan._C_MOD.columns(devdir, addrs, flags) == vfscan.columns_python(
                devdir, addrs, flags
            )
    calls = _counting_fstat(monkeypatch)
    got = vfscan.scan_python(devdir, addrs)
    assert calls == [] and any(r[1] is not None for r in got)  # driver_override was read


def test_off_sysfs_every_file_is_fstated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other tree (a simulated host, a snapshot, /proc) keeps the check, in both twins."""
    root = tmp_path / "devices"
    root.mkdir()
    names = hostile(root)
    for d in (str(root), "/proc"):
        assert vfscan.checks_regular(d) is True
        if vfscan._C_MOD is not None:
            assert vfscan._C_MOD.checks_regular(d) is True
    calls = _counting_fstat(monkeypatch)
    got = vfscan.scan_python(str(root), names)
    opened = [n for n in names if os.path.exists(root / n / "driver_override")]
    assert len(calls) == len(opened) > 0
    assert dict(zip(names, got, strict=True))["0000:00:00.1"][1] is None  # the FIFO, refused


@pytest.mark.usefixtures("c_scan")
def test_listing_twins_agree_on_hostile_names(tmp_path: Path) -> None:
    """sorted(os.listdir()) in C (the names sorted as bytes) equals Python's, whatever the
    names: ASCII, UTF-8 above U+E000 next to undecodable bytes (surrogateescape sorts those
    below U+E000 though their bytes sort above), 3,000 addresses, an empty directory."""
    import random

    c = vfscan._C_MOD.listing  # type: ignore[union-attr]
    rng = random.Random(7)
    d = tmp_path / "many"
    d.mkdir()
    names = {f"0000:{rng.randrange(256):02x}:{rng.randrange(32):02x}.{rng.randrange(8)}"
             for _ in range(3000)}  # fmt: skip
    for n in names:
        (d / n).mkdir()
    assert c(str(d)) == vfscan.listing_python(str(d)) == sorted(names)
    odd = tmp_path / "odd"
    odd.mkdir()
    raw = [b"a", b"B", b"\xef\x80\x80x", b"\xff", b"\xc3\xa9", b"\x80z", b"-", b"zz", b".x"]
    for b in raw:
        os.mkdir(os.path.join(os.fsencode(odd), b))
    got = c(str(odd))
    assert got == vfscan.listing_python(str(odd)) == sorted(os.fsdecode(b) for b in raw)
    assert got.index("\udcff") < got.index("\uf000x")  # Python's order, not the bytes'
    (tmp_path / "empty").mkdir()
    assert c(str(tmp_path / "empty")) == [] == vfscan.listing_python(str(tmp_path / "empty"))
    (tmp_path / "file").write_text("x")
    for bad, err in (("missing", FileNotFoundError), ("file", NotADirectoryError)):
        with pytest.raises(err):
            c(str(tmp_path / bad))
        with pytest.raises(err):
            vfscan.listing_python(str(tmp_path / bad))
    assert Host(tmp_path).listdir("missing") == []
