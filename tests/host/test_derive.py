"""VF addresses derived from offset/stride (vfctl/discover_derive.py) are the kernel's links,
and wherever they might not be, discovery reads the links and shows exactly what it showed
before: the same model, the same JSON.

The reference rule below is the kernel's (drivers/pci/iov.c, pci_iov_virtfn_bus() and
pci_iov_virtfn_devfn(): bus = PF bus + ((PF devfn + offset + N * stride) >> 8), devfn = the
same sum & 0xff), written out here on its own, not through vfctl.pci.address.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl import discover as disc
from vfctl import discover_derive, discover_vfs
from vfctl.host import vfscan
from vfctl.host.open import open_host
from vfctl.host.sysfs import PCI_DEVICES, Host
from vfctl.pci import dumpfile
from vfctl.pci import regs as R
from vfctl.sim import catalog

NewHost = Callable[..., SimHost]
DATA = Path(__file__).resolve().parents[1] / "pci" / "data"
# the real PF dumps (tests/pci/data, from /work/shared/pci-dumps) at their slots of origin
DUMPS = {
    "8086_10c9_1.hex": "0000:01:00.0",  # 82576, no ARI: offset 384, stride 2 (VFs on bus 02)
    "177d_a01e_1.hex": "0002:01:00.0",  # ThunderX, 128 VFs, offset 1, stride 1, ARI
    "144d_a826_1.hex": "0000:2e:00.0",  # NVMe, 64 VFs, offset 32, stride 1, ARI
    "8086_0d93_1.hex": "0000:6b:00.0",  # RCiEP, 6 VFs, offset 16, stride 2
    "aaaa_bbbb_1.hex": "0000:e1:00.0",  # 4 VFs, offset 32, stride 1, ARI
}


def kernel_vf(pf: str, offset: int, stride: int, n: int) -> str:
    dom, bus, rest = pf.split(":")
    dev, fn = rest.split(".")
    devfn = (int(dev, 16) << 3) | int(fn)
    total = devfn + offset + stride * n
    vbus, vdevfn = int(bus, 16) + (total >> 8), total & 0xFF
    return f"{dom}:{vbus:02x}:{vdevfn >> 3:02x}.{vdevfn & 7}"


def _sriov_at(cfg: bytes) -> int:
    pos = 0x100
    while pos:
        (hdr,) = struct.unpack_from("<I", cfg, pos)
        if hdr & 0xFFFF == R.PCI_EXT_CAP_ID_SRIOV:
            return pos
        pos = (hdr >> 20) & 0xFFC
    raise AssertionError("no SR-IOV capability")


def dump_tree(root: Path, dump: str, pf: str, k: int | None = None) -> tuple[int, int, int]:
    """A sysfs-like host with one PF (a real config space, NumVFs written as the kernel does)
    and its VFs where the kernel's rule puts them; returns (VFs, offset, stride)."""
    cfg = bytearray(dumpfile.load_dump((DATA / dump).read_bytes()))
    s = _sriov_at(bytes(cfg))
    total, offset, stride = (
        struct.unpack_from("<H", cfg, s + r)[0]
        for r in (R.PCI_IOV_TOTAL_VF, R.PCI_IOV_VF_OFFSET, R.PCI_IOV_VF_STRIDE)
    )
    k = total if k is None else k
    struct.pack_into("<H", cfg, s + R.PCI_IOV_NUM_VF, k)
    devs = root / PCI_DEVICES
    d = devs / pf
    d.mkdir(parents=True)
    (d / "config").write_bytes(bytes(cfg))
    attrs = {"sriov_totalvfs": total, "sriov_numvfs": k, "sriov_offset": offset,
             "sriov_stride": stride, "vendor": f"0x{cfg[1]:02x}{cfg[0]:02x}",
             "device": f"0x{cfg[3]:02x}{cfg[2]:02x}", "driver_override": "(null)"}  # fmt: skip
    for name, v in attrs.items():
        (d / name).write_text(f"{v}\n")
    for n in range(k):
        vf = kernel_vf(pf, offset, stride, n)
        (devs / vf).mkdir()
        (devs / vf / "driver_override").write_text("(null)\n")
        os.symlink(f"../{pf}", devs / vf / "physfn")
        os.symlink(f"../{vf}", d / f"virtfn{n}")
    return k, offset, stride


def _parse(h: Host) -> Callable[[list[str]], dict[str, dict[str, object]]]:
    return lambda pfs: disc.parse_configs(h, pfs)


def _links(h: Host, pf: str, k: int) -> list[str | None]:
    return [h.link_name(f"{PCI_DEVICES}/{pf}/virtfn{i}") for i in range(k)]


def _all_on(h: SimHost) -> None:
    for pf in h("list", "--json").json()["pfs"]:
        assert h("enable", pf["address"], str(pf["total_vfs"])).code == 0


@pytest.fixture(params=sorted(catalog.PRESETS))
def preset_host(request: pytest.FixtureRequest, new_host: NewHost) -> SimHost:
    return new_host(f"derive-{request.param}", request.param, _all_on)


@pytest.fixture
def no_derive(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    def set_off(off: bool) -> None:
        monkeypatch.setattr(discover_derive, "rule", _never if off else _RULE)

    yield set_off
    monkeypatch.setattr(discover_derive, "rule", _RULE)


_RULE = discover_derive.rule


def _never(*_: object) -> None:
    return None


def _same_both_ways(h: SimHost, no_derive: Callable[[bool], None]) -> str:
    """``list --all --json`` with and without derived addresses: byte for byte the same."""
    no_derive(True)
    want = h("list", "--all", "--json")
    no_derive(False)
    got = h("list", "--all", "--json")
    assert got.code == want.code == 0 and got.out == want.out
    return got.out


def test_derived_addresses_are_the_links_on_every_preset(
    preset_host: SimHost, no_derive: Callable[[bool], None]
) -> None:
    h = open_host(preset_host.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert found.pfs
    for pf in found.pfs:
        cols = found.vfs[pf]
        assert cols.address, f"{pf}: no VFs enabled"
        assert cols.derived, f"{pf}: read from its links, not derived"
        assert cols.address == _links(h, pf, len(cols.index))
    _same_both_ways(preset_host, no_derive)


@pytest.mark.parametrize("dump", sorted(DUMPS))
def test_derived_addresses_are_the_kernels_rule_on_real_pf_dumps(tmp_path: Path, dump: str) -> None:
    k, offset, stride = dump_tree(tmp_path, dump, DUMPS[dump])
    h = open_host(tmp_path)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    pf = DUMPS[dump]
    assert found.pfs == [pf] and found.vfs[pf].derived
    assert found.vfs[pf].address == [kernel_vf(pf, offset, stride, n) for n in range(k)]
    assert found.vfs[pf].address == _links(h, pf, k)
    (model_pf,) = disc.discover(h).pfs
    assert [v.address for v in model_pf.vfs] == _links(h, pf, k) and model_pf.notes == ()


def test_vfs_across_a_bus_boundary(tmp_path: Path) -> None:
    """82576 without ARI (the real dump): offset 384 puts VF0 one bus past its PF's, 02:10.0
    for 01:00.0; with stride 2 its 8 VFs end at 02:11.6."""
    k, offset, stride = dump_tree(tmp_path, "8086_10c9_1.hex", "0000:01:00.0")
    h = open_host(tmp_path)
    vfs = [v.address for v in disc.discover(h).pfs[0].vfs]
    assert (k, offset, stride) == (8, 384, 2)
    assert vfs[0] == "0000:02:10.0" and vfs[-1] == "0000:02:11.6"


def test_vfs_crossing_a_bus_in_the_middle(tmp_path: Path) -> None:
    """PF 05:1f.0 with offset 1 and stride 1 (64 VFs): devfn 0xf8 + 1 + N passes 0xff at
    N = 7, so VF6 is 05:1f.7 and VF7 is 06:00.0; all derived, all equal to the links."""
    k, _, _ = dump_tree(tmp_path, "aaaa_bbbb_1.hex", "0000:05:1f.0", k=4)
    # widen to 64 VFs with offset 1, stride 1 on the tree and in the config space
    pf = "0000:05:1f.0"
    d = tmp_path / PCI_DEVICES / pf
    cfg = bytearray((d / "config").read_bytes())
    s = _sriov_at(bytes(cfg))
    for reg, v in ((R.PCI_IOV_TOTAL_VF, 64), (R.PCI_IOV_NUM_VF, 64), (R.PCI_IOV_VF_OFFSET, 1),
                   (R.PCI_IOV_VF_STRIDE, 1)):  # fmt: skip
        struct.pack_into("<H", cfg, s + reg, v)
    (d / "config").write_bytes(bytes(cfg))
    for name, v in (("sriov_totalvfs", 64), ("sriov_numvfs", 64), ("sriov_offset", 1),
                    ("sriov_stride", 1)):  # fmt: skip
        (d / name).write_text(f"{v}\n")
    devs = tmp_path / PCI_DEVICES
    for n in range(k):
        os.unlink(d / f"virtfn{n}")
    for n in range(64):
        vf = kernel_vf(pf, 1, 1, n)
        if not (devs / vf).exists():
            (devs / vf).mkdir()
            (devs / vf / "driver_override").write_text("(null)\n")
        os.symlink(f"../{vf}", d / f"virtfn{n}")
    h = open_host(tmp_path)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    addrs = found.vfs[pf].address
    assert found.vfs[pf].derived and addrs == _links(h, pf, 64)
    assert addrs[6:8] == ["0000:05:1f.7", "0000:06:00.0"] and addrs[-1] == "0000:06:07.0"


def test_no_vf_past_bus_255_is_derived(tmp_path: Path) -> None:
    """A PF at ff:00.0 whose VFs would need bus 0x100: the kernel refuses such an enable
    (sriov_enable(): bus out of range); a tree that shows one anyway is read from its links."""
    pf = "0000:ff:00.0"
    dump_tree(tmp_path, "8086_10c9_1.hex", pf, k=2)  # offset 384: bus 0x100, written as 00
    h = open_host(tmp_path)
    assert discover_derive.rule(pf, [0, 1], {"sriov_numvfs": "2", "sriov_offset": "384",
                                             "sriov_stride": "2"}) is None  # fmt: skip
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert not found.vfs[pf].derived and found.vfs[pf].address == _links(h, pf, 2)


def _counting_links(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = vfscan.links

    def links(directory: str, paths: list[str], full: bool = False) -> list[str | None]:
        calls.append(len(paths))
        return real(directory, paths, full)

    monkeypatch.setattr(vfscan, "links", links)
    return calls


def test_no_readlink_per_vf_when_derived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """128 VFs: no batch of virtfn links at all (the two sampled links go through Host)."""
    dump_tree(tmp_path, "177d_a01e_1.hex", "0002:01:00.0")
    h = open_host(tmp_path)
    calls = _counting_links(monkeypatch)
    model = disc.discover(h)
    assert len(model.pfs[0].vfs) == 128
    assert sum(calls) == 0


def _swap(d: Path, a: str, b: str) -> None:
    ta, tb = os.readlink(d / a), os.readlink(d / b)
    for name, target in ((a, tb), (b, ta)):
        (d / name).unlink()
        os.symlink(target, d / name)


@pytest.fixture
def big(new_host: NewHost) -> SimHost:
    return new_host("derive-default", "default", _all_on)


PF = "0000:01:00.0"  # 82599 port 0: 63 VFs, offset 128, stride 2


def test_a_sampled_link_that_disagrees_sends_the_pf_to_its_links(
    big: SimHost, no_derive: Callable[[bool], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = big.root / big.dev(PF)
    _swap(d, "virtfn61", "virtfn62")  # a quirk in the last link: offset/stride do not hold
    calls = _counting_links(monkeypatch)
    out = _same_both_ways(big, no_derive)
    assert calls  # the links were read
    doc = big("show", PF, "--json").json()
    assert [v["address"] for v in doc["vfs"]][61:] == [
        Path(os.readlink(d / "virtfn61")).name, Path(os.readlink(d / "virtfn62")).name,
    ]  # fmt: skip
    assert any(n.startswith("virtfn61 is ") for n in doc["notes"]) and "offset/stride say" in out


def test_a_first_link_elsewhere_is_shown_as_the_kernel_links_it(
    big: SimHost, no_derive: Callable[[bool], None]
) -> None:
    d = big.root / big.dev(PF)
    other = os.readlink(big.root / big.dev("0000:01:00.1", "virtfn5"))
    (d / "virtfn0").unlink()
    os.symlink(other, d / "virtfn0")  # virtfn0 to another PF's VF
    _same_both_ways(big, no_derive)
    doc = big("show", PF, "--json").json()
    assert doc["vfs"][0]["address"] == Path(other).name and doc["notes"]


def test_sysfs_numvfs_other_than_the_links_reads_the_links(
    big: SimHost, no_derive: Callable[[bool], None]
) -> None:
    """Mid-change (sriov_enable() adds VFs before it sets num_VFs): numvfs reads 0 while the
    links are there; the listing is the links', as before."""
    (big.root / big.dev(PF, "sriov_numvfs")).write_text("0\n")
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert not found.vfs[PF].derived and found.vfs[PF].address == _links(h, PF, 63)
    _same_both_ways(big, no_derive)


def test_a_capability_that_disagrees_reads_the_links(
    big: SimHost, no_derive: Callable[[bool], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config space's NumVFs other than sysfs's (a PF mid-change): the links, which
    agree here, keep the derived addresses; one batch of links, none per VF later."""
    p = big.root / big.dev(PF, "config")
    cfg = bytearray(p.read_bytes())
    struct.pack_into("<H", cfg, _sriov_at(bytes(cfg)) + R.PCI_IOV_NUM_VF, 62)
    p.write_bytes(bytes(cfg))
    calls = _counting_links(monkeypatch)
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert calls == [63] and found.vfs[PF].address == _links(h, PF, 63)
    _same_both_ways(big, no_derive)


def test_a_derived_vf_without_driver_override_reads_the_links(
    big: SimHost, no_derive: Callable[[bool], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    vf = os.readlink(big.root / big.dev(PF, "virtfn30")).rsplit("/", 1)[-1]
    (big.root / big.dev(vf, "driver_override")).unlink()
    calls = _counting_links(monkeypatch)
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert 63 in calls and found.vfs[PF].address == _links(h, PF, 63)
    _same_both_ways(big, no_derive)


def test_a_derived_address_that_is_not_listed_reads_the_links(
    big: SimHost, no_derive: Callable[[bool], None]
) -> None:
    """virtfn30 points at a function outside bus/pci/devices' listing: the links say so."""
    d = big.root / big.dev(PF)
    vf = Path(os.readlink(d / "virtfn30")).name
    (big.root / big.dev(vf)).rename(big.root / "moved")
    (d / "virtfn30").unlink()
    os.symlink("../../../../moved", d / "virtfn30")
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert not found.vfs[PF].derived and found.vfs[PF].address[30] == "moved"
    _same_both_ways(big, no_derive)


def test_mid_disable_reads_the_links(big: SimHost, no_derive: Callable[[bool], None]) -> None:
    """sriov_del_vfs() removes VFs from index 0 upwards before num_VFs is cleared: numvfs
    still reads 63 while virtfn0 (and its VF) are gone; the listing shows what is left."""
    d = big.root / big.dev(PF)
    vf = Path(os.readlink(d / "virtfn0")).name
    (d / "virtfn0").unlink()
    (big.root / big.dev(vf, "driver_override")).unlink()
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert not found.vfs[PF].derived and found.vfs[PF].index == list(range(1, 63))
    _same_both_ways(big, no_derive)


def test_a_link_past_numvfs_reads_the_links(
    big: SimHost, no_derive: Callable[[bool], None]
) -> None:
    """virtfn63 with sriov_numvfs 63: not the run 0..62, so the PF's listing decides."""
    d = big.root / big.dev(PF)
    os.symlink(os.readlink(big.root / big.dev("0000:01:00.1", "virtfn5")), d / "virtfn63")
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert not found.vfs[PF].derived and found.vfs[PF].index == list(range(64))
    _same_both_ways(big, no_derive)


def test_a_derived_pf_directory_is_not_listed(
    big: SimHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PF at rest costs three readlinks (virtfn0, the last, the one past it), no listing
    of its ~200 entries; a PF whose links must be read is listed."""
    listed: list[str] = []
    real = Host.names

    def names(self: Host, rel: str) -> list[str]:
        listed.append(rel)
        return real(self, rel)

    monkeypatch.setattr(Host, "names", names)
    h = open_host(big.root)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    pf_dirs = {f"{PCI_DEVICES}/{a}" for a in found.pfs}
    assert all(found.vfs[a].derived for a in found.pfs) and not pf_dirs & set(listed)
    (big.root / big.dev(PF, "sriov_numvfs")).write_text("0\n")  # mid-enable: links read
    listed.clear()
    discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert f"{PCI_DEVICES}/{PF}" in listed


def _model(h: Host, no_derive: Callable[[bool], None], off: bool) -> list[dict[str, object]]:
    no_derive(off)
    return [p.to_json() for p in disc.discover(h).pfs]


def test_vfs_not_right_after_their_pf_are_derived(
    tmp_path: Path, no_derive: Callable[[bool], None]
) -> None:
    """The usual host lists a PF's VFs right after it (checked by one slice compare); with a
    device between them (here 02:00.0 before 82576's VFs at 02:10.0) they are looked up in
    the listing instead, still derived, and that device is no VF."""
    pf = "0000:01:00.0"
    k, offset, stride = dump_tree(tmp_path, "8086_10c9_1.hex", pf)
    (tmp_path / PCI_DEVICES / "0000:02:00.0").mkdir()
    h = open_host(tmp_path)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert found.pfs == [pf] and found.vfs[pf].derived
    assert (
        found.vfs[pf].address
        == _links(h, pf, k)
        == [kernel_vf(pf, offset, stride, n) for n in range(k)]
    )
    assert _model(h, no_derive, False) == _model(h, no_derive, True)


def test_a_pf_linking_into_another_pfs_run_reads_each_vf_once(
    tmp_path: Path, no_derive: Callable[[bool], None]
) -> None:
    """A hand-edited tree: ThunderX's 128 VFs follow it in the listing (a run, skipped by
    position); a second PF's virtfn0 points into that run. The second PF is read from its
    links, the shared VF read once where first found, and the model is the one made
    without derived addresses at all."""
    a, b = "0002:01:00.0", "0000:e1:00.0"
    dump_tree(tmp_path, "177d_a01e_1.hex", a)
    kb, _, _ = dump_tree(tmp_path, "aaaa_bbbb_1.hex", b)
    d = tmp_path / PCI_DEVICES / b
    (d / "virtfn0").unlink()
    os.symlink("../0002:01:00.5", d / "virtfn0")
    h = open_host(tmp_path)
    found = discover_vfs.pfs_and_vfs(h, h.listdir(PCI_DEVICES), _parse(h))
    assert found.vfs[a].derived and not found.vfs[b].derived
    assert found.vfs[b].address[0] == "0002:01:00.5" == found.vfs[a].address[4]
    assert found.vfs[b].address == _links(h, b, kb)
    assert _model(h, no_derive, False) == _model(h, no_derive, True)
