"""A real, isolated libvirtd for the whole session; domains and an engine context per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from libvirt_helpers import domain_xml
from libvirtd import Libvirtd, LibvirtdError
from needs import missing

from vfctl.backends.libvirt import LibvirtBackend
from vfctl.host.open import open_host
from vfctl.plan import Context


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Libvirtd]:
    daemon = Libvirtd(tmp_path_factory.mktemp("libvirtd"))
    try:
        daemon.start()
    except LibvirtdError as exc:
        missing(f"isolated libvirtd could not start: {exc}", "VFCTL_LIBVIRTD")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def backend(libvirtd: Libvirtd) -> Iterator[LibvirtBackend]:
    be = LibvirtBackend.connect(libvirtd.uri)
    yield be
    be.close()


@pytest.fixture
def make_domain(backend: LibvirtBackend) -> Iterator[Callable[..., object]]:
    """Define (and optionally start) uniquely named domains; all removed afterwards."""
    made: list[object] = []

    def make(running: bool = False) -> object:
        name = f"vfctl-t-{uuid.uuid4().hex[:8]}"
        dom = backend.conn.defineXML(domain_xml(name))
        made.append(dom)
        if running:
            dom.create()
        return dom

    yield make
    for dom in made:
        try:
            if dom.isActive():  # type: ignore[attr-defined]
                dom.destroy()  # type: ignore[attr-defined]
            dom.undefine()  # type: ignore[attr-defined]
        except Exception:  # already gone
            pass


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    """An engine context whose backend factory reconnects from action params, like the CLI's."""
    return Context(open_host(tmp_path), lambda name, params: LibvirtBackend.from_params(params))
