"""Whether this machine can run the real sandbox, for tests that need bubblewrap."""

import os

from agents.runtime import sandbox
from tests.system import require_package

BWRAP_OK, BWRAP_REASON = sandbox._probe_bwrap()


def require_bwrap() -> None:
    """Skip the calling test when bubblewrap truly cannot run here; under CI, fail instead of skipping."""
    require_package("bubblewrap", BWRAP_OK, BWRAP_REASON)


def fall_back_without_bwrap() -> str:
    """Outside CI, without a usable bwrap, choose the weaker sandbox explicitly so missions still run code.

    Returns the one line the test summary shows ('' when bwrap works or the choice was already made).
    """
    if BWRAP_OK or os.environ.get("CI") or os.environ.get("SANDBOX_BACKEND"):
        return ""
    os.environ["SANDBOX_BACKEND"] = "subprocess"
    return (
        f"sandbox: bubblewrap unusable ({BWRAP_REASON.rstrip('.')}); "
        "missions ran with SANDBOX_BACKEND=subprocess and the bwrap tests skipped"
    )
