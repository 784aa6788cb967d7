"""What snapkeep does by itself while it serves: tasks that come due on the services' clock.

Today: retrying the releases (thaws, resumes) that a capture could not get through, the expiry sweep and
re-applying size limits. Snapshot profiles add their periods here. The loop is driven by the same clock as
the services, so tests move time instead of waiting for it.
"""

from snapkeep.scheduler.loop import Scheduler, Task
from snapkeep.scheduler.tasks import standard_tasks

__all__ = ["Scheduler", "Task", "standard_tasks"]
