"""Connection to the PVE API: settings from env/flags, secret handling, error mapping.

Two modes, both through proxmoxer (imported only here, and only when connecting):
``local`` runs ``pvesh`` on the node as root (root@pam); ``https`` talks to the API with an
API token. The token secret is read from the environment or a private file at connect time
and never stored in params, journals, messages or argv.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vfctl.errors import BackendError, UsageError

DEFAULT_TIMEOUT = 15
DIGEST_MISMATCH = "detected modified configuration"


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
    node = node or env.get("VFCTL_PVE_NODE") or local_node_name()
    timeout = int(env.get("VFCTL_PVE_TIMEOUT", DEFAULT_TIMEOUT))
    host = env.get("VFCTL_PVE_HOST")
    if host:
        user, tname = env.get("VFCTL_PVE_USER"), env.get("VFCTL_PVE_TOKEN_NAME")
        if not user or not tname:
            raise UsageError(
                "VFCTL_PVE_HOST is set: VFCTL_PVE_USER and VFCTL_PVE_TOKEN_NAME "
                "are needed too (API token authentication)"
            )
        if "@" not in user or "!" in user:
            raise UsageError(f"VFCTL_PVE_USER {user!r} must look like user@realm (no '!')")
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
            token_file=env.get("VFCTL_PVE_TOKEN_FILE"),
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


def read_token_secret(s: PveSettings, env: Mapping[str, str]) -> str:
    """The secret: ``VFCTL_PVE_TOKEN_VALUE``, else the token file (refused if group/world-accessible)."""
    value = env.get("VFCTL_PVE_TOKEN_VALUE")
    if value:
        return value.strip()
    path = s.token_file or env.get("VFCTL_PVE_TOKEN_FILE")
    if not path:
        raise UsageError("no API token secret: set VFCTL_PVE_TOKEN_VALUE or VFCTL_PVE_TOKEN_FILE")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UsageError(f"token file {path}: {os.strerror(exc.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"token file {path}: not a regular file")
        if st.st_mode & 0o077:
            raise UsageError(
                f"token file {path} is accessible by group/others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it"
            )
        with os.fdopen(fd, "r", encoding="utf-8") as f:
            fd = -1
            secret = f.read().strip()
    finally:
        if fd >= 0:
            os.close(fd)
    if not secret:
        raise UsageError(f"token file {path} is empty")
    return secret


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


class PveApi:
    """get/post/put/delete on API paths; every failure becomes a one-line BackendError."""

    def __init__(self, settings: PveSettings, env: Mapping[str, str]) -> None:
        self.settings = settings
        from proxmoxer import ProxmoxAPI  # lazy: `vfctl list` must not need proxmoxer

        try:
            if settings.mode == "local":
                self.identity = "root@pam"
                self._prox = ProxmoxAPI(backend="local", service="PVE", timeout=settings.timeout)
            else:
                secret = read_token_secret(settings, env)
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
            raise BackendError(f"Proxmox connection settings rejected: {exc}") from None

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
            raise _resource_error(exc, where, self.identity) from None
        except AuthenticationError as exc:
            raise BackendError(f"{where}: authentication failed: {exc}") from None
        except FileNotFoundError:
            raise BackendError(f"{where}: pvesh not found (is this a Proxmox VE node?)") from None
        except Exception as exc:
            raise _transport_error(exc, where) from None


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
