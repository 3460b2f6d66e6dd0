"""Mission writes: submission, conditional transitions, cancellation and the event log."""

from decimal import Decimal

import pytest
from django.conf import settings

from missions.events import event_record
from missions.models import Event, Mission, MissionTemplate
from missions.services import MissionError, mission_cancel, mission_fail, mission_submit, mission_transition


def _submit(requester, **overrides) -> Mission:
    kwargs = {"title": "A mission", "request": "Do the thing.", "budget_usd": Decimal("2.00")}
    kwargs.update(overrides)
    return mission_submit(requester=requester, **kwargs)


def test_it_files_a_mission_with_its_first_event(company, pm):
    """mission_submit stores the mission, queued, with event 1 'submitted' and the default profile."""
    mission = _submit(pm, title="  Padded title  ", request="  Padded request  ", priority=Mission.Priority.HIGH)
    mission.refresh_from_db()
    assert mission.status == Mission.Status.QUEUED
    assert mission.title == "Padded title"
    assert mission.request == "Padded request"
    assert mission.priority == "high"
    assert mission.model_profile == company
    assert mission.uses_simulated_model is True  # no LLM_BASE_URL in tests: the simulated server
    assert mission.consensus_rule == MissionTemplate.ConsensusRule.QUORUM
    event = mission.events.get()
    assert (event.seq, event.kind) == (1, Event.Kind.SUBMITTED)
    assert event.message == "pm filed the mission with a budget of $2.00."
    assert event.data == {"status": "queued"}


def test_it_files_without_a_model_profile(pm):
    """With no profile configured the mission is still filed (the engine fails it with a clear reason later)."""
    mission = _submit(pm)
    assert mission.model_profile is None
    assert mission.uses_simulated_model is False


def test_it_truncates_a_long_title(company, pm):
    """A title longer than the column is cut at 200 characters rather than failing on save."""
    mission = _submit(pm, title="x" * 250)
    mission.refresh_from_db()
    assert mission.title == "x" * 200


def test_it_renders_a_template_and_takes_its_consensus_rule(company, pm):
    """A template fills title, request and acceptance; the mission inherits its consensus rule."""
    template = MissionTemplate.objects.get(slug="security_audit")
    template.consensus_rule = MissionTemplate.ConsensusRule.UNANIMOUS
    template.save()
    mission = _submit(pm, title="", request="", template=template, variables={"component": "the login form"})
    assert mission.title == "Security audit of the login form"
    assert mission.request.startswith("Audit the login form for injection, auth bypass and data exposure.")
    assert mission.acceptance_criteria == "Each finding has a fix and a test."
    assert mission.consensus_rule == MissionTemplate.ConsensusRule.UNANIMOUS
    assert mission.variables == {"component": "the login form"}


def test_it_prefers_an_explicit_title_and_appends_typed_text_to_the_template(company, pm):
    """A typed title wins over the template's; typed request and acceptance text follow the template's as notes."""
    template = MissionTemplate.objects.get(slug="documentation")
    mission = _submit(
        pm,
        title="Docs!",
        request="Write them.",
        acceptance_criteria="Readable.",
        template=template,
        variables={"component": "x"},
    )
    rendered = template.render({"component": "x"})
    assert mission.title == "Docs!"
    assert mission.request == rendered["request"] + "\n\nAdditional notes:\nWrite them."
    assert mission.acceptance_criteria == rendered["acceptance_criteria"] + "\n\nAdditional notes:\nReadable."


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "A mission needs a title and a request."),
        ({"title": "   "}, "A mission needs a title and a request."),
        ({"request": ""}, "A mission needs a title and a request."),
        ({"budget_usd": Decimal("0")}, "The budget must be between $0.01 and $10000."),
        ({"budget_usd": Decimal("0.001")}, "The budget must be between $0.01 and $10000."),
        ({"budget_usd": Decimal("-1")}, "The budget must be between $0.01 and $10000."),
        ({"budget_usd": Decimal("10000.01")}, "The budget must be between $0.01 and $10000."),
        ({"budget_usd": Decimal("Infinity")}, "The budget must be between $0.01 and $10000."),
        ({"variables": {"feature": "x"}}, "Template variables were given without a template."),
    ],
)
def test_it_rejects_invalid_submissions(company, pm, overrides, message):
    """Each invalid submission raises ValueError with a message fit to show, and stores nothing."""
    with pytest.raises(ValueError) as caught:
        _submit(pm, **overrides)
    assert str(caught.value) == message
    assert not Mission.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.parametrize("budget", ["NaN", "sNaN"])
def test_it_rejects_a_nan_budget_with_a_value_error(company, pm, budget):
    """A NaN budget is invalid input like any other: ValueError, not decimal.InvalidOperation."""
    with pytest.raises(ValueError, match="budget"):
        _submit(pm, budget_usd=Decimal(budget))
    assert not Mission.objects.exists()


def test_it_names_bad_template_variables(company, pm):
    """Template variables that are missing or unknown are named in the ValueError."""
    template = MissionTemplate.objects.get(slug="bug_fix")
    with pytest.raises(ValueError) as caught:
        _submit(pm, title="", request="", template=template, variables={"symptom": "crash", "colour": "red"})
    assert str(caught.value) == "Template variables missing: steps, expected; unknown: colour."
    assert not Mission.objects.exists()


def test_it_keeps_the_boundary_budgets(company, pm):
    """$0.01 and $10000 are both allowed."""
    assert _submit(pm, budget_usd=Decimal("0.01")).budget_usd == Decimal("0.01")
    assert _submit(pm, budget_usd=Decimal("10000"), budget_confirmed=True).budget_usd == Decimal("10000")


def test_it_registers_the_start_on_commit(company, pm, django_capture_on_commit_callbacks, monkeypatch):
    """The mission is enqueued only once the transaction commits, exactly once, behind work under way."""
    import missions.tasks

    started = []

    class FakeTask:
        def apply_async(self, args, priority):
            started.append((*args, priority))

    monkeypatch.setattr(missions.tasks, "advance_mission", FakeTask())
    monkeypatch.setattr("missions.events._notify", lambda group, seq: None)
    with django_capture_on_commit_callbacks() as callbacks:
        mission = _submit(pm)
    assert started == []  # nothing before commit
    for callback in callbacks:
        callback()
    assert started == [(mission.pk, settings.TASK_PRIORITY_NEW_MISSION)]


# --- Transitions ----------------------------------------------------------------------------------


def test_it_transitions_when_the_status_is_expected(company, pm):
    """With the expected status, the UPDATE claims the mission: True, new status, one status event."""
    mission = _submit(pm)
    assert mission_transition(mission=mission, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED, reason="Go.")
    assert mission.status == Mission.Status.PLANNING
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PLANNING
    event = mission.events.get(seq=2)
    assert event.kind == Event.Kind.STATUS
    assert event.message == "Planning. Go."
    assert event.data == {"status": "planning", "from": "queued"}


def test_it_does_not_transition_from_an_unexpected_status(company, pm):
    """When the stored status is not the expected one, nothing changes: False and no event."""
    mission = _submit(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.PLANNING)  # another worker won

    assert mission_transition(mission=mission, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED) is False
    assert mission.status == Mission.Status.QUEUED  # the caller's copy is left alone
    mission.refresh_from_db()
    assert mission.status == Mission.Status.PLANNING
    assert mission.last_event_seq == 1
    assert list(mission.events.values_list("seq", flat=True)) == [1]


def test_it_lets_exactly_one_of_two_claims_win(company, pm):
    """Two copies of the same mission race from 'queued': the first claim wins, the second gets False."""
    mission = _submit(pm)
    first, second = Mission.objects.get(pk=mission.pk), Mission.objects.get(pk=mission.pk)
    results = [
        mission_transition(mission=first, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED),
        mission_transition(mission=second, to=Mission.Status.PLANNING, expected=Mission.Status.QUEUED),
    ]
    assert results == [True, False]
    assert mission.events.filter(kind=Event.Kind.STATUS).count() == 1


def test_it_accepts_several_expected_statuses(company, pm):
    """expected may be a tuple of statuses."""
    mission = _submit(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.STAFFING)
    mission.refresh_from_db()
    assert mission_transition(
        mission=mission, to=Mission.Status.EXECUTING, expected=(Mission.Status.PLANNING, Mission.Status.STAFFING)
    )
    mission.refresh_from_db()
    assert mission.status == Mission.Status.EXECUTING


@pytest.mark.parametrize("finished", [Mission.Status.COMPLETED, Mission.Status.FAILED, Mission.Status.CANCELLED])
def test_it_never_leaves_a_finished_status_without_expected(company, pm, finished):
    """Without expected, a finished mission stays finished: False and no event."""
    mission = _submit(pm)
    Mission.objects.filter(pk=mission.pk).update(status=finished)
    mission.refresh_from_db()
    assert mission_transition(mission=mission, to=Mission.Status.EXECUTING) is False
    mission.refresh_from_db()
    assert mission.status == finished
    assert mission.events.count() == 1


def test_it_records_the_failure_reason(company, pm):
    """Failing sets the reason and finished_at and logs an error event."""
    mission = _submit(pm)
    assert mission_fail(mission=mission, reason="Model call failed: 500.")
    mission.refresh_from_db()
    assert mission.status == Mission.Status.FAILED
    assert mission.failure_reason == "Model call failed: 500."
    assert mission.finished_at is not None
    event = mission.events.last()
    assert event.kind == Event.Kind.ERROR
    assert event.message == "Failed. Model call failed: 500."


def test_it_sets_extra_fields_in_the_same_update(company, pm):
    """Extra keyword fields are written together with the status, and to the caller's copy."""
    mission = _submit(pm)
    assert mission_transition(mission=mission, to=Mission.Status.PLANNING, workspace_path="/tmp/ws")
    assert mission.workspace_path == "/tmp/ws"
    mission.refresh_from_db()
    assert mission.workspace_path == "/tmp/ws"
    assert mission.finished_at is None


# --- Events ---------------------------------------------------------------------------------------


def test_it_numbers_events_one_by_one(company, pm):
    """Each event takes the next seq, starting at 1, and the mission remembers the last one."""
    mission = _submit(pm)
    for n in range(5):
        event_record(mission=mission, kind=Event.Kind.STEP, message=f"step {n}")
    mission_transition(mission=mission, to=Mission.Status.PLANNING)
    assert list(mission.events.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4, 5, 6, 7]
    assert mission.last_event_seq == 7
    mission.refresh_from_db()
    assert mission.last_event_seq == 7


def test_it_numbers_events_from_a_stale_copy(company, pm):
    """A stale in-memory copy still gets the next seq: the database counter decides."""
    mission = _submit(pm)
    stale = Mission.objects.get(pk=mission.pk)
    event_record(mission=mission, kind=Event.Kind.STEP, message="fresh")
    event = event_record(mission=stale, kind=Event.Kind.STEP, message="stale")
    assert event.seq == 3


def test_it_numbers_events_per_mission(company, pm):
    """Two missions each have their own sequence."""
    first, second = _submit(pm), _submit(pm)
    event_record(mission=first, kind=Event.Kind.STEP, message="a")
    assert event_record(mission=second, kind=Event.Kind.STEP, message="b").seq == 2
    assert event_record(mission=first, kind=Event.Kind.STEP, message="c").seq == 3


# --- Cancel ---------------------------------------------------------------------------------------


def test_it_cancels_an_unfinished_mission(company, pm):
    """mission_cancel moves it to cancelled and names who did it."""
    mission = _submit(pm)
    mission_cancel(mission=mission, by=pm)
    mission.refresh_from_db()
    assert mission.status == Mission.Status.CANCELLED
    assert mission.events.last().message == "Cancelled. Cancelled by pm."


def test_it_refuses_to_cancel_a_finished_mission(company, pm):
    """Cancelling a completed mission raises MissionError naming its status."""
    mission = _submit(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.COMPLETED)
    mission.refresh_from_db()
    with pytest.raises(MissionError, match=r"^The mission is already completed\.$"):
        mission_cancel(mission=mission, by=pm)
    assert mission.events.count() == 1


def test_it_reports_a_cancel_that_lost_a_race(company, pm):
    """If the mission finished after it was loaded, cancelling says so instead of overwriting."""
    mission = _submit(pm)
    Mission.objects.filter(pk=mission.pk).update(status=Mission.Status.COMPLETED)  # mission is stale: queued
    with pytest.raises(MissionError, match="changed state meanwhile"):
        mission_cancel(mission=mission, by=pm)
    mission.refresh_from_db()
    assert mission.status == Mission.Status.COMPLETED
