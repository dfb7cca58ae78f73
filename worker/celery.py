"""Entry for Celery's own command, `celery -A worker worker|beat|inspect ...`.

The app built from this process's environment. Nothing in newswatch imports this
module: the `newswatch` commands build their settings and app themselves
(worker/cli), and the tasks register on whichever app loads them (worker/tasks.py).
A worker started this way is set up as `newswatch worker` sets it up (metrics folder,
logging, config check, migrations): Celery's `celeryd_init`, worker/service/startup.py.
"""

from worker.app import create_app
from worker.settings import Settings

app = create_app(Settings.from_env())
