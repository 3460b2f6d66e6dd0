"""The mission page people watch: the "now" line, step progress, the plan's picture, grouped long sections, and
a bounded number of queries however much the mission did."""

from decimal import Decimal

import pytest

from agents.models import AgentMessage, AgentSpec
from missions.models import Event, Mission, Plan, Step, TestRun
from missions.selectors import mission_detail

pytestmark = pytest.mark.django_db


def _mission(pm, **fields) -> Mission:
    fields.setdefault("status", Mission.Status.EXECUTING)
    return Mission.objects.create(requester=pm, title="Checkout", request="r", budget_usd=Decimal("5.00"), **fields)


def _event(mission, message, kind=Event.Kind.STEP, data=None) -> Event:
    seq = mission.events.count() + 1
    Mission.objects.filter(pk=mission.pk).update(last_event_seq=seq)
    return Event.objects.create(mission=mission, seq=seq, kind=kind, message=message, data=data or {})


def _plan(mission, statuses: dict[str, str], *, agent=None, version=1) -> list[Step]:
    plan = Plan.objects.create(mission=mission, version=version)
    previous = []
    steps = []
    for order, (key, status) in enumerate(statuses.items()):
        steps.append(
            Step.objects.create(
                plan=plan,
                key=key,
                order=order,
                title=f"Build {key}",
                role="developer",
                agent=agent,
                instructions="i",
                status=status,
                depends_on=previous[-1:],
            )
        )
        previous.append(key)
    return steps


def _page(client, user, mission) -> str:
    client.force_login(user)
    response = client.get(mission.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def agent(db):
    return AgentSpec.objects.create(name="dev", title="Developer <Dev>", role="developer", system_prompt="p")


# --- The "now" line and progress ----------------------------------------------------------------------------


def test_it_shows_the_phase_running_step_and_last_action(client, pm, agent):
    """The now line names the phase in words, the running step with its agent, and the newest event, escaped."""
    mission = _mission(pm)
    _plan(mission, {"core": "succeeded", "api": "running", "docs": "pending"}, agent=agent)
    _event(mission, "Step core succeeded.")
    _event(mission, "Developer · api: write_file(<script>alert(1)</script>)", kind=Event.Kind.TOOL)
    body = _page(client, pm, mission)
    now = body[body.index('id="mission-now"') : body.index('id="mission-progress"')]
    assert "Executing the plan&#x27;s steps." in now
    assert '<a href="#step-api" class="now-step"><strong>api</strong> Build api</a> (Developer &lt;Dev&gt;)' in now
    assert "write_file(&lt;script&gt;alert(1)&lt;/script&gt;)" in now
    assert "<script>alert" not in body


def test_it_shows_the_newest_transcript_entry_when_it_came_after_the_last_event(client, pm, agent):
    """An agent's words after the newest event are the last action, on one line and truncated."""
    mission = _mission(pm)
    _plan(mission, {"core": "running"}, agent=agent)
    _event(mission, "Step core started.")
    AgentMessage.objects.create(mission=mission, source="Developer", content="Reading\nthe code " + "x" * 400)
    context = mission_detail(mission)
    assert context["now"]["last_action"].startswith("Developer: Reading the code xxx")
    body = _page(client, pm, mission)
    action = body[body.index('id="mission-last-action"') :]
    action = action[: action.index("</p>")]
    assert "Developer: Reading the code" in action
    assert len(action.split(">", 2)[-1]) < 400  # truncated on the page


def test_it_shows_progress_over_the_newest_plan(client, pm):
    """The bar counts done steps of the newest plan only, with an accessible value and counts by status."""
    mission = _mission(pm)
    _plan(mission, {"old": "succeeded"}, version=1)
    _plan(mission, {"a": "succeeded", "b": "succeeded", "c": "running", "d": "failed", "e": "pending"}, version=2)
    body = _page(client, pm, mission)
    assert 'role="progressbar"' in body
    assert 'aria-valuemax="5" aria-valuenow="2"' in body
    assert "2 of 5 steps done" in body
    for text in ("2 succeeded", "1 running", "1 failed", "1 pending"):
        assert text in body
    assert 'class="seg seg-succeeded" style="width: 40.00%"' in body
    segments = [body.index(f"seg seg-{status}") for status in ("succeeded", "running", "failed", "pending")]
    assert segments == sorted(segments)  # done fills from the left, pending last


def test_it_shows_no_progress_bar_before_a_plan(client, pm):
    """Without a plan there is a phase but no bar."""
    mission = _mission(pm, status=Mission.Status.PLANNING)
    body = _page(client, pm, mission)
    assert "Planning: the C-suite drafts the plan and votes on it." in body
    assert 'role="progressbar"' not in body


# --- The plan's picture -------------------------------------------------------------------------------------


def test_it_draws_the_newest_plan_in_the_steps_section(client, pm):
    """The Plan section holds the SVG, one node per step of the newest plan, classed by status."""
    mission = _mission(pm)
    _plan(mission, {"old": "failed"}, version=1)
    _plan(mission, {"core": "succeeded", "api": "running"}, version=2)
    body = _page(client, pm, mission)
    section = body[body.index('id="mission-steps"') : body.index('id="mission-tests"')]
    assert 'id="plan-dag"' in section
    assert 'class="node status-succeeded" id="dag-node-core"' in section
    assert 'class="node status-running" id="dag-node-api"' in section
    assert 'data-from="core" data-to="api"' in section
    assert "dag-node-old" not in section


# --- Long sections folded by step and attempt -----------------------------------------------------------------


def _started(mission, key, attempt) -> Event:
    # Written whole: PostgreSQL's append-only trigger refuses to change an event.
    return _event(mission, f"Step {key} started.", data={"step": key, "status": "running", "attempt": attempt})


def _run(mission, step, **counts) -> TestRun:
    return TestRun.objects.create(mission=mission, step=step, isolation="bwrap", log="log", **counts)


def test_it_groups_test_runs_by_step_and_attempt_folded(client, pm):
    """Each step's runs, per attempt, are one folded <details> whose summary gives the last run's counts."""
    mission = _mission(pm)
    core, api = _plan(mission, {"core": "succeeded", "api": "running"})
    _started(mission, "core", 1)
    _run(mission, core, passed=3, failed=1)
    _started(mission, "core", 2)
    _run(mission, core, passed=4, failed=1)
    _run(mission, core, passed=5)
    _started(mission, "api", 1)
    _run(mission, api, passed=2)
    TestRun.objects.create(mission=mission, purpose=TestRun.Purpose.DELIVERY, isolation="bwrap", passed=9)
    body = _page(client, pm, mission)
    section = body[body.index('id="mission-tests"') : body.index('id="transcript"')]
    for group_id, summary in [
        ("tests-step-core--a1", "<strong>core</strong> · attempt 1 · 1 run · last: 3 passed, 1 failed"),
        ("tests-step-core--a2", "<strong>core</strong> · attempt 2 · 2 runs · last: 5 passed, 0 failed"),
        ("tests-step-api--a1", "<strong>api</strong> · attempt 1 · 1 run · last: 2 passed, 0 failed"),
        ("tests-delivery", "<strong>Re-run before delivery</strong> · 1 run · last: 9 passed, 0 failed"),
    ]:
        assert f'<details class="group" id="{group_id}">' in section, group_id  # folded: no "open"
        assert summary in section, summary
    assert '<summary class="bad"><strong>core</strong> · attempt 1' in section


def test_it_groups_the_transcript_by_step_unfolding_the_running_one(client, pm, agent):
    """Messages are grouped per step and attempt; only the running step's current attempt is open."""
    mission = _mission(pm)
    core, api = _plan(mission, {"core": "succeeded", "api": "running"}, agent=agent)
    api.attempt = 2
    api.save()
    AgentMessage.objects.create(mission=mission, source="CEO", content="We agree.")
    _started(mission, "core", 1)
    AgentMessage.objects.create(mission=mission, step=core, source="Developer", content="core done")
    _started(mission, "api", 1)
    AgentMessage.objects.create(mission=mission, step=api, source="Developer", content="api try one")
    _started(mission, "api", 2)
    AgentMessage.objects.create(mission=mission, step=api, source="Developer", content="api try two")
    body = _page(client, pm, mission)
    section = body[body.index('id="transcript"') :]
    assert '<details class="group" id="transcript-mission">' in section
    assert '<details class="group" id="transcript-step-core--a1">' in section
    assert '<details class="group" id="transcript-step-api--a1">' in section
    assert '<details class="group" id="transcript-step-api--a2" open>' in section
    assert "<strong>api</strong> Build api · attempt 2 · 1 message" in section
    order = [section.index(text) for text in ("We agree.", "core done", "api try one", "api try two")]
    assert order == sorted(order)
    # The message markup inside a group is the transcript's own.
    assert '<li class="msg msg-text"><span class="who">Developer · api</span>' in section


def test_it_groups_without_attempts_when_no_start_is_known(pm):
    """Runs older than the events the page reads still group by step, just without an attempt."""
    mission = _mission(pm)
    (core,) = _plan(mission, {"core": "running"})
    _run(mission, core, passed=1)
    groups = mission_detail(mission)["test_run_groups"]
    assert [(group["id"], group["attempt"], group["open"]) for group in groups] == [("tests-step-core", None, True)]


# --- Query counts -------------------------------------------------------------------------------------------


def _busy_mission(pm, agent, steps: int) -> Mission:
    """A mission with ``steps`` steps, each with a diff, a review, two test runs, messages and events."""
    from reviews.models import ApprovalGate, PeerReview

    mission = _mission(pm)
    plan_steps = _plan(mission, {f"s{i}": "succeeded" for i in range(steps)}, agent=agent)
    for step in plan_steps:
        step.output = {"diff": "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"}
        step.summary = "**done**\n- one"
        step.commit_sha = "a" * 40
        step.save()
        _started(mission, step.key, 1)
        PeerReview.objects.create(mission=mission, step=step, reviewer=agent, verdict="approve", score=5, summary="ok")
        _run(mission, step, passed=2, tests=[{"outcome": "passed", "nodeid": "t::a"}])
        _run(mission, step, passed=3)
        for n in range(3):
            AgentMessage.objects.create(
                mission=mission, step=step, agent=agent, source="Dev", content=f"```python\nx = {n}\n```"
            )
        _event(mission, f"Step {step.key} succeeded.")
    ApprovalGate.objects.create(mission=mission, kind=ApprovalGate.Kind.DEPLOY, question="Deploy?")
    return mission


def _queries(client, user, mission) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(mission.get_absolute_url()).status_code == 200
    return len(captured)


def test_it_reads_the_page_in_a_fixed_number_of_queries(client, pm, agent, django_assert_max_num_queries):
    """Three steps or thirty (with their reviews, test runs, messages and events): the same queries."""
    client.force_login(pm)
    small = _queries(client, pm, _busy_mission(pm, agent, 3))
    large_mission = _busy_mission(pm, agent, 30)
    assert _queries(client, pm, large_mission) == small
    with django_assert_max_num_queries(25):
        client.get(large_mission.get_absolute_url())


def _live_batch_queries(user, mission) -> int:
    """Queries for what the consumer sends on an event: every live partial, rendered for the user."""
    from django.db import connection
    from django.template.loader import render_to_string
    from django.test.utils import CaptureQueriesContext

    from missions.consumers import LIVE_PARTIALS

    user = type(user).objects.get(pk=user.pk)  # as the consumer has it: nothing cached on it yet
    with CaptureQueriesContext(connection) as captured:
        context = {**mission_detail(mission), "new_events": [], "user": user, "can_cancel": True}
        for name in LIVE_PARTIALS:
            render_to_string(f"missions/detail.html#{name}", context)
    return len(captured)


def test_it_renders_a_live_update_in_a_fixed_number_of_queries(pm, agent):
    """The batch a socket gets on every event costs the same for three steps as for thirty."""
    assert _live_batch_queries(pm, _busy_mission(pm, agent, 3)) == _live_batch_queries(pm, _busy_mission(pm, agent, 30))
