"""`vfctl recover` connects with this invocation's settings; the journal can only name them.

A journal is a file: one that names another PVE host, asks to skip TLS verification, or
points at a "token file" must not make root send its API token (or a file's contents)
anywhere. Each case below plants such a journal next to a TCP listener standing in for the
journal's PVE host: recover must refuse (exit 4) before any connection, and keep the journal.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from simcli import SimHost

from vfctl.backends import pve_client
from vfctl.errors import UsageError

PVE_ENV = ("VFCTL_PVE_HOST", "VFCTL_PVE_USER", "VFCTL_PVE_TOKEN_NAME", "VFCTL_PVE_TOKEN_VALUE",
           "VFCTL_PVE_TOKEN_FILE", "VFCTL_PVE_NODE")  # fmt: skip


class Listener:
    """Counts TCP connections: a stand-in for the PVE host a journal names."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._t.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def _plant(h: SimHost, conn: dict[str, object]) -> Path:
    undo = {"op": "proxmox.hostpci_remove", "target": "VM 101 hostpci0", "detail": "undo",
            "params": {"conn": conn, "node": "pve1", "vmid": 101, "slot": "hostpci0"},
            "undo": None}
    rec = {"pid": 1, "started": 0, "done": 1, "actions": [
        {"op": "proxmox.hostpci_add", "target": "VM 101 hostpci0", "detail": "add",
         "params": {"conn": conn}, "undo": undo}]}  # fmt: skip
    d = h.root / "run/vfctl"
    d.mkdir(parents=True, mode=0o700, exist_ok=True)
    p = d / "journal.json"
    p.write_text(json.dumps(rec))
    os.chmod(p, 0o600)
    return p


@pytest.mark.parametrize("case", ["other-host", "insecure", "local-now"])
def test_recover_refuses_a_journal_that_names_another_connection(
    case: str, host: SimHost, listener: Listener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "not-a-token"
    secret_file.write_text("root-only-contents\n")
    os.chmod(secret_file, 0o600)
    journal_host = f"127.0.0.1:{listener.port}"
    conn = {"mode": "https", "node": "pve1", "host": journal_host, "user": "vfctl@pve",
            "token_name": "ci", "token_file": str(secret_file), "insecure": case == "insecure",
            "ca": None, "timeout": 2}  # fmt: skip
    p = _plant(host, conn)
    for k in PVE_ENV:
        monkeypatch.delenv(k, raising=False)
    if case != "local-now":
        here = journal_host if case == "insecure" else f"127.0.0.1:{listener.port + 1}"
        monkeypatch.setenv("VFCTL_PVE_HOST", here)
        monkeypatch.setenv("VFCTL_PVE_USER", "vfctl@pve")
        monkeypatch.setenv("VFCTL_PVE_TOKEN_NAME", "ci")
        monkeypatch.setenv("VFCTL_PVE_TOKEN_VALUE", "the-current-secret")
    elif os.geteuid() != 0:
        pytest.skip("the local (pvesh) connection needs root")  # CI runs as root
    before = p.read_text()
    r = host("--backend", "proxmox", "recover", "--json")
    assert r.code == 4, (r.code, r.err)
    doc = json.loads(r.out)
    assert doc["error"]["kind"] == "refused" and doc["rolled_back"] == []
    want = "skipped TLS verification" if case == "insecure" else f"https://{journal_host}"
    assert want in r.err
    assert listener.connections == 0 and p.read_text() == before
    assert "root-only-contents" not in r.out + r.err


def test_token_file_must_be_owned_by_the_user(tmp_path: Path) -> None:
    """A 0600 file of another user is not a token file (it could be anyone's secret)."""
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")  # CI runs as root
    f = tmp_path / "token"
    f.write_text("S3CRET\n")
    os.chmod(f, 0o600)
    os.chown(f, 65534, 65534)
    s = pve_client.PveSettings(mode="https", node="n", host="h", user="u@pve",
                               token_name="t", token_file=str(f))  # fmt: skip
    with pytest.raises(UsageError, match="owned by uid 65534") as ei:
        pve_client.read_token_secret(s, {})
    assert "S3CRET" not in ei.value.message


def test_token_file_path_is_journaled_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"VFCTL_PVE_HOST": "h:8006", "VFCTL_PVE_USER": "u@pve", "VFCTL_PVE_TOKEN_NAME": "ci",
           "VFCTL_PVE_TOKEN_FILE": "token"}  # fmt: skip
    s = pve_client.settings_from_env("n", None, False, env)
    assert s.token_file == str(tmp_path / "token")
