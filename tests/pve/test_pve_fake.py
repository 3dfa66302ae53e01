"""The fake PVE server itself: it must refuse what the real schema and qemu-server refuse."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from conftest import TOKEN_NAME, TOKEN_SECRET, TOKEN_USER, Tls
from fakepve import FakePve, Schema, Server, perl_re

AUTH = {"Authorization": f"PVEAPIToken={TOKEN_USER}!{TOKEN_NAME}={TOKEN_SECRET}"}


def call(
    server: Server,
    tls: Tls,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> requests.Response:
    url = f"https://127.0.0.1:{server.port}/api2/json{path}"
    kw: dict[str, Any] = {"data": params} if method in ("POST", "PUT") else {"params": params}
    return requests.request(
        method, url, headers=AUTH if headers is None else headers, verify=tls.ca, timeout=5, **kw
    )


CFG = "/nodes/pve1/qemu/101/config"


def test_perl_pattern_conversion() -> None:
    r = perl_re(
        "(?^:(?^:(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?)"
        "(;(?^:(?:[a-f0-9]{4,}:)?[a-f0-9]{2}:[a-f0-9]{2}(?:\\.[a-f0-9])?))*)"
    )
    assert r.match("0000:03:10.2;03:11")
    assert not r.match("0000:03:10.2x")
    assert not r.match("0000:03:1A.2")  # uppercase is not allowed


def test_reply_shape_and_token_header(server: Server, tls: Tls) -> None:
    r = call(server, tls, "GET", "/version")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert set(r.json()) == {"data"} and r.json()["data"]["release"] == "9.1"
    for bad in (
        f"PVEAPIToken={TOKEN_USER}:{TOKEN_NAME}={TOKEN_SECRET}",  # PBS separator
        f"PVEAPIToken={TOKEN_USER}!{TOKEN_NAME}={TOKEN_SECRET}x",
        f"PVEAPIToken {TOKEN_USER}!{TOKEN_NAME}={TOKEN_SECRET}",
    ):
        assert (
            call(server, tls, "GET", "/version", headers={"Authorization": bad}).status_code == 401
        )
    assert call(server, tls, "GET", "/version", headers={}).status_code == 401


@pytest.mark.parametrize(
    "params, bad_key",
    [
        ({"hostpci0": "mapping=m1", "bogus": "1"}, "bogus"),
        ({"hostpci16": "mapping=m1"}, "hostpci16"),  # 16 slots: hostpci0..15
        ({"hostpci0": "mapping=m1,pcie=2"}, "hostpci0"),  # not a boolean word
        ({"hostpci0": "mapping=m1,pcie=1,pcie=0"}, "hostpci0"),  # duplicate key
        ({"hostpci0": "0000:03:10.2,03:10.4"}, "hostpci0"),  # two default-key parts
        ({"hostpci0": "mapping=m1,colour=red"}, "hostpci0"),
        ({"hostpci0": "mapping=1bad"}, "hostpci0"),  # pve-configid
        ({"hostpci0": "host=0000:03:10.2", "skiplock": "true"}, "skiplock"),  # booleans: 0/1 only
        ({"hostpci0": "mapping=m1", "digest": "x" * 41}, "digest"),
        ({"delete": "hostpci0,bad name!"}, "delete"),
    ],
)
def test_schema_refusals(server: Server, tls: Tls, params: dict[str, str], bad_key: str) -> None:
    r = call(server, tls, "PUT", CFG, **params)
    assert r.status_code == 400, r.text
    assert r.reason == "Parameter verification failed."
    assert bad_key in r.json()["errors"]


def test_booleans_words_inside_property_strings(fake: FakePve) -> None:
    props = Schema().formats["pve-qm-hostpci"]["properties"]
    parsed = Schema().property_string(props, "0000:03:10.2,pcie=on,rombar=No")
    assert (parsed["host"], parsed["pcie"], parsed["rombar"]) == ("0000:03:10.2", 1, 0)


def test_host_xor_mapping_and_token_restriction(server: Server, tls: Tls, fake: FakePve) -> None:
    with fake.edit() as st:
        st["mappings"]["m1"] = {"map": ["node=pve1,path=0000:03:10.2,id=8086:10ed"]}
    r = call(server, tls, "PUT", CFG, hostpci0="host=0000:03:10.2,mapping=m1")
    assert r.status_code == 400
    r = call(server, tls, "PUT", CFG, hostpci0="host=0000:03:10.2")
    assert r.status_code == 403
    assert "only root can set 'hostpci0' config for non-mapped devices" in r.reason
    r = call(server, tls, "PUT", CFG, hostpci0="mapping=m1,pcie=1")
    assert r.status_code == 200 and r.json() == {"data": None}
    assert fake.read()["vms"]["101"]["config"]["hostpci0"] == "mapping=m1,pcie=1"


def test_token_privileges_are_checked(server: Server, tls: Tls, fake: FakePve) -> None:
    with fake.edit() as st:
        st["tokens"][f"{TOKEN_USER}!{TOKEN_NAME}"]["privs"] = ["VM.Audit"]
        st["mappings"]["m1"] = {"map": ["node=pve1,path=0000:03:10.2,id=8086:10ed"]}
    r = call(server, tls, "PUT", CFG, hostpci0="mapping=m1")
    assert r.status_code == 403
    r = call(
        server,
        tls,
        "POST",
        "/cluster/mapping/pci",
        id="m2",
        map="node=pve1,path=0000:03:10.4,id=8086:10ed",
    )
    assert r.status_code == 403
    assert "m2" not in fake.read()["mappings"]


def test_digest_mismatch_and_pending(server: Server, tls: Tls, fake: FakePve) -> None:
    with fake.edit() as st:
        st["mappings"]["m1"] = {"map": ["node=pve1,path=0000:03:10.2,id=8086:10ed"]}
        st["vms"]["101"]["status"] = "running"
    digest = call(server, tls, "GET", CFG).json()["data"]["digest"]
    assert len(digest) == 40
    with fake.edit() as st:
        st["vms"]["101"]["config"]["memory"] = 4096  # someone else writes
    r = call(server, tls, "PUT", CFG, hostpci0="mapping=m1", digest=digest)
    assert r.status_code == 500 and "detected modified configuration" in r.reason
    digest = call(server, tls, "GET", CFG).json()["data"]["digest"]
    assert call(server, tls, "PUT", CFG, hostpci0="mapping=m1", digest=digest).status_code == 200
    cur = call(server, tls, "GET", CFG, current=1).json()["data"]
    assert "hostpci0" not in cur  # running: not hot-plugged
    assert call(server, tls, "GET", CFG).json()["data"]["hostpci0"] == "mapping=m1"
    pend = call(server, tls, "GET", "/nodes/pve1/qemu/101/pending").json()["data"]
    assert {"key": "hostpci0", "pending": "mapping=m1"} in pend


def test_mapping_map_items_validated(server: Server, tls: Tls, fake: FakePve) -> None:
    bad = [
        "node=pve1,path=0000:03:10.2",  # id missing
        "node=pve1,path=0000:03:10.2,id=0x8086:10ed",
        "node=pve_1,path=0000:03:10.2,id=8086:10ed",
        "node=pve1,path=0000:03:10.2,id=8086:10ed,iommugroup=x",
    ]
    for m in bad:
        r = call(server, tls, "POST", "/cluster/mapping/pci", id="m9", map=m)
        assert r.status_code == 400, m
    ok = [
        "node=pve1,path=0000:03:10.2,id=8086:10ed,iommugroup=4",
        "node=pve2,path=0000:03:10.2,id=8086:10ed",
    ]
    assert call(server, tls, "POST", "/cluster/mapping/pci", id="m9", map=ok).status_code == 200
    assert fake.read()["mappings"]["m9"]["map"] == ok


def test_unknown_path_and_missing_required(server: Server, tls: Tls) -> None:
    assert call(server, tls, "GET", "/nodes/pve1/lxc").status_code == 501
    r = call(server, tls, "POST", "/cluster/mapping/pci", id="m9")
    assert r.status_code == 400 and "map" in r.json()["errors"]
