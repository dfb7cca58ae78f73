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
