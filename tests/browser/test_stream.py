"""A PM watches an execution agent's answer arrive word by word, then the stored message take its place."""

import pytest

from agents.models import AgentMessage, LLMCall
from tests.browser.test_live_mission import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The sim's step summary is about 20 words, streamed three at a time: with this delay the call takes ~2 s.
CHUNK_DELAY_MS = 300


def test_it_streams_the_agents_answer_before_the_call_ends(
    company, pm, sim, celery_worker, live_url, browser, monkeypatch
):
    """While the call is still pending its text is on the page (escaped plain text in #transcript-live); when it
    ends the stored message shows in the transcript, once, and the streamed copy is gone, also after a reload."""
    # Playwright's sync API keeps an event loop on this thread; the ORM reads below are plain sync calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # A slow model for the votes and the agents' prose; plans, reviews and tool calls stay fast.
    sim.set_chunk_delay(CHUNK_DELAY_MS, roles=["plan_vote", "codegen"])
    page = _log_in(browser, live_url, "pm")
    page.click("text=New mission")
    page.select_option("select[name=template]", "api_endpoint")
    page.wait_for_selector("#id_var_resource")
    page.fill("#id_var_resource", "user authentication")
    page.fill("#id_title", "Stream an API for user authentication")
    page.click("text=File mission")
    page.wait_for_url("**/missions/*-*/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    vote = page.wait_for_selector('#transcript-live .msg-streaming[data-step^="vote"]', timeout=30_000)
    assert "As C" in vote.inner_text() and "stance" not in vote.inner_text()  # the rationale, not the JSON
    sim.set_chunk_delay(CHUNK_DELAY_MS, roles=["codegen"])  # the votes still being written stay slow
    page.wait_for_selector("#mission-votes .vote")
    assert page.locator('#transcript-live [data-step^="vote"]').count() == 0  # gone with the stored votes

    streaming = page.wait_for_selector('#transcript-live .msg-streaming[data-step="core"]', timeout=30_000)
    call = LLMCall.objects.select_related("step").get(pk=int(streaming.get_attribute("data-call")))
    assert call.status == LLMCall.Status.PENDING, "the text should show while the model is still answering"
    heading, _, shown = streaming.inner_text().partition("\n")
    assert call.step.key in heading and shown.startswith("Step ")
    assert "done: wrote" not in page.locator("#transcript").inner_text()

    # The agent's stored answer (a later step's brief quotes it too); its step's group may be folded by then.
    summary = page.locator("#transcript .msg-text", has_text=f"Step {call.step.key} (").filter(
        has_not=page.locator(".who", has_text="Brief")
    )
    summary.wait_for(state="attached", timeout=30_000)
    call.refresh_from_db()
    assert call.status == LLMCall.Status.OK and call.completion_tokens > 0
    (stored,) = AgentMessage.objects.filter(
        step=call.step, kind=AgentMessage.Kind.TEXT, content__contains="done: wrote"
    )
    assert stored.content.startswith(shown.strip()) and len(stored.content) > len(shown.strip())
    assert page.locator(f"#stream-{call.pk}").count() == 0
    assert summary.count() == 1
    assert navigations == [], "the page reloaded instead of updating live"

    sim.set_chunk_delay(0)
    page.reload()
    assert page.locator("#transcript-live > *").count() == 0
    assert summary.count() == 1
    page.wait_for_selector("#mission-status-label.status-awaiting_deploy_approval", timeout=60_000)
