"""Deterministic OpenAI-compatible model server for the demo and the tests.

``from agents.sim import SimServer`` in-process, or ``python -m agents.sim --port 0``.
"""

from .server import SimServer

__all__ = ["SimServer"]
