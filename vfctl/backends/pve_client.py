"""Connection to the PVE API: settings from env/flags, secret handling, error mapping.

Two modes, both through proxmoxer (imported only here, and only when connecting):
``local`` runs ``pvesh`` on the node as root (root@pam); ``https`` talks to the API with an
API token. The token secret is read from the environment or a private file at connect time
and never stored in params, journals, messages or argv.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vfctl.errors import BackendError, NotFoundError, UsageError

DEFAULT_TIMEOUT = 15
DIGEST_MISMATCH = "detected modified configuration"

# PVE's own formats (pve-access-control, PVE/Auth/Plugin.pm: $user_regex, $realm_regex; and
# PVE/AccessControl.pm: $token_subid_regex is the realm pattern); userids are at most 64 long.
USERID_RE = re.compile(r"[^\s:/!]{1,64}@[A-Za-z][A-Za-z0-9.\-_]{1,31}")
TOKEN_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9.\-_]{1,63}")
# PVE token secrets are UUIDs; accept any printable ASCII without spaces, nothing that could end
# a header line or smuggle a second one.
SECRET_RE = re.compile(r"[\x21-\x7e]{1,512}")
# pve-common PVE/JSONSchema.pm, pve_verify_node_name: the node goes into API paths
NODE_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
# a host name, IPv4 or [IPv6], optional port: nothing that could add a path, query or userinfo
HOST_RE = re.compile(r"([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?")
MAX_TOKEN_FILE = 4096


def _timeout(env: Mapping[str, str]) -> int:
    raw = env.get("VFCTL_PVE_TIMEOUT")
    if raw is None or raw.strip() == "":
        return DEFAULT_TIMEOUT
    if not re.fullmatch(r"[0-9]{1,5}", raw.strip()) or not 1 <= int(raw) <= 3600:
        raise UsageError(f"invalid VFCTL_PVE_TIMEOUT {raw[:20]!r}: whole seconds from 1 to 3600")
    return int(raw)


def check_secret(secret: str, source: str) -> str:
    """The stripped secret, or UsageError naming the source only (the value is never shown)."""
    secret = secret.strip()
    if not secret:
        raise UsageError(f"{source} holds no API token secret (empty or whitespace only)")
    if SECRET_RE.fullmatch(secret) is None:
        raise UsageError(
            f"{source} is not a valid API token secret: it must be one line of printable "
            "characters without spaces (a UUID, as `pveum user token add` prints it)"
        )
    return secret


_SCRUB = (
    (re.compile(r"PVEAPIToken=\S*", re.I), "PVEAPIToken=<redacted>"),
    (
        re.compile(r"(Authorization|Cookie|CSRFPreventionToken)\s*[:=]\s*[^'\"\r\n,;]+", re.I),
        r"\1: <redacted>",
    ),
    (re.compile(r"(https?://[^\s?#'\"]*)[?#][^\s'\"]*"), r"\1?<redacted>"),
    (re.compile(r"[\x00-\x1f\x7f]+"), " "),
)


def scrub(text: str, *secrets: str | None) -> str:
    """Exception text made safe to print or journal: no secret, header, URL query or body dump."""
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
            text = text.replace(repr(s)[1:-1], "<redacted>")
    for pat, repl in _SCRUB:
        text = pat.sub(repl, text)
    return text if len(text) <= 300 else text[:300] + "…"


@dataclass(frozen=True)
class PveSettings:
    """Everything needed to reconnect, minus the secret (safe to journal and print)."""

    mode: str  # "local" | "https"
    node: str
    host: str | None = None
    user: str | None = None
    token_name: str | None = None
    token_file: str | None = None
    ca: str | None = None
    insecure: bool = False
    timeout: int = DEFAULT_TIMEOUT

    def to_params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> PveSettings:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in p.items() if k in known})

    @property
    def where(self) -> str:
        return f"https://{self.host}" if self.mode == "https" else f"pvesh on {self.node}"


def local_node_name() -> str:
    return socket.gethostname().split(".", 1)[0]


def settings_from_env(
    node: str | None,
    ca: str | None,
    insecure: bool,
    env: Mapping[str, str],
    euid: int | None = None,
) -> PveSettings:
    """Token/https when ``VFCTL_PVE_HOST`` is set, else ``pvesh`` as root on this node."""
    given = node or env.get("VFCTL_PVE_NODE")
    node = given or local_node_name()  # a PVE node's own hostname is a valid node name
    if given is not None and NODE_RE.fullmatch(given) is None:
        raise UsageError(
            f"invalid Proxmox node name {node[:70]!r} (--pve-node/VFCTL_PVE_NODE): "
            "letters, digits and '-', as PVE's pve-node format"
        )
    timeout = _timeout(env)
    host = env.get("VFCTL_PVE_HOST")
    if host:
        if HOST_RE.fullmatch(host) is None:
            raise UsageError(
                f"invalid VFCTL_PVE_HOST {host[:70]!r}: host, IPv4 or [IPv6], optional :port"
            )
        user, tname = env.get("VFCTL_PVE_USER"), env.get("VFCTL_PVE_TOKEN_NAME")
        if not user or not tname:
            raise UsageError(
                "VFCTL_PVE_HOST is set: VFCTL_PVE_USER and VFCTL_PVE_TOKEN_NAME "
                "are needed too (API token authentication)"
            )
        if USERID_RE.fullmatch(user) is None:
            raise UsageError(
                f"VFCTL_PVE_USER {user[:70]!r} must look like user@realm "
                "(no spaces, ':', '/' or '!'; the realm a letter then letters, digits, '.-_')"
            )
        if TOKEN_NAME_RE.fullmatch(tname) is None:
            raise UsageError(
                f"VFCTL_PVE_TOKEN_NAME {tname[:70]!r} is not a token name "
                "(a letter, then letters, digits, '.', '-' or '_'; the part after '!')"
            )
        if not env.get("VFCTL_PVE_TOKEN_VALUE") and not env.get("VFCTL_PVE_TOKEN_FILE"):
            raise UsageError(
                "no API token secret: set VFCTL_PVE_TOKEN_VALUE or "
                "VFCTL_PVE_TOKEN_FILE (a file readable only by its owner)"
            )
        return PveSettings(
            mode="https",
            node=node,
            host=host,
            user=user,
            token_name=tname,
            token_file=_abspath(env.get("VFCTL_PVE_TOKEN_FILE")),
            ca=ca,
            insecure=insecure,
            timeout=timeout,
        )
    if ca or insecure:
        raise UsageError("--pve-ca/--insecure only apply to the https API: set VFCTL_PVE_HOST")
    if (os.geteuid() if euid is None else euid) != 0:
        raise UsageError(
            "the local Proxmox backend (pvesh) needs root; as another user set "
            "VFCTL_PVE_HOST, VFCTL_PVE_USER, VFCTL_PVE_TOKEN_NAME and a token secret"
        )
    return PveSettings(mode="local", node=node, timeout=timeout)


def _abspath(path: str | None) -> str | None:
    """Settings are journaled: a relative path would mean another file from another cwd."""
    return os.path.abspath(path) if path else None


def read_token_secret(s: PveSettings, env: Mapping[str, str]) -> str:
    """The secret: ``VFCTL_PVE_TOKEN_VALUE``, else the token file (refused if group/world-accessible)."""
    value = env.get("VFCTL_PVE_TOKEN_VALUE")
    if value:
        return check_secret(value, "VFCTL_PVE_TOKEN_VALUE")
    path = s.token_file or env.get("VFCTL_PVE_TOKEN_FILE")
    if not path:
        raise UsageError("no API token secret: set VFCTL_PVE_TOKEN_VALUE or VFCTL_PVE_TOKEN_FILE")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(f"token file {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"token file {path}: {os.strerror(exc.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"token file {path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise UsageError(
                f"token file {path} is owned by uid {st.st_uid}, not by uid {os.geteuid()} "
                "running vfctl: chown it"
            )
        if st.st_mode & 0o077:
            raise UsageError(
                f"token file {path} is accessible by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it"
            )
        if st.st_size > MAX_TOKEN_FILE:
            raise UsageError(f"token file {path} is larger than {MAX_TOKEN_FILE} bytes")
        data = os.read(fd, MAX_TOKEN_FILE + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"token file {path} is not a valid API token secret (not ASCII)") from None
    return check_secret(text, f"token file {path}")


class PveApiError(BackendError):
    """A refusal by the API, with its status so callers can tell digest races apart."""

    def __init__(
        self, message: str, status: int = 0, text: str = "", *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.text = text

    @property
    def digest_mismatch(self) -> bool:
        return DIGEST_MISMATCH in self.text


class _Repeated(dict[str, Any]):
    """Form data whose list values become repeated ``-key v`` options for pvesh.

    proxmoxer's command backends ``str()`` every value, which would turn a ``map`` list into
    ``['a', 'b']``; they iterate ``items()``, so yielding one pair per list item repeats the key.
    """

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for k, v in super().items():
            if isinstance(v, list | tuple):
                for item in v:
                    yield k, item
            else:
                yield k, v


def check_proxmoxer(version: str) -> None:
    """proxmoxer 1.x (Debian bookworm's 1.2.0) has no ``local`` (pvesh) backend and wants a
    host for every backend: say what is needed instead of failing inside it."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 2:
        raise BackendError(
            f"proxmoxer {version} is too old: vfctl needs proxmoxer >= 2.0 "
            "(Debian trixie / PVE 9 ship 2.2; on bookworm / PVE 8 install vfctl with pipx "
            "and its proxmox extra, see docs/packaging.md)"
        )


class PveApi:
    """get/post/put/delete on API paths; every failure becomes a one-line BackendError."""

    def __init__(self, settings: PveSettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        self._secret: str | None = None  # only to scrub it from error text
        import proxmoxer  # lazy: `vfctl list` must not need proxmoxer

        check_proxmoxer(getattr(proxmoxer, "__version__", "0"))
        from proxmoxer import ProxmoxAPI

        try:
            if settings.mode == "local":
                self.identity = "root@pam"
                self._prox = ProxmoxAPI(backend="local", service="PVE", timeout=settings.timeout)
            else:
                secret = read_token_secret(settings, env)
                self._secret = secret
                if settings.ca and not os.path.lexists(settings.ca):
                    raise NotFoundError(f"--pve-ca {settings.ca}: no such file")
                self.identity = f"{settings.user}!{settings.token_name}"
                verify: bool | str = False if settings.insecure else (settings.ca or True)
                if settings.insecure:  # asked for explicitly: one notice, not one per request
                    import urllib3

                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                self._prox = ProxmoxAPI(
                    settings.host,
                    backend="https",
                    service="PVE",
                    user=settings.user,
                    token_name=settings.token_name,
                    token_value=secret,
                    verify_ssl=verify,
                    timeout=settings.timeout,
                )
        except NotImplementedError as exc:
            raise BackendError(
                f"Proxmox connection settings rejected: {scrub(str(exc), self._secret)}"
            ) from None

    @property
    def is_root(self) -> bool:
        """Only root@pam itself (not its tokens) may write raw ``host=`` hostpci values."""
        return self.identity == "root@pam"

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params)

    def post(self, path: str, **params: Any) -> Any:
        return self._call("POST", path, params)

    def put(self, path: str, **params: Any) -> Any:
        return self._call("PUT", path, params)

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("DELETE", path, params)

    def _call(self, method: str, path: str, params: dict[str, Any]) -> Any:
        from proxmoxer.core import AuthenticationError, ResourceException

        res = self._prox(path.lstrip("/"))
        where = f"{method} {path} ({self.settings.where})"
        lists = any(isinstance(v, list | tuple) for v in params.values())
        try:
            if self.settings.mode == "local" and lists and method in ("POST", "PUT"):
                return res._request(method, data=_Repeated(params))
            return getattr(res, method.lower())(**params)
        except ResourceException as exc:
            e = _resource_error(exc, where, self.identity)
            e.message = scrub(e.message, self._secret)
            e.text = scrub(e.text, self._secret)
            e.args = (e.message,)
            raise e from None
        except AuthenticationError as exc:
            raise BackendError(
                f"{where}: authentication failed: {scrub(str(exc), self._secret)}"
            ) from None
        except FileNotFoundError:
            raise BackendError(f"{where}: pvesh not found (is this a Proxmox VE node?)") from None
        except Exception as exc:
            e2 = _transport_error(exc, where)
            e2.message = scrub(e2.message, self._secret)
            e2.args = (e2.message,)
            raise e2 from None


def _resource_error(exc: Any, where: str, identity: str) -> PveApiError:
    status = int(exc.status_code)
    # pvesh puts "NNN reason" first and a usage line last on stderr; keep only the reason
    lines = [ln.strip() for ln in str(exc.content or "").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("pvesh ", "USAGE:"))]
    if lines and lines[0].startswith(f"{status} "):
        lines[0] = lines[0][len(str(status)) + 1 :]
    text = " ".join(lines)
    errors = exc.errors
    if isinstance(errors, dict) and errors:
        text += " (" + "; ".join(f"{k}: {str(v).strip()}" for k, v in errors.items()) + ")"
    if status == 401:
        msg = f"{where}: authentication failed for {identity} (bad or expired API token?)"
    elif status == 403:
        msg = f"{where}: permission denied for {identity}: {text}"
    else:
        msg = f"{where}: {status} {text}"
    return PveApiError(msg, status, text)


def _transport_error(exc: Exception, where: str) -> BackendError:
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with proxmoxer
        return BackendError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, requests.exceptions.SSLError):
        return BackendError(
            f"{where}: TLS certificate verification failed "
            "(pass the CA with --pve-ca FILE, or --insecure to skip)"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return BackendError(f"{where}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return BackendError(f"{where}: cannot connect")
    return BackendError(f"{where}: {type(exc).__name__}: {exc}")
