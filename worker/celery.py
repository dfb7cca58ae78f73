"""Entry for Celery's own command, `celery -A worker worker|beat|inspect ...`.

The app built from this process's environment. Nothing in newswatch imports this
module: the `newswatch` commands build their settings and app themselves
(worker/cli), and the tasks register on whichever app loads them (worker/tasks.py).
"""

from worker.app import create_app
from worker.settings import Settings

app = create_app(Settings.from_env())
