"""The C-suite deliberates a plan in bounded rounds until the consensus rule is met.

Each round the CTO drafts (from round 2 on: redrafts with the amendments
proposed so far), every member votes with a rationale and amendments, and
the rule decides. Every draft, vote and dissent is stored.
"""

from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction

from agents.errors import AgentRunError
from agents.models import AgentSpec
from agents.runtime.metering import CallContext
from agents.runtime.teams import Voter, collect_votes
from agents.schemas import PlanDraft, PlanVote
from agents.selectors import c_suite_agents, staff_roles_for
from missions import briefs
from missions.consult import ask_agent, cycle_close, cycle_open, transcript_record
from missions.events import event_record
from missions.knowledge import knowledge_brief
from missions.models import DecisionCycle, Event, Mission, MissionTemplate, Vote
from missions.repomap import mission_repo_map
from missions.streams import stream_target_for


@dataclass
class Deliberation:
    draft: PlanDraft
    agreed: bool
    tally: str
    cycle: DecisionCycle


def consensus_reached(rule: str, votes: list[Vote]) -> bool:
    approvals = sum(v.stance == Vote.Stance.APPROVE for v in votes)
    objections = sum(v.stance == Vote.Stance.OBJECT for v in votes)
    if rule == MissionTemplate.ConsensusRule.UNANIMOUS:
        return approvals > 0 and objections == 0
    return approvals * 2 > approvals + objections


def tally(votes: list[Vote]) -> str:
    counts = {stance: sum(v.stance == stance for v in votes) for stance in Vote.Stance.values}
    return f"{counts['approve']} approve, {counts['object']} object, {counts['abstain']} abstain"


def deliberate(mission: Mission, *, feedback: list[str]) -> Deliberation:
    """Run up to DELIBERATION_MAX_ROUNDS rounds; on deadlock the CEO may break the tie if the mission says so."""
    members = c_suite_agents()
    drafter = next((m for m in members if m.role == "cto"), None)
    if drafter is None:
        raise AgentRunError("No active CTO agent to draft the plan; activate one in the admin.")
    roles = staff_roles_for(mission)
    cycle = cycle_open(
        mission, DecisionCycle.Kind.PLANNING, f"C-suite deliberation: {', '.join(m.title for m in members)}."
    )
    amendments: list[str] = []
    draft, votes = None, []
    knowledge = knowledge_brief(mission)
    repo_map = mission_repo_map(mission)  # once per deliberation; '' for a mission without a project
    rounds = settings.DELIBERATION_MAX_ROUNDS
    for round_no in range(1, rounds + 1):
        prompt = briefs.plan_request_brief(
            mission, roles, feedback, amendments, previous=draft, knowledge=knowledge, repo_map=repo_map
        )
        draft = ask_agent(
            mission=mission, agent=drafter, purpose="plan_draft", prompt=prompt, output_type=PlanDraft, cycle=cycle
        )
        _record_draft(mission, drafter, cycle, draft, round_no)
        draft_json = draft.model_dump_json(indent=1)
        votes = _round_votes(mission, members, cycle, draft_json, round_no)
        if consensus_reached(mission.consensus_rule, votes):
            cycle_close(
                cycle,
                DecisionCycle.Outcome.CONSENSUS,
                f"Round {round_no}, {_rule(mission)}: {tally(votes)}.",
                rounds=round_no,
            )
            return Deliberation(draft, True, tally(votes), cycle)
        new = [a for v in votes for a in (v.amendments or ([v.rationale] if v.stance == Vote.Stance.OBJECT else []))]
        amendments += [a for a in new if a not in amendments]
        if round_no < rounds:
            event_record(
                mission=mission,
                kind=Event.Kind.CYCLE,
                message=f"Round {round_no}: no consensus ({tally(votes)}); "
                f"{len(amendments)} amendment(s) go into the next draft.",
                data={"cycle": cycle.number, "round": round_no},
            )
    ceo_vote = next((v for v in votes if v.agent.role == "ceo"), None)
    if (
        mission.deadlock_policy == MissionTemplate.DeadlockPolicy.CEO
        and ceo_vote
        and ceo_vote.stance == Vote.Stance.APPROVE
    ):
        summary = f"Deadlock after {rounds} rounds ({tally(votes)}); the CEO broke the tie in favour of the plan."
        cycle_close(cycle, DecisionCycle.Outcome.APPROVED, summary, rounds=rounds)
        return Deliberation(draft, True, tally(votes), cycle)
    cycle_close(
        cycle,
        DecisionCycle.Outcome.DEADLOCK,
        f"No consensus after {rounds} rounds, {_rule(mission)}: {tally(votes)}.",
        rounds=rounds,
    )
    return Deliberation(draft, False, tally(votes), cycle)


def _rule(mission: Mission) -> str:
    return f"rule {mission.get_consensus_rule_display().lower()}"


def _record_draft(mission: Mission, drafter: AgentSpec, cycle: DecisionCycle, draft: PlanDraft, round_no: int) -> None:
    verb = "drafted" if round_no == 1 else f"revised (round {round_no})"
    transcript_record(
        mission=mission,
        agent=drafter,
        cycle=cycle,
        content=f"Draft plan: {draft.summary}",
        data={"plan": draft.model_dump()},
    )
    event_record(
        mission=mission,
        kind=Event.Kind.PLAN,
        message=f"{drafter.title} {verb} a plan with {len(draft.steps)} steps: {draft.summary}",
        data={"cycle": cycle.number, "round": round_no},
        actor_agent=drafter,
    )


def _round_votes(
    mission: Mission, members: list[AgentSpec], cycle: DecisionCycle, draft_json: str, round_no: int
) -> list[Vote]:
    """Collect the round's votes in the mission's conversation mode, then store each with its dissent."""
    voters = [
        Voter(
            key=member.name,
            title=member.title,
            system_prompt=member.system_prompt,
            profile=member.model_profile or mission.model_profile,
            context=CallContext(
                mission_id=mission.pk,
                purpose="plan_vote",
                cycle_id=cycle.pk,
                agent_id=member.pk,
                # The page shows each member's rationale as it is written, beside the others'.
                stream=stream_target_for(
                    mission, agent=member.title, step=f"vote, round {round_no}", field="rationale"
                ),
            ),
        )
        for member in members
    ]
    answers = async_to_sync(collect_votes)(
        mode=mission.conversation_mode,
        voters=voters,
        brief=briefs.vote_brief(mission, draft_json, round_no),
        round_no=round_no,
    )
    return [_vote_record(mission, member, cycle, answers[member.name], round_no) for member in members]


def _vote_record(mission: Mission, member: AgentSpec, cycle: DecisionCycle, answer: PlanVote, round_no: int) -> Vote:
    with transaction.atomic():
        vote = Vote.objects.create(
            cycle=cycle,
            round=round_no,
            agent=member,
            stance=answer.stance,
            rationale=answer.rationale,
            amendments=answer.amendments,
        )
        amend = f" Amendments: {'; '.join(answer.amendments)}." if answer.amendments else ""
        event_record(
            mission=mission,
            kind=Event.Kind.VOTE,
            message=f"{member.title} votes {vote.get_stance_display().lower()}: {answer.rationale}{amend}",
            data={"vote": vote.pk, "stance": vote.stance, "agent": member.name, "round": round_no},
            actor_agent=member,
        )
    return vote
