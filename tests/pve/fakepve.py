"""A fake Proxmox VE API that validates every request against the real PVE 9.1 schema.

One handler (``FakePve.handle``) serves two fronts: a real HTTP/TLS server on 127.0.0.1
(``serve``) shaped like pve-http-server, and a ``pvesh`` command (``pvesh_main``) with
pvesh's argv, output and stderr conventions. Both share one JSON state file (flock-guarded),
so a test can set up a cluster, run vfctl through either front and read back what happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import json
import re
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "data" / "schema-subset.json"
ROOT = "root@pam"
TRUE_WORDS = {"1", "on", "yes", "true"}
FALSE_WORDS = {"0", "off", "no", "false"}
DIGEST_MSG = "detected modified configuration - file changed by other user? Try again."
# pmxcfs not running yet (early boot): what pvesh prints when its IPC socket refuses
IPCC_REFUSED = (
    "ipcc_send_rec[1] failed: Connection refused\n"
    "ipcc_send_rec[2] failed: Connection refused\n"
    "ipcc_send_rec[3] failed: Connection refused\n"
    "Unable to load access control list: Connection refused\n"
)
_TOKEN_RE = re.compile(r"^PVEAPIToken=([^\s!=@]+@[^\s!=@]+)!([A-Za-z][A-Za-z0-9._-]*)=(\S+)$")


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def perl_re(pattern: str) -> re.Pattern[str]:
    """Perl regex stringification -> Python, anchored like JSONSchema.pm does."""
    py = pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:")
    return re.compile(f"^(?:{py})$")


def split_list(value: str) -> list[str]:
    if "\0" in value:
        return value.split("\0")
    return re.sub(r"[,;]", " ", value).split()


class Schema:
    """The subset of pve-common's JSONSchema.pm that the tested paths need."""

    def __init__(self, path: Path = SCHEMA_PATH) -> None:
        doc = json.loads(path.read_text())
        self.paths: dict[str, Any] = doc["paths"]
        self.formats: dict[str, Any] = doc["formats"]
        self.indexed: dict[str, Any] = doc["indexed_properties"]
        self._re_cache: dict[str, re.Pattern[str]] = {}

    def route(self, method: str, path: str) -> tuple[dict[str, Any], dict[str, str]]:
        segs = [s for s in path.split("/") if s]
        best: tuple[int, str, dict[str, str]] | None = None
        for tmpl in self.paths:
            tsegs = [s for s in tmpl.split("/") if s]
            if len(tsegs) != len(segs):
                continue
            vars_: dict[str, str] = {}
            literal = 0
            for t, s in zip(tsegs, segs, strict=True):
                if t.startswith("{") and t.endswith("}"):
                    vars_[t[1:-1]] = urllib.parse.unquote(s)
                elif t == s:
                    literal += 1
                else:
                    break
            else:
                if best is None or literal > best[0]:
                    best = (literal, tmpl, vars_)
        if best is None:
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        info = self.paths[best[1]]["methods"].get(method)
        if info is None:
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        return {**info, "_template": best[1]}, best[2]

    def properties(self, params_schema: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in (params_schema.get("properties") or {}).items():
            if k.endswith("[n]"):
                base = k[:-3]
                count = self.indexed[k]["count"]
                for i in range(count):
                    out[f"{base}{i}"] = v
            else:
                out[k] = v
        return out

    def _regex(self, pattern: str) -> re.Pattern[str]:
        if pattern not in self._re_cache:
            self._re_cache[pattern] = perl_re(pattern)
        return self._re_cache[pattern]

    def validate(self, params_schema: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Typed parameters, or ApiError 400 with per-parameter errors like RESTHandler."""
        props = self.properties(params_schema)
        errors: dict[str, str] = {}
        out: dict[str, Any] = {}
        for k, v in params.items():
            if k not in props:
                if not params_schema.get("additionalProperties", 1):
                    errors[k] = (
                        "property is not defined in schema and the schema does not "
                        "allow additional properties"
                    )
                continue
            try:
                out[k] = self.check(props[k], v, in_propstring=False)
            except ValueError as exc:
                errors[k] = str(exc)
        for k, s in props.items():
            if not s.get("optional") and k not in params:
                errors[k] = "property is missing and it is not optional"
            req = s.get("requires")
            if req and k in params and req not in params:
                errors[k] = f"missing property - '{k}' requires this property"
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors)
        return out

    def check(self, s: dict[str, Any], v: Any, *, in_propstring: bool) -> Any:
        t = s.get("type", "string")
        if t == "array":
            items = v if isinstance(v, list) else [v]
            return [self.check(s.get("items", {}), x, in_propstring=in_propstring) for x in items]
        if isinstance(v, list):
            v = "\0".join(str(x) for x in v)
        if isinstance(v, bool):
            v = "1" if v else "0"
        v = str(v)
        if t == "boolean":
            lv = v.lower() if in_propstring else v
            if lv in (TRUE_WORDS if in_propstring else {"1"}):
                return 1
            if lv in (FALSE_WORDS if in_propstring else {"0"}):
                return 0
            raise ValueError(f"type check ('boolean') failed - got '{v}'")
        if t == "integer":
            if not re.fullmatch(r"[+-]?\d+", v):
                raise ValueError(f"type check ('integer') failed - got '{v}'")
            n = int(v)
            if "minimum" in s and n < s["minimum"]:
                raise ValueError(f"value must have a minimum value of {s['minimum']}")
            if "maximum" in s and n > s["maximum"]:
                raise ValueError(f"value must have a maximum value of {s['maximum']}")
        if t == "number" and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v):
            raise ValueError(f"type check ('number') failed - got '{v}'")
        if "maxLength" in s and len(v) > s["maxLength"]:
            raise ValueError(f"value may only be {s['maxLength']} characters long")
        if "enum" in s and v not in s["enum"]:
            raise ValueError(
                f"value '{v}' does not have a value in the enumeration '{', '.join(s['enum'])}'"
            )
        if "pattern" in s and not self._regex(s["pattern"]).match(v):
            raise ValueError("value does not match the regex pattern")
        fmt = s.get("format")
        if isinstance(fmt, dict):
            return self.property_string(fmt, v)
        if isinstance(fmt, str):
            return self.named_format(fmt, v)
        return int(v) if t == "integer" else v

    def named_format(self, name: str, v: str) -> Any:
        f = self.formats.get(name)
        if f is None:
            return v  # formats outside the subset: accepted as strings (README "Not extracted")
        if f["kind"] == "regex":
            if not re.match(f["regex_python"], v) or "\n" in v:
                raise ValueError(f["error"].replace("<value>", v))
            if name == "pve-vmid":
                return int(v)
            return v
        if f["kind"] == "list-of":
            items = split_list(v)
            if f["item_format"] in self.formats:
                for x in items:
                    self.named_format(f["item_format"], x)
            return items
        if f["kind"] == "property-string":
            return self.property_string(f["properties"], v)
        return v

    def property_string(self, props: dict[str, Any], v: str) -> dict[str, Any]:
        """ParseUtils/JSONSchema parse_property_string: split, default key, no duplicates."""
        default_key = next((k for k, s in props.items() if s.get("default_key")), None)
        res: dict[str, str] = {}
        for part in v.split(","):
            if not part.strip():
                continue
            if "=" in part:
                k, val = part.split("=", 1)
                alias = props.get(k, {}).get("alias")
                k = alias or k
                if k in res:
                    raise ValueError(
                        f"invalid format - duplicate key in comma-separated list property: {k}"
                    )
                res[k] = val
            elif default_key is not None:
                if default_key in res:
                    raise ValueError(
                        f"invalid format - duplicate key in comma-separated list "
                        f"property: {default_key}"
                    )
                res[default_key] = part
            else:
                raise ValueError(
                    f"invalid format - value without key, but schema does not "
                    f"define a default key: {part}"
                )
        out: dict[str, Any] = {"_raw": v}  # the config stores what was sent, verbatim
        for k, val in res.items():
            if k not in props:
                raise ValueError(
                    f"invalid format - {k}: property is not defined in schema and "
                    "the schema does not allow additional properties"
                )
            try:
                out[k] = self.check(props[k], val, in_propstring=True)
            except ValueError as exc:
                raise ValueError(f"invalid format - {k}: {exc}") from None
        for k, s in props.items():
            if not s.get("optional") and not s.get("alias") and k not in out:
                raise ValueError(
                    f"invalid format - {k}: property is missing and it is not optional"
                )
        return out


def _sha(obj: Any, algo: str = "sha1") -> str:
    return hashlib.new(algo, json.dumps(obj, sort_keys=True).encode()).hexdigest()


class FakePve:
    """The cluster state (a JSON file) and the API handlers."""

    def __init__(self, state_path: Path, schema: Schema | None = None) -> None:
        self.state_path = Path(state_path)
        self.schema = schema or Schema()

    # -- VM start/stop on a node backed by a simulated host (fakepve_start) --
    def start_vm(self, vmid: int, root: Path, now: float | None = None) -> dict[str, list[str]]:
        import fakepve_start

        return fakepve_start.start(self, vmid, root, now)

    def stop_vm(self, vmid: int, root: Path) -> None:
        import fakepve_start

        fakepve_start.stop(self, vmid, root)

    # -- state --
    @staticmethod
    def initial(nodes: list[str], tokens: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "nodes": nodes,
            "version": {"version": "9.1.2", "release": "9.1", "repoid": "0123abcd"},
            "tokens": tokens or {},
            "vms": {},
            "mappings": {},
            "tamper": [],
            "log": [],
        }

    def write(self, state: dict[str, Any]) -> None:
        with self._locked():
            self.state_path.write_text(json.dumps(state))

    def read(self) -> dict[str, Any]:
        with self._locked():
            data: dict[str, Any] = json.loads(self.state_path.read_text())
            return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(str(self.state_path) + ".lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            yield

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        with self._locked():
            st = json.loads(self.state_path.read_text())
            yield st
            self.state_path.write_text(json.dumps(st))

    # -- entry point --
    def handle(self, method: str, path: str, raw: dict[str, Any], identity: str) -> Any:
        info, pvars = self.schema.route(method, path)
        with self._locked():
            st = json.loads(self.state_path.read_text())
            st["log"].append({"method": method, "path": path, "identity": identity, "params": raw})
            try:
                if identity != ROOT and not info.get("allowtoken", 1):
                    raise ApiError(403, "Permission check failed (API tokens not allowed)")
                params = self.schema.validate(info["parameters"], {**raw, **pvars})
                self._check_perm(st, identity, info.get("permissions") or {}, params)
                return self._dispatch(st, method, info["_template"], params, identity)
            finally:
                self.state_path.write_text(json.dumps(st))

    # -- permissions (tokens carry a flat privilege set; root@pam has everything) --
    def _privs(self, st: dict[str, Any], identity: str) -> set[str] | None:
        if identity == ROOT:
            return None
        return set(st["tokens"][identity].get("privs", []))

    def _require(
        self, st: dict[str, Any], identity: str, privs: list[str], any_: bool, what: str
    ) -> None:
        have = self._privs(st, identity)
        if have is None:
            return
        ok = bool(set(privs) & have) if any_ else set(privs) <= have
        if not ok:
            raise ApiError(403, f"Permission check failed ({what}, {'|'.join(privs)})")

    def _check_perm(
        self, st: dict[str, Any], identity: str, perm: dict[str, Any], params: dict[str, Any]
    ) -> None:
        if "check" not in perm:
            return
        self._eval_check(st, identity, perm["check"], params)

    def _eval_check(
        self, st: dict[str, Any], identity: str, chk: list[Any], params: dict[str, Any]
    ) -> None:
        if chk[0] == "or":
            last: ApiError | None = None
            for sub in chk[1:]:
                try:
                    self._eval_check(st, identity, sub, params)
                    return
                except ApiError as exc:
                    last = exc
            assert last is not None
            raise last
        if chk[0] == "perm":
            path = re.sub(r"\{(\w+)\}", lambda m: str(params.get(m[1], "")), chk[1])
            self._require(st, identity, chk[2], "any" in chk[3:], path)

    # -- handlers --
    def _dispatch(
        self, st: dict[str, Any], method: str, tmpl: str, p: dict[str, Any], identity: str
    ) -> Any:
        if tmpl == "/version":
            return st["version"]
        if tmpl == "/nodes":
            return [{"node": n, "status": "online"} for n in st["nodes"]]
        if tmpl == "/cluster/resources":
            out: list[dict[str, Any]] = [
                {"id": f"node/{n}", "type": "node", "node": n, "status": "online"}
                for n in st["nodes"]
            ]
            if p.get("type") == "node":
                return out
            vms = [
                {
                    "id": f"qemu/{vmid}",
                    "type": "qemu",
                    "vmid": int(vmid),
                    "name": vm.get("name"),
                    "node": vm["node"],
                    "status": vm["status"],
                    "template": 0,
                }
                for vmid, vm in sorted(st["vms"].items())
            ]
            return vms if p.get("type") == "vm" else out + vms
        if tmpl == "/nodes/{node}/qemu":
            return [
                {"vmid": int(v), "name": vm.get("name"), "status": vm["status"]}
                for v, vm in st["vms"].items()
                if vm["node"] == p["node"]
            ]
        if tmpl.startswith("/nodes/{node}/qemu/{vmid}"):
            vm = self._vm(st, p)
            if tmpl.endswith("/config"):
                if method == "GET":
                    return self._get_config(vm, bool(p.get("current")))
                return self._set_config(st, vm, p, identity, method)
            if tmpl.endswith("/pending"):
                return self._get_pending(vm)
            if tmpl.endswith("/status/current"):
                return {
                    "vmid": p["vmid"],
                    "status": vm["status"],
                    "name": vm.get("name"),
                    "ha": {"managed": 0},
                }
        if tmpl == "/cluster/mapping/pci":
            if method == "GET":
                return [{"id": k, **m} for k, m in sorted(st["mappings"].items())]
            if p["id"] in st["mappings"]:
                # pve-manager PVE/API2/Cluster/Mapping/PCI.pm `create`, inside lock_pci_config
                raise ApiError(
                    500, f"create hardware mapping failed: pci ID '{p['id']}' already defined"
                )
            st["mappings"][p["id"]] = self._mapping_from(p, {})
            return None
        if tmpl == "/cluster/mapping/pci/{id}":
            m = st["mappings"].get(p["id"])
            if m is None:
                raise ApiError(500, f"PCI mapping '{p['id']}' does not exist")
            if method == "GET":
                return {"id": p["id"], **m, "digest": _sha(st["mappings"], "sha256")}
            if method == "DELETE":
                del st["mappings"][p["id"]]
                return None
            if "digest" in p and p["digest"] != _sha(st["mappings"], "sha256"):
                raise ApiError(500, DIGEST_MSG)
            for k in p.get("delete") or []:
                m.pop(k, None)
            st["mappings"][p["id"]] = self._mapping_from(p, m)
            return None
        raise ApiError(501, f"Method '{method} {tmpl}' not implemented in the fake")

    @staticmethod
    def _mapping_from(p: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        new = dict(old)
        if "map" in p:
            new["map"] = [e["_raw"] for e in p["map"]]
        if "description" in p:
            new["description"] = p["description"]
        return new

    def _vm(self, st: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        vm = st["vms"].get(str(p["vmid"]))
        if vm is None or vm["node"] != p["node"]:
            raise ApiError(
                500,
                f"Configuration file 'nodes/{p['node']}/qemu-server/"
                f"{p['vmid']}.conf' does not exist",
            )
        vm.setdefault("pending", {})
        vm.setdefault("pending_delete", [])
        return vm

    @staticmethod
    def _digest(vm: dict[str, Any]) -> str:
        return _sha([vm["config"], vm["pending"], sorted(vm["pending_delete"])])

    def _get_config(self, vm: dict[str, Any], current: bool) -> dict[str, Any]:
        cfg = dict(vm["config"])
        if not current:
            cfg.update(vm["pending"])
            for k in vm["pending_delete"]:
                cfg.pop(k, None)
        cfg["digest"] = self._digest(vm)
        return cfg

    @staticmethod
    def _get_pending(vm: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for k in sorted(set(vm["config"]) | set(vm["pending"]) | set(vm["pending_delete"])):
            item: dict[str, Any] = {"key": k}
            if k in vm["config"]:
                item["value"] = vm["config"][k]
            if k in vm["pending"]:
                item["pending"] = vm["pending"][k]
            if k in vm["pending_delete"]:
                item["delete"] = 1
            out.append(item)
        return out

    def _set_config(
        self, st: dict[str, Any], vm: dict[str, Any], p: dict[str, Any], identity: str, method: str
    ) -> Any:
        for t in st["tamper"]:  # another writer sneaks in between vfctl's read and write
            if t["vmid"] == p["vmid"] and t["times"] > 0 and "digest" in p:
                t["times"] -= 1
                vm["config"].update(t.get("set", {}))
                if "bump" in t:  # a different change every time
                    vm["config"][t["bump"]] = int(vm["config"].get(t["bump"], 1)) + 1
        if "digest" in p and p["digest"] != self._digest(vm):
            raise ApiError(500, DIGEST_MSG)
        meta = {
            "node",
            "vmid",
            "digest",
            "delete",
            "revert",
            "skiplock",
            "force",
            "background_delay",
        }
        sets = {k: v for k, v in p.items() if k not in meta}
        deletes = list(p.get("delete") or [])
        for k in deletes:
            if k in sets:
                raise ApiError(
                    400,
                    "Parameter verification failed.",
                    {k: f"unable to delete '{k}' - set and delete at the same time"},
                )
        merged = self._get_config(vm, current=False)
        for k in list(sets) + deletes:
            if k.startswith("hostpci"):
                self._hostpci_perm(st, identity, p["vmid"], k, sets.get(k, merged.get(k)))
            elif identity != ROOT:
                self._require(
                    st,
                    identity,
                    ["VM.Config.Options", "VM.Config.HWType"],
                    True,
                    f"/vms/{p['vmid']}",
                )
        running = vm["status"] == "running"
        for k in deletes:
            if running and k.startswith("hostpci"):
                vm["pending"].pop(k, None)
                if k in vm["config"] and k not in vm["pending_delete"]:
                    vm["pending_delete"].append(k)
            else:
                vm["config"].pop(k, None)
                vm["pending"].pop(k, None)
        for k in sets:
            raw = p[k]
            if running and k.startswith("hostpci"):  # qemu-server does not hot-plug hostpci
                vm["pending"][k] = self._raw_value(k, raw)
                if k in vm["pending_delete"]:
                    vm["pending_delete"].remove(k)
            else:
                vm["config"][k] = self._raw_value(k, raw)
        return None

    @staticmethod
    def _raw_value(k: str, v: Any) -> Any:
        return v["_raw"] if isinstance(v, dict) and "_raw" in v else v

    def _hostpci_perm(
        self, st: dict[str, Any], identity: str, vmid: int, key: str, value: Any
    ) -> None:
        """qemu-server's checks: HWType, host XOR mapping, raw host for root@pam only."""
        if identity != ROOT:
            self._require(st, identity, ["VM.Config.HWType"], False, f"/vms/{vmid}")
        if value is None:
            return
        parsed = (
            value
            if isinstance(value, dict)
            else self.schema.property_string(
                self.schema.formats["pve-qm-hostpci"]["properties"], str(value)
            )
        )
        if ("host" in parsed) == ("mapping" in parsed):
            raise ApiError(
                400,
                "Parameter verification failed.",
                {key: "either 'host' or 'mapping' must be set (not both)"},
            )
        if "mapping" in parsed:
            if parsed["mapping"] not in st["mappings"]:
                raise ApiError(500, f"PCI mapping '{parsed['mapping']}' does not exist")
            self._require(st, identity, ["Mapping.Use"], False, f"/mapping/pci/{parsed['mapping']}")
        elif identity != ROOT:
            raise ApiError(403, f"only root can set '{key}' config for non-mapped devices")


def make_fake(state_path: Path) -> FakePve:
    return FakePve(state_path)


# ---- HTTP front (pve-http-server conventions) ---------------------------------------------


def authenticate(st: dict[str, Any], header: str | None) -> str:
    if not header:
        raise ApiError(401, "No ticket")
    m = _TOKEN_RE.match(header)
    if not m:
        raise ApiError(401, "invalid token header")
    tokenid = f"{m[1]}!{m[2]}"
    tok = st["tokens"].get(tokenid)
    if tok is None or tok["secret"] != m[3]:
        raise ApiError(401, "authentication failure")
    return tokenid


def _form(raw: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in urllib.parse.parse_qsl(raw, keep_blank_values=True):
        if k in out:
            out[k] = [*out[k], v] if isinstance(out[k], list) else [out[k], v]
        else:
            out[k] = v
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakePve
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        try:
            if not url.path.startswith("/api2/json/"):
                raise ApiError(501, "Unsupported format")
            path = url.path[len("/api2/json") :]
            params: dict[str, Any] = {}
            if method in ("POST", "PUT") and body:
                if (self.headers.get("Content-Type") or "").startswith("application/json"):
                    params.update(json.loads(body))
                else:
                    params.update(_form(body))
            params.update(_form(url.query))
            identity = authenticate(self.fake.read(), self.headers.get("Authorization"))
            data = self.fake.handle(method, path, params, identity)
            self._reply(200, "OK", {"data": data})
        except ApiError as exc:
            doc: dict[str, Any] = {"data": None, "message": exc.message + "\n"}
            if exc.errors:
                doc["errors"] = exc.errors
            self._reply(exc.status, exc.message.replace("\n", " "), doc)

    def _reply(self, status: int, reason: str, doc: dict[str, Any]) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class Server:
    """The HTTPS server in a thread; ``port`` is chosen by the kernel."""

    def __init__(self, fake: FakePve, certfile: str, keyfile: str) -> None:
        handler = type("H", (_Handler,), {"fake": fake})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # keep-alive clients must not hold up teardown
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- pvesh front ------------------------------------------------------------------------


def pvesh_main(argv: list[str], state_path: str) -> int:
    """``pvesh get|create|set|delete <path> [-opt value]... [--output-format json]``."""
    verbs = {"get": "GET", "ls": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
    if len(argv) < 2 or argv[0] not in verbs:
        sys.stderr.write("ERROR: unknown command 'pvesh " + " ".join(argv[:1]) + "'\n")
        return 255
    if Path(state_path + ".early-boot").exists():
        # pmxcfs is not up: /etc/pve is an empty mount point and pvesh cannot reach it
        with open(state_path + ".early-boot", "a") as calls:
            calls.write(" ".join(argv) + "\n")
        sys.stderr.write(IPCC_REFUSED)
        return 255
    verb, path, rest = argv[0], argv[1], argv[2:]
    params: dict[str, Any] = {}
    output = "text"
    i = 0
    while i < len(rest):
        opt = rest[i]
        if not opt.startswith("-") or i + 1 >= len(rest):
            sys.stderr.write(f"400 unable to parse option\n{opt}: unable to parse option\n")
            return 255
        key, val = opt.lstrip("-"), rest[i + 1]
        i += 2
        if key == "output-format":
            output = val
            continue
        if key in params:
            params[key] = (
                [*params[key], val] if isinstance(params[key], list) else [params[key], val]
            )
        else:
            params[key] = val
    fake = make_fake(Path(state_path))
    try:
        data = fake.handle(verbs[verb], path, params, ROOT)
    except ApiError as exc:
        if exc.status == 400 and exc.errors:
            sys.stderr.write(f"400 {exc.message}\n")
            for k, v in exc.errors.items():
                sys.stderr.write(f"{k}: {v}\n")
            sys.stderr.write(f"pvesh {verb} <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
        elif exc.status == 500:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        elif exc.status == 501:
            sys.stderr.write(f"No '{verb}' handler defined for '{path}'\n")
        else:
            sys.stderr.write(f"{exc.status} {exc.message}\n")
        return 255
    if data is not None:
        if output.startswith("json"):
            sys.stdout.write(json.dumps(data) + "\n")
        else:
            sys.stdout.write(str(data) + "\n")
    return 0


if __name__ == "__main__":  # the pvesh shim execs this file
    import os

    sys.exit(pvesh_main(sys.argv[1:], os.environ["FAKEPVE_STATE"]))
