"""The isolated uses of other packages' internals fail here, loudly, when an upgrade moves them.

docs/ARCHITECTURE.md ("Internals of other packages") lists each use; pyproject.toml bounds the
packages. Locust is imported in a child process only: importing it monkey-patches this one (gevent).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest

from ksentinel.kaltura.transport import _DeadlineBackend, deadline_client, install_deadline_backend


def test_httpx_transport_takes_the_deadline_backend() -> None:
    transport = httpx.HTTPTransport(retries=0)
    assert install_deadline_backend(transport), (
        "httpx.HTTPTransport._pool._network_backend moved: the total request deadline is not enforced "
        "per socket operation any more; adapt kaltura/transport.install_deadline_backend"
    )
    assert install_deadline_backend(transport)  # a second call keeps one wrapper
    with deadline_client() as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, _DeadlineBackend)
        assert not isinstance(pool._network_backend._inner, _DeadlineBackend)


def test_a_transport_of_another_shape_is_refused_not_broken() -> None:
    class Elsewhere(httpx.HTTPTransport):
        def __init__(self) -> None:  # no pool at all
            pass

    assert install_deadline_backend(Elsewhere()) is False


def test_locust_fasthttp_session_has_the_connection_pool() -> None:
    code = textwrap.dedent(
        """
        from locust.contrib.fasthttp import FastHttpSession
        from locust.env import Environment
        from ksentinel.load.transport import connection_pool

        session = FastHttpSession("http://127.0.0.1:9", Environment().events.request, user=None)
        pool = connection_pool(session)
        print(type(pool).__module__, type(pool).__name__)

        class Bare:
            client = object()

        try:
            connection_pool(Bare())
        except RuntimeError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert first.startswith("geventhttpclient"), first
    assert second.startswith("refused: this Locust has no FastHttpSession.client.clientpool"), second


def test_pytest_junit_writer_still_takes_an_extra_case() -> None:
    """pytest_plugin._mark_junit_interrupted: the INCOMPLETE case of an interrupted contract run."""
    from _pytest import junitxml

    assert isinstance(junitxml.xml_key, pytest.StashKey), "_pytest.junitxml.xml_key moved"
    assert callable(getattr(junitxml.LogXML, "node_reporter", None)), "LogXML.node_reporter moved"
    assert callable(getattr(junitxml.LogXML, "add_global_property", None))
    assert callable(getattr(junitxml._NodeReporter, "_add_simple", None)), "_NodeReporter._add_simple moved"
