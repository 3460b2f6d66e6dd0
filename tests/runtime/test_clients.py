"""Model clients share one SSL context per worker process and server; everything else stays per call.

Building ``ssl.create_default_context`` for every call was the costliest part of a client (issue 11's first
hotspot). The httpx client on top of it is still new per call, so it is never bound to another task's event
loop, closing one client cannot close another's, and the key and timeout are read for every call as before.
"""

import asyncio
import os

import pytest
from autogen_core.models import UserMessage

from agents.models import ModelProfile
from agents.runtime import clients
from agents.runtime.clients import model_client_for


def _ssl_context(client):
    return client._client._client._transport._pool._ssl_context  # AutoGen → AsyncOpenAI → httpx → httpcore


def _one_call(profile) -> tuple:
    """One call as a Celery task makes it: its own event loop, its own client, closed at the end."""

    async def call():
        client = model_client_for(profile)
        try:
            result = await client.create([UserMessage(content="Say hello.", source="test")])
        finally:
            await client.close()
        return client, result

    return asyncio.run(call())


@pytest.fixture
def fresh_contexts():
    clients._forget_ssl_contexts()
    yield
    clients._forget_ssl_contexts()


def test_two_calls_of_one_worker_share_its_ssl_context(db, sim, fresh_contexts):
    """Two calls in two event loops: one SSL context built, both clients on it, each with its own httpx client."""
    profile = ModelProfile.objects.create(name="shared")
    built = clients.SSL_CONTEXTS_BUILT
    first, first_result = _one_call(profile)
    second, second_result = _one_call(profile)
    assert first_result.content and second_result.content
    assert len(sim.calls()) == 2
    assert clients.SSL_CONTEXTS_BUILT - built == 1
    assert _ssl_context(first) is _ssl_context(second) is clients.ssl_context_for(sim.base_url)
    assert first._client._client is not second._client._client
    assert first._client._client.is_closed and second._client._client.is_closed


def test_a_changed_base_url_gets_its_own_ssl_context(db, sim, fresh_contexts):
    profile = ModelProfile.objects.create(name="moved", base_url=sim.base_url)
    before = _ssl_context(model_client_for(profile))
    profile.base_url = "https://models.example/v1"
    moved = model_client_for(profile)
    assert _ssl_context(moved) is not before
    assert str(moved._client.base_url) == "https://models.example/v1/"
    assert _ssl_context(model_client_for(profile)) is _ssl_context(moved)


def test_a_changed_ca_setting_gets_its_own_ssl_context(db, sim, fresh_contexts, monkeypatch, tmp_path):
    profile = ModelProfile.objects.create(name="ca")
    before = _ssl_context(model_client_for(profile))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))  # another (empty) CA directory
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    after = _ssl_context(model_client_for(profile))
    assert after is not before


def test_the_key_and_timeout_are_still_read_for_every_client(db, sim, fresh_contexts, monkeypatch, settings):
    """Nothing that holds the key is shared: a new key in the environment reaches the next client."""
    profile = ModelProfile.objects.create(name="keyed", api_key_env="OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    first = model_client_for(profile)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
    settings.LLM_TIMEOUT_S = 7
    second = model_client_for(profile)
    assert (first._client.api_key, second._client.api_key) == ("sk-first", "sk-second")
    assert (second._client.timeout, second._client.max_retries) == (7, 0)
    assert _ssl_context(first) is _ssl_context(second)


def test_a_forked_child_builds_its_own_ssl_context(db, sim, fresh_contexts):
    """A prefork child never uses a context its parent built before the fork."""
    parent = clients.ssl_context_for(sim.base_url)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, without pytest's teardown
        try:
            emptied = not clients._SSL_CONTEXTS
            own = clients.ssl_context_for(sim.base_url)
            os.write(write, b"ok" if emptied and own is not parent else b"shared")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert clients.ssl_context_for(sim.base_url) is parent
