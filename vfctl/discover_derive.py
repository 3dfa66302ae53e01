"""VF addresses from the PF's First VF Offset and VF Stride, where they cannot lie.

The kernel makes each VF's address and its ``virtfnN`` link from one rule
(drivers/pci/iov.c, pci_iov_add_virtfn() with pci_iov_virtfn_bus()/pci_iov_virtfn_devfn()):
routing ID (bus << 8 | devfn) = the PF's + offset + N * stride, where offset and stride are
``iov->offset``/``iov->stride``, read back from the SR-IOV capability right after NumVFs is
written (pci_iov_set_numvfs(), called by sriov_enable() before any VF is added; ARI changes
the values the device reports, not the rule). The PF's ``sriov_offset``/``sriov_stride``
show those very fields (sriov_offset_show()/sriov_stride_show()). So for a PF at rest, the
derived addresses are its links, and discovery reads them instead of one readlink per VF.

Where that can fail, the links are read (the caller's fallback), so the listing never shows
an address the kernel's link contradicts:

- mid-change: sriov_enable() adds VFs before it sets ``num_VFs`` and sriov_disable() removes
  them before clearing it, so ``virtfn0..virtfn{k-1}`` with k == ``sriov_numvfs`` is the only
  state derived from. Both walk the indexes upwards (sriov_add_vfs(), sriov_del_vfs()), so
  the links of a PF are always one run of indexes: while VFs are added ``sriov_numvfs`` still
  reads 0, and while they are removed ``virtfn0`` goes first. A run is ``0..k-1`` exactly
  when ``virtfn0`` and ``virtfn{k-1}`` are there and ``virtfn{k}`` is not (:func:`indexes`:
  one readlink, not a listing of the PF's directory); anything else reads the links;
- attributes absent or not decimal, offset 0, stride 0 with more than one VF (the kernel
  refuses both: compute_max_vf_buses()), or a VF past bus 255 (sriov_enable() refuses VFs
  beyond the bus range);
- a derived address not in the listing of ``bus/pci/devices`` (removed, or never a device;
  the caller checks: usually the listing has them right after their PF, one slice compare);
- the SR-IOV capability, when the config space could be parsed (root reads all of it), says
  another NumVFs, offset or stride than sysfs (:func:`agrees`);
- the first and the last ``virtfnN`` are read for every PF (two readlinks per PF, not per
  VF): they pin offset and stride, the two numbers the rule has;
- after the batch: a derived VF without a readable ``driver_override`` (every PCI function
  has one) may be gone; its PF's links are read.

What is not checked per VF: that each derived VF's ``physfn`` is this PF (a readlink per VF,
the cost this saves). The kernel cannot make links that break the rule between a correct
first and last one; only a tree edited by hand can, and for PFs with one or two VFs the
sample is every link.
"""

from __future__ import annotations

from _collections_abc import Mapping  # collections.abc without the collections package

from vfctl.host.sysfs import PCI_DEVICES, Host, decimal
from vfctl.pci import address as pciaddr

ATTRS = ("sriov_numvfs", "sriov_offset", "sriov_stride")  # read once per PF, kept for PF records

Rule = tuple[int, int, int]  # (VFs, offset, stride)


def _dec(raw: str | None) -> int | None:
    """A count as sysfs spells it: up to 5 digits and maybe the newline."""
    if raw is None:
        return None
    digits = raw[:-1] if raw.endswith("\n") else raw
    return int(digits) if decimal(digits, 5) else None


def indexes(host: Host, pf: str, raw: Mapping[str, str | None]) -> list[int] | None:
    """``0..k-1`` for ``sriov_numvfs`` k >= 1 with no ``virtfn{k}`` (the first and last
    links are :func:`sampled` reads); None: the PF's listing says which links there are."""
    k = _dec(raw.get("sriov_numvfs"))
    if not k or host.link_name(f"{PCI_DEVICES}/{pf}/virtfn{k}") is not None:
        return None
    return list(range(k))


def rule(pf: str, idx: list[int] | None, raw: Mapping[str, str | None]) -> Rule | None:
    """(VFs, offset, stride) when this PF's VFs may be derived; None: read its links."""
    k = len(idx) if idx is not None else 0
    n, offset, stride = (_dec(raw.get(a)) for a in ATTRS)
    if not k or idx != list(range(k)) or n != k or offset is None or stride is None:
        return None
    if offset == 0 or (stride == 0 and k > 1) or not pciaddr.looks_like_address(pf):
        return None
    if pciaddr.parse(pf).routing_id + offset + stride * (k - 1) > 0xFFFF:
        return None
    return (k, offset, stride)


def run(pf: str, r: Rule) -> list[str]:
    """The derived addresses of the PF's VFs, in index order."""
    k, offset, stride = r
    return pciaddr.vf_address_run(pf, offset, stride, k)


def sampled(host: Host, pf: str, out: list[str]) -> bool:
    """Whether the first and the last ``virtfnN`` link name the derived addresses ``out``
    (the caller has checked that each is a listed device)."""
    d = f"{PCI_DEVICES}/{pf}"
    if host.link_name(f"{d}/virtfn0") != out[0]:
        return False
    return len(out) == 1 or host.link_name(f"{d}/virtfn{len(out) - 1}") == out[-1]


def agrees(cs: Mapping[str, object] | None, r: Rule) -> bool:
    """Whether the parsed SR-IOV capability (if any) says the same NumVFs, offset, stride."""
    sr = cs.get("sriov") if cs else None
    if not isinstance(sr, Mapping):
        return True  # not parsed (a short read without root): sysfs is the kernel's own
    return (sr.get("num_vfs"), sr.get("vf_offset"), sr.get("vf_stride")) == r
