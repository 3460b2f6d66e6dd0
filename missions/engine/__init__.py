"""The engine: the state machine that advances a mission, one phase per task.

Every phase starts by claiming the mission (or step) with a conditional UPDATE, so a task
delivered twice does its work once. One module per phase, each owning its claim and its work:
planning (deliberation, validation), staffing, execution, delivery; recovery gives back the
claims of lost workers. This module only decides which phase the mission's status calls for.
"""

import logging

from agents.errors import AgentRunError, BudgetExceeded, MissionStopped, database_error_is_transient
from missions.engine.common import connection_reset
from missions.engine.delivery import mission_deploy
from missions.engine.execution import mission_schedule, step_run
from missions.engine.planning import mission_plan
from missions.engine.recovery import claims_release, reap_stalled
from missions.engine.staffing import mission_staff
from missions.models import Mission, Plan
from missions.services import mission_fail
from orchestrator_site.logging import mission_logging
from reviews.gates import gate_open_budget

__all__ = ["mission_advance", "reap_stalled", "step_run"]

logger = logging.getLogger(__name__)


def mission_advance(*, mission_id: int) -> None:
    """Do whatever the mission's current status calls for; waiting and finished missions need nothing."""
    mission = Mission.objects.select_related("model_profile", "template").filter(pk=mission_id).first()
    if mission is None:
        logger.warning("advance: mission %s does not exist", mission_id)
        return
    with mission_logging(mission.code):
        try:
            if mission.status == Mission.Status.QUEUED:
                mission_plan(mission)
            elif mission.status == Mission.Status.STAFFING:
                mission_staff(mission)
            elif mission.status == Mission.Status.EXECUTING:
                mission_schedule(mission)
            elif mission.status == Mission.Status.DEPLOYING:
                mission_deploy(mission)
        except BudgetExceeded as error:
            # Planning and staffing get here (steps handle their own): they start over once the budget is raised.
            resume = Mission.Status.STAFFING if mission.status == Mission.Status.STAFFING else Mission.Status.QUEUED
            Plan.objects.filter(mission=mission).update(staffed_at=None)  # staffing may start again when resumed
            gate_open_budget(mission=mission, reason=str(error), resume_to=resume)
        except MissionStopped as error:
            # Paused (resuming starts the phase again) or finished meanwhile: nothing to fail.
            logger.info("advance: %s", error)
        except AgentRunError as error:
            mission_fail(mission=mission, reason=str(error))
        except Exception as error:
            if database_error_is_transient(error):
                # Not the mission's fault: give back what this run claimed; the task runs again (tasks.py).
                logger.warning("advance: database connection lost (%s); retrying", error)
                connection_reset()
                claims_release(mission_id)
                raise
            logger.exception("advance failed")
            mission_fail(mission=mission, reason=f"Internal error while advancing: {type(error).__name__}: {error}")
