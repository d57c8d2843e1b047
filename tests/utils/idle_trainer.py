"""The idle stand-in trainer: for tests that need a run's process to exist, not to train.

`causalwatch up` starts trainers with `Settings.python` (`CAUSALWATCH_PYTHON`, "the
interpreter that runs `-m trainer`"). Pointed at this script, every trainer the supervisor
spawns is a process that sleeps until it is signalled: it pays no torch import and takes no
CPU, while spawning, stopping, reaping and queueing stay the real supervisor's.
"""

from __future__ import annotations

import sys
from pathlib import Path

IDLE_TRAINER = """\
#!{python}
# Stand-in for `python -m trainer ...`: keeps its argv (so kill_leftover_trainers finds it),
# trains nothing, ends on SIGTERM like a trainer asked to stop.
import time
time.sleep(3600)
"""


def write_idle_trainer(folder: Path) -> Path:
    """The stand-in interpreter, executable, in `folder`."""
    path = folder / "idle_python"
    if path.exists():  # written once per folder: a running trainer may be reading it
        return path
    path.write_text(IDLE_TRAINER.format(python=sys.executable))
    path.chmod(0o755)
    return path
