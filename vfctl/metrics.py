"""Prometheus text exposition (format 0.0.4) of the host's VFs, their traffic, drift and runs.

Building the samples is pure (model, VF statistics, drift entries, last history record in;
text out); :func:`write_textfile` is the one writer, atomic for node_exporter's textfile
collector (it reads ``*.prom`` only, so the temporary name never gets scraped).

Names follow the Prometheus conventions: ``vfctl_`` prefix, base units (bytes, seconds),
``_total`` only on counters, and no ``_total`` on a gauge — so the PF's VF limit is
``vfctl_pf_vfs_max`` rather than a gauge called ``..._total``. Counter names mirror
node_exporter's ``node_network_*`` ones.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vfctl.errors import HostError, NotFoundError, UsageError
from vfctl.model import HostModel

TEXTFILE_NAME = "vfctl.prom"

# IFLA_VF_STATS_* attribute → (metric, help); broadcast/multicast are received packets
VF_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("rx_packets", "vfctl_vf_receive_packets_total", "Packets received by the VF."),
    ("tx_packets", "vfctl_vf_transmit_packets_total", "Packets sent by the VF."),
    ("rx_bytes", "vfctl_vf_receive_bytes_total", "Bytes received by the VF."),
    ("tx_bytes", "vfctl_vf_transmit_bytes_total", "Bytes sent by the VF."),
    ("broadcast", "vfctl_vf_receive_broadcast_total", "Broadcast packets received by the VF."),
    ("multicast", "vfctl_vf_receive_multicast_total", "Multicast packets received by the VF."),
    ("rx_dropped", "vfctl_vf_receive_drop_total", "Received packets the VF dropped."),
    ("tx_dropped", "vfctl_vf_transmit_drop_total", "Packets to send the VF dropped."),
)


@dataclass
class Family:
    name: str
    kind: str  # gauge | counter
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: Mapping[str, Any], value: float) -> None:
        self.samples.append(({k: "" if v is None else str(v) for k, v in labels.items()}, value))


def escape_label(value: str) -> str:
    """Label values: backslash, double quote and line feed are escaped (exposition format)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**63 else repr(float(v))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for labels, v in f.samples:
            body = ",".join(f'{k}="{escape_label(x)}"' for k, x in labels.items())
            lines.append(f"{f.name}{{{body}}} {_value(v)}" if body else f"{f.name} {_value(v)}")
    return "\n".join(lines) + "\n"


def families(
    m: HostModel,
    stats: Mapping[str, Sequence[Mapping[str, int] | None]],
    pools: Mapping[str, str] | None = None,
    drift: Mapping[str, Sequence[Mapping[str, Any]] | None] | None = None,
    last_run: Mapping[str, Any] | None = None,
) -> list[Family]:
    """All families: ``stats`` is per PF netdev, indexed by VF; ``drift`` per profile path
    (None: the profile could not be compared)."""
    vfs = Family("vfctl_pf_vfs", "gauge", "VFs enabled on the PF (sriov_numvfs).")
    vmax = Family("vfctl_pf_vfs_max", "gauge", "VFs the PF driver allows (sriov_totalvfs).")
    info = Family("vfctl_vf_info", "gauge", "One per VF: its address, driver, VM and pool.")
    counters = {attr: Family(name, "counter", why) for attr, name, why in VF_COUNTERS}
    for pf in m.pfs:
        pl = {"pf": pf.address, "netdev": pf.netdev, "driver": pf.driver}
        vfs.add(pl, pf.num_vfs)
        vmax.add(pl, pf.total_vfs)
        per_vf = stats.get(pf.netdev or "", ())
        for v in pf.vfs:
            vm = ",".join(sorted(f"{a.backend}:{a.vm}" for a in v.attached_to))
            info.add(
                {"pf": pf.address, "vf": v.index, "address": v.address, "driver": v.driver,
                 "vm": vm, "pool": (pools or {}).get(v.address)},
                1,
            )  # fmt: skip
            s = per_vf[v.index] if v.index < len(per_vf) else None
            if s is None:
                continue
            for attr, fam in counters.items():
                if attr in s:
                    fam.add({"pf": pf.address, "vf": v.index}, s[attr])
    out = [vfs, vmax, info, *counters.values()]
    if drift is not None:
        d = Family("vfctl_drift", "gauge", "1 when the host differs from the profile at this key.")
        n = Family("vfctl_drift_keys", "gauge", "Profile keys that differ from the host.")
        bad = Family("vfctl_drift_error", "gauge", "1 when the profile could not be compared.")
        for profile, entries in drift.items():
            bad.add({"profile": profile}, int(entries is None))
            if entries is None:
                continue
            for e in entries:
                vf = "" if e["vf"] is None else e["vf"]
                d.add(
                    {"profile": profile, "pf": e["pf"], "vf": vf, "key": e["key"]},
                    int(e["drifted"]),
                )
            n.add({"profile": profile}, sum(1 for e in entries if e["drifted"]))
        out += [d, n, bad]
    if last_run is not None:
        ts = Family(
            "vfctl_last_run_timestamp_seconds", "gauge", "When the last mutating run started."
        )
        ok = Family("vfctl_last_run_success", "gauge", "1 when the last mutating run succeeded.")
        ts.add({}, float(last_run.get("time") or 0))
        ok.add({}, 1 if last_run.get("success") else 0)
        out += [ts, ok]
    return out


def write_textfile(directory: str, text: str, name: str = TEXTFILE_NAME) -> str:
    """Write ``text`` to DIRECTORY/NAME atomically (temporary file, fsync, rename)."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"--textfile {directory}: no such directory") from None
    except OSError as e:
        raise UsageError(
            f"--textfile {directory}: not a directory ({os.strerror(e.errno or 0)})"
        ) from None
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644, dir_fd=dfd)
        except OSError as e:
            raise HostError(f"{directory}/{tmp}: {os.strerror(e.errno or 0)}") from None
        try:
            os.fchmod(fd, 0o644)  # node_exporter runs as its own user: it must read the file
            data = text.encode()
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                raise HostError(f"{directory}/{name} is a directory")
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(dfd)
    return os.path.join(directory, name)
