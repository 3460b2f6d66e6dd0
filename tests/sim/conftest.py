"""Fixtures for the end-to-end sim tests: one server per module, cleaned over HTTP before each test.

These override the Django-flavoured ``sim`` fixture of tests/conftest.py inside tests/sim.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from agents.sim.server import SimServer

from .support import http


@pytest.fixture(scope="module")
def module_sim() -> Iterator[SimServer]:
    with SimServer(port=0) as server:
        yield server


@pytest.fixture
def sim(module_sim: SimServer) -> SimServer:
    """The module's server with no faults, no script rules, an empty call log and every capability (via HTTP)."""
    for path in ("/_sim/faults", "/_sim/script", "/_sim/calls", "/_sim/capabilities"):
        assert http(module_sim, "DELETE", path) == (200, {"ok": True}), path
    return module_sim


@pytest.fixture
def client(sim: SimServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="sim", base_url=sim.base_url, max_retries=0)
