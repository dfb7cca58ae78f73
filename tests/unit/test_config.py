"""The config file: schema, ${VAR} interpolation and errors that name file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import NODNS
from worker.config import ConfigError, load_config, parse_interval

REPO = Path(__file__).resolve().parents[2]

BAD = """\
sources:
  - name: world
    feed: https://example.org/rss.xml
    every: 5 minutes
  - name: pages
    page: https://example.org/articles/
    colour: blue
watchlists:
  - name: people
    names: [Hadi al-Ameri]
    notify: [nowhere]
channels:
  - name: desk
    email: [desk@example.org]
"""


def problems(path: Path, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), (90, 90)]
)
def test_intervals(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "0s", "", "m", True, -5])
def test_bad_intervals(text):
    with pytest.raises(ValueError):
        parse_interval(text)


def test_each_problem_is_one_line_with_file_line_and_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BAD)
    found = problems(cfg)
    assert found == [
        f"{cfg}:4: sources[world].every: '5 minutes' is not an interval; "
        "write e.g. 30s, 5m, 1h30m or 1d",
        f"{cfg}:7: sources[pages].colour: unknown key",
        f"{cfg}:11: watchlists[people].notify[0]: no channel named 'nowhere' (channels: desk)",
    ]


def test_check_config_command_prints_each_problem_and_exits_1(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BAD)
    run = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-config", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert run.returncode == 1
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{cfg}:") for line in lines)
    assert "every" in lines[0] and "colour" in lines[1] and "nowhere" in lines[2]


def test_shipped_configs_are_valid():
    for name in ("newswatch.yaml", "example.yaml"):
        run = subprocess.run(
            [sys.executable, "-m", "worker.cli", "check-config", "--config", f"config/{name}"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            # no DNS: the sources' host names are "could not resolve" warnings, not queries
            env={"PATH": "/usr/bin:/bin", "NEWSWATCH_SMTP_PASSWORD": "x", "PYTHONPATH": str(NODNS)},
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_env_interpolation_and_missing_variable(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "channels:\n"
        "  - name: hook\n"
        "    webhook: https://hooks.example.org/x\n"
        "    secret: ${HOOK_SECRET}\n"
        "  - name: hook2\n"
        "    webhook: ${HOOK_URL:-https://default.example.org/}\n"
    )
    loaded = load_config(cfg, env={"HOOK_SECRET": "whsec_abc"})
    assert loaded.config.channel("hook").secret.get_secret_value() == "whsec_abc"
    assert loaded.config.channel("hook2").webhook == "https://default.example.org/"
    assert "whsec_abc" not in repr(loaded.config)  # secrets never print
    assert problems(cfg) == [
        f"{cfg}:4: channels[hook].secret: environment variable HOOK_SECRET is not set"
    ]


def test_invalid_yaml_names_the_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources:\n  - name: a\n    feed: [unclosed\n")
    (found,) = problems(cfg)
    assert found.startswith(f"{cfg}:") and "not valid YAML" in found


def test_source_kinds_and_duplicates(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "sources:\n"
        "  - name: a\n    feed: https://e.org/rss\n    page: https://e.org/\n"
        "  - name: b\n    feed: ftp://e.org/rss\n"
        "  - name: c\n    page: https://e.org/\n    follow: '([unclosed'\n"
    )
    found = problems(cfg)
    assert any("exactly one of 'feed' or 'page'" in p and ":2:" in p for p in found)
    assert any("not an http(s) URL" in p and "sources[b].feed" in p for p in found)
    assert any("not a valid regular expression" in p and "sources[c].follow" in p for p in found)


def test_a_folder_of_files_is_one_config(tmp_path):
    (tmp_path / "10-sources.yaml").write_text(
        "sources:\n  - name: a\n    feed: https://e.org/rss\n"
    )
    (tmp_path / "20-watch.yaml").write_text(
        "watchlists:\n  - name: w\n    keywords: [x]\n    notify: [c]\n"
        "channels:\n  - name: c\n    file: out.jsonl\n"
    )
    loaded = load_config(tmp_path, env={})
    assert [s.name for s in loaded.config.sources] == ["a"]
    (tmp_path / "30-more.yaml").write_text("sources:\n  - name: a\n    feed: https://e.org/2\n")
    (found,) = problems(tmp_path)
    assert "two sources are named 'a'" in found


def test_version_changes_with_content(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("watchlists:\n  - name: w\n    keywords: [x]\n")
    v1 = load_config(cfg, env={}).version
    cfg.write_text("watchlists:\n  - name: w\n    keywords: [y]\n")
    assert load_config(cfg, env={}).version != v1


def test_notices_to_an_unknown_channel_names_the_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "channels:\n  - name: ops\n    file: ops.jsonl\n"
        "notices:\n  channel: opz\n  source_failing_after: 2h\n"
    )
    assert problems(cfg) == [f"{cfg}:5: notices.channel: no channel named 'opz' (channels: ops)"]


def test_a_config_error_is_an_input_error():
    """One error hierarchy (worker/core/errors.py): a bad config is a person's input,
    permanent until edited."""
    from worker.config import ConfigError, ConfigProblem
    from worker.core.errors import InputError

    exc = ConfigError([ConfigProblem("c.yaml", 3, "sources[a].every", "not an interval")])
    assert isinstance(exc, InputError)
    assert (exc.kind, exc.permanent) == ("config", True)
    assert str(exc) == "c.yaml:3: sources[a].every: not an interval"


def test_every_digest_schedule_the_example_documents_is_accepted():
    """config/example.yaml documented `cron "0 8,17 * * 1-5 [zone]"`, which is refused:
    each form its `digest:` comment shows must parse, and the example itself loads."""
    from worker.core.alert_policy import parse_schedule

    text = (REPO / "config" / "example.yaml").read_text()
    (line,) = [x for x in text.splitlines() if x.strip().startswith("digest: daily")]
    forms = [f.strip() for f in line.split("#", 1)[1].split("|")]
    assert len(forms) == 4, forms
    for form in forms:
        written = form.removesuffix("(cron)").strip().strip('"')
        parse_schedule(written.replace("[zone]", "Europe/Berlin"))
        parse_schedule(written.replace(" [zone]", ""))
    loaded = load_config(REPO / "config" / "example.yaml", env={"NEWSWATCH_SMTP_PASSWORD": "x"})
    assert loaded.config.channel("security-desk").digest == "daily 08:00"


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("sources:\n\t- name: a\n", 2, "tabs are not allowed in YAML, indent with spaces"),
        (
            "sources:\n  - name: a\n    feed: https://a.org/\n   ? every: 5m\n",
            4,
            "check the indentation of this line and the line above",
        ),
    ],
)
def test_yaml_errors_say_to_check_the_indentation(tmp_path, text, line, says):
    """PyYAML's words ("expected <block end>, but found ...", a tab "that cannot start any
    token") with what to do about them, at file:line."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    (found,) = problems(cfg)
    assert found.startswith(f"{cfg}:{line}: not valid YAML: ") and says in found, found


def test_schema_errors_are_in_plain_words(tmp_path):
    """No pydantic jargon ("Input should be a valid tuple" for `notify: local-file`)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "channels:\n  - {name: local-file, file: a.jsonl}\n"
        "watchlists:\n  - name: a\n    keywords: [x]\n    notify: local-file\n"
        "    min_mentions: lots\n    fold_diacritics: maybe\n"
        "smtp: {security: tls, password: 12}\n"
    )
    found = problems(cfg)
    assert found == [
        f"{cfg}:6: watchlists[a].notify: notify must be a list of channel names, e.g. [local-file]",
        f"{cfg}:7: watchlists[a].min_mentions: min_mentions must be a whole number, not 'lots'",
        f"{cfg}:8: watchlists[a].fold_diacritics: fold_diacritics must be true or false, "
        "not 'maybe'",
        f"{cfg}:9: smtp.security: security must be 'none', 'starttls' or 'ssl'",
        f"{cfg}:9: smtp.password: password must be text, not '...'",
    ]
    assert not any("Input should" in p for p in found)
