"""Where each step attempt's clone of the mission repository lives, and removing the ones nobody will use again."""

import re
import shutil
from pathlib import Path

from django.conf import settings


def step_clones_dir(mission_code) -> Path:
    return settings.WORKSPACES_DIR / f"{mission_code.hex}-steps"


def step_clone_path(mission_code, key: str, attempt: int) -> Path:
    return step_clones_dir(mission_code) / f"{key}-{attempt}"


def step_clones_remove(*, mission_code, key: str, below: int | None = None) -> list[str]:
    """Delete the clones of step ``key``'s attempts numbered below ``below`` (all of them when None).

    A worker that dies mid-step leaves its clone behind, and the step's next claim
    takes the next attempt number, so nothing else would ever delete it. Step keys
    have no "-", so ``{key}-{n}`` names exactly one step's clones.
    """
    root = step_clones_dir(mission_code)
    if not root.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(key)}-(\d+)")
    removed = []
    for path in root.iterdir():
        match = pattern.fullmatch(path.name)
        if match and (below is None or int(match.group(1)) < below):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return sorted(removed)
