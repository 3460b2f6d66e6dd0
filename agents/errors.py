"""Errors the engine handles. Plain classes, so callers need no AutoGen import."""


class AgentRunError(Exception):
    """A model call or agent run could not produce a usable result; the message is shown on the mission page."""


class BudgetExceeded(AgentRunError):
    """The next model call's upper-bound cost does not fit the mission's remaining budget."""


class MissionStopped(AgentRunError):
    """The mission was cancelled or finished while an agent was working."""


class ModelOutputError(AgentRunError):
    """The model answered, but not in the shape asked for, even after a repair request."""


class ModelUnavailable(AgentRunError):
    """The model server could not be reached or kept failing."""
