"""Log formatting and context: one JSON object per line, ids from extra= or the task."""

from __future__ import annotations

import io
import json
import logging

import pytest

from worker.service.observability import ContextFilter, JsonFormatter, TextFormatter, log_context
from worker.settings import Settings, SettingsError


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.observability.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_carry_extras_and_the_task_context():
    logger, out = _logger(JsonFormatter())
    with log_context(delivery_id="d-1"):
        logger.info("sent %s", "it", extra={"source_id": 7})
        with log_context(item_id=3):
            logger.warning("multi\nline")
    logger.info("outside")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # the newline in a message and the traceback stay inside one line
    first, second, third, fourth = (json.loads(line) for line in lines)
    assert first["message"] == "sent it" and first["level"] == "INFO"
    assert first["source_id"] == 7 and first["delivery_id"] == "d-1"
    assert second["item_id"] == 3 and second["delivery_id"] == "d-1"
    assert second["message"] == "multi\nline"
    assert "delivery_id" not in third and "item_id" not in third
    assert "ValueError: boom" in fourth["exc"]


def test_text_lines_show_the_ids():
    logger, out = _logger(TextFormatter())
    logger.info("hello", extra={"article_id": 5})
    assert out.getvalue().rstrip().endswith("hello [article_id=5]")


def test_settings_for_logs_and_time_limits():
    assert Settings.from_env({"NEWSWATCH_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="NEWSWATCH_LOG_FORMAT"):
        Settings.from_env({"NEWSWATCH_LOG_FORMAT": "xml"})
    limits = {k: (s, h) for k, s, h in Settings.from_env({}).time_limits}
    assert limits["parse"] == (240.0, 300.0)
    env = {"NEWSWATCH_PARSE_TIME_LIMIT": "2", "NEWSWATCH_PARSE_SOFT_TIME_LIMIT": "0"}
    assert ("parse", None, 2.0) in Settings.from_env(env).time_limits
    # Celery would refuse to send every parse task: refuse the setting instead, by name
    with pytest.raises(SettingsError, match="NEWSWATCH_PARSE_SOFT_TIME_LIMIT=5 must not exceed"):
        Settings.from_env(
            {"NEWSWATCH_PARSE_TIME_LIMIT": "2", "NEWSWATCH_PARSE_SOFT_TIME_LIMIT": "5"}
        )


def test_json_mode_turns_raw_stdout_lines_into_json_lines_on_stderr():
    """Celery's signal handlers write straight to fd 1 ("worker: Warm shutdown"): in JSON
    mode that output comes out as JSON lines, and stdout carries nothing raw."""
    import subprocess
    import sys

    code = (
        "import os, time\n"
        "from worker.service.observability import json_stdout\n"
        "json_stdout()\n"
        "os.write(1, b'\\nworker: Warm shutdown (MainProcess)\\n')\n"
        "print('stray print', flush=True)\n"
        "time.sleep(0.5)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout == ""
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [r["message"] for r in records] == ["worker: Warm shutdown (MainProcess)", "stray print"]
    assert all(r["level"] == "WARNING" and r["ts"] for r in records)


_TICK = (
    "import os\n"
    "from celery import beat\n"
    "from celery.app import trace\n"
    "from celery.worker import strategy\n"
    "import logging\n"
    "from worker.service.observability import setup_logging\n"
    "from worker.settings import Settings\n"
    "setup_logging(Settings.from_env(os.environ).log_level)\n"
    "beat.logger.info('Scheduler: Sending due task %s (%s)', 'outbox', 'worker.tasks.outbox')\n"
    "strategy.logger.info('Task %s[%s] received', 'worker.tasks.outbox', 'id-1')\n"
    "trace.logger.info(trace.LOG_SUCCESS, {'name': 'worker.tasks.outbox', 'id': 'id-1',\n"
    "    'runtime': 0.01, 'return_value': None})\n"
    "trace.logger.error('Task %s[%s] raised unexpected: %s', 'worker.tasks.outbox', 'id-2', 'X')\n"
    "logging.getLogger('worker.sources.polling').info('source wire: 3 new items')\n"
)


@pytest.mark.parametrize("level", ["", "INFO", "DEBUG"])
def test_an_idle_service_is_quiet_unless_asked_to_be_verbose(level):
    """Every beat tick logged "Sending due task", "received" and "succeeded" (about 60 lines
    a minute when idle): by default only Celery's warnings and errors pass, our own INFO
    lines still do, and NEWSWATCH_LOG_LEVEL=DEBUG shows them all."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_LOG_LEVEL"] = level
    done = subprocess.run(
        [sys.executable, "-c", _TICK], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    out = done.stderr
    assert "raised unexpected" in out and "source wire: 3 new items" in out
    routine = ("Sending due task", "received", "succeeded in")
    if level == "DEBUG":
        assert all(line in out for line in routine), out
    else:
        assert not any(line in out for line in routine), out
