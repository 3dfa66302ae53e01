"""Fixtures: a fake PVE cluster (state file), its HTTPS front with a test CA, and a fake pvesh."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attach_facts
import pytest
from fakepve import FakePve, Server
from pvecli import (  # noqa: F401  (constants for the test modules; CLI fixtures)
    NODE,
    TOKEN_NAME,
    TOKEN_SECRET,
    TOKEN_USER,
    _pve_template,
    pve,
    root_pve,
    simroot,
    token_pve,
)

from vfctl.backends.base import AttachRequest
from vfctl.backends.proxmox import ProxmoxBackend
from vfctl.backends.pve_client import PveApi, PveSettings
from vfctl.host.open import open_host
from vfctl.model import PF, VF
from vfctl.plan import Action, Context, Result, execute

HERE = Path(__file__).parent
TOKEN_PRIVS = [
    "VM.Audit",
    "VM.Config.HWType",
    "Mapping.Use",
    "Mapping.Modify",
    "Mapping.Audit",
    "Sys.Audit",
]


@dataclass
class Tls:
    ca: str
    cert: str
    key: str


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 (EC keys: fast to make)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vfctl test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "cert.pem").write_bytes(cert.public_bytes(pem))
    (d / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Tls(str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem"))


def vm(node: str, name: str, status: str = "stopped", **config: Any) -> dict[str, Any]:
    return {
        "node": node,
        "name": name,
        "status": status,
        "config": {"name": name, "memory": 2048, **config},
        "pending": {},
        "pending_delete": [],
    }


@pytest.fixture
def fake(tmp_path: Path) -> FakePve:
    st = FakePve.initial(
        ["pve1", "pve2", "pve3"],
        tokens={f"{TOKEN_USER}!{TOKEN_NAME}": {"secret": TOKEN_SECRET, "privs": TOKEN_PRIVS}},
    )
    st["vms"] = {
        "101": vm("pve1", "web", machine="q35"),
        "102": vm("pve1", "db"),  # i440fx (machine unset)
        "103": vm("pve2", "far", machine="q35"),
        "104": vm("pve3", "third", machine="q35"),
    }
    f = FakePve(tmp_path / "pve-state.json")
    f.write(st)
    return f


@pytest.fixture
def server(fake: FakePve, tls: Tls) -> Iterator[Server]:
    with Server(fake, tls.cert, tls.key) as s:
        yield s


@pytest.fixture
def token_env(server: Server) -> dict[str, str]:
    return {
        "VFCTL_PVE_HOST": f"127.0.0.1:{server.port}",
        "VFCTL_PVE_USER": TOKEN_USER,
        "VFCTL_PVE_TOKEN_NAME": TOKEN_NAME,
        "VFCTL_PVE_TOKEN_VALUE": TOKEN_SECRET,
        "VFCTL_PVE_NODE": NODE,
    }


PRESENT = ("0000:03:00.0", *(f"0000:03:1{i // 4}.{(i % 4) * 2}" for i in range(8)))


def pci_present(root: Path, addrs: tuple[str, ...] = PRESENT) -> None:
    """The node's PCI listing (what function-less ids expand to): directories suffice."""
    for a in addrs:
        (root / "sys/bus/pci/devices" / a).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def token_backend(token_env: dict[str, str], tls: Tls, tmp_path: Path) -> ProxmoxBackend:
    pci_present(tmp_path / "hostroot")
    return ProxmoxBackend.from_env(
        node=None, ca=tls.ca, insecure=False, env=token_env, root=str(tmp_path / "hostroot")
    )


@pytest.fixture
def pvesh(tmp_path: Path, fake: FakePve, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``pvesh`` on PATH that runs the fake against the same state file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "pvesh"
    # -S: the fake needs only the stdlib, and skipping site makes each call ~3x faster
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -S {HERE / "fakepve.py"} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKEPVE_STATE", str(fake.state_path))
    return shim


@pytest.fixture
def local_backend(pvesh: Path, tmp_path: Path) -> ProxmoxBackend:
    settings = PveSettings(mode="local", node=NODE)
    pci_present(tmp_path / "hostroot")
    return ProxmoxBackend(PveApi(settings, {}), settings, open_host(tmp_path / "hostroot"))


def make_pf(index: int = 3, netdev: str = "eth2") -> tuple[PF, VF]:
    """An Intel 82599-like PF 0000:03:00.0 whose VFs sit at 03:10.0, 03:10.2, … (stride 2)."""
    pf = attach_facts.pf(netdev=netdev)
    vf = pf.vf(index)
    assert vf is not None
    return pf, vf


def request(vmref: str, index: int = 3, force: bool = False, **options: Any) -> AttachRequest:
    pf, vf = make_pf(index)
    opts: dict[str, Any] = {
        "pcie": None,
        "rombar": None,
        "mapping": None,
        "driver_keep": False,
        "pve_node": None,
    }
    opts.update(options)
    return AttachRequest(vm=vmref, pf=pf, vf=vf, force=force, options=opts)


@pytest.fixture
def run(tmp_path: Path) -> Callable[[ProxmoxBackend, list[Action]], Result]:
    """Execute a plan through the real engine, on the backend instance that planned it."""
    root = tmp_path / "hostroot"
    root.mkdir(exist_ok=True)

    def _run(be: ProxmoxBackend, actions: list[Action]) -> Result:
        ctx = Context(open_host(root), backends=[be])  # ops run on the instance that planned
        return execute(ctx, actions)

    return _run
