"""What a config accepted silently: refused (an interval with no unit, a source on a
private address that allow_networks does not allow) or warned about (a watchlist with no
`notify`, a lower-case `and` in a rule), in `check-config` and at start. Warnings are
not fatal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.helpers import netsafety
from tests.helpers.netsafety import FakeDNS
from tests.helpers.processes import run_cli
from worker import cli
from worker.config import ConfigError, load_config

HEAD = """\
channels:
  - {name: local-file, file: alerts.jsonl}
"""
SOURCE = """\
sources:
  - name: wire
    feed: https://example.org/rss.xml
    every: 5m
"""
WATCHLISTS = """\
watchlists:
  - name: un
    rule: Guterres and ceasefire
    notify: [local-file]
  - name: quiet
    keywords: [ceasefire]
  - name: fine
    rule: '"Guterres and the envoys" AND ceasefire'
    notify: [local-file]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_an_interval_without_a_unit_is_refused_with_the_fix(tmp_path):
    cfg = _write(tmp_path, HEAD + SOURCE.replace("every: 5m", "every: 10") + WATCHLISTS)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{cfg}:6: sources[wire].every: 10 has no unit; write 10s or 10m (or 1h, 1d)"
    ]
    cfg.write_text(HEAD + SOURCE.replace("every: 5m", "every: 10s") + WATCHLISTS)
    assert load_config(cfg, env={}).config.sources[0].every == 10


def test_check_config_prints_warnings_and_still_says_ok(tmp_path):
    cfg = _write(tmp_path, HEAD + SOURCE + WATCHLISTS)
    # --offline: the source's name is not resolved (tested below, with a resolver of ours)
    done = run_cli("check-config", "--offline", "--config", str(cfg), text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"{cfg}:9: watchlists[un].rule: warning: lower-case 'and' is read as a word of a "
        "phrase, not an operator; write AND to combine terms (or quote the phrase to keep it)"
    )
    assert lines[1] == (
        f"{cfg}:11: watchlists[quiet]: warning: no 'notify': its matches are stored but "
        "sent to no channel"
    )
    assert lines[2].startswith(f"{cfg}: ok ")
    assert len(lines) == 3  # the quoted phrase in `fine` is no warning


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.20", "127.0.0.1", "localhost"])
def test_a_source_on_a_private_address_is_refused_unless_allowed(tmp_path, host):
    source = SOURCE.replace("https://example.org/rss.xml", f"http://{host}:8080/rss.xml")
    cfg = _write(tmp_path, HEAD + source + WATCHLISTS.replace("Guterres and", "Guterres AND"))
    done = run_cli("check-config", "--config", str(cfg), text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"{cfg}:5: sources[wire].feed: {host} is a private address: every fetch would be "
        f"refused; to monitor it, add it to fetch.allow_networks (e.g. allow_networks: [{host}])"
    ) in done.stdout.splitlines()
    allowed = "fetch: {allow_networks: [" + ("localhost" if host == "localhost" else host) + "]}\n"
    cfg.write_text(cfg.read_text() + allowed)
    done = run_cli("check-config", "--config", str(cfg), text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_warnings_are_logged_at_start(tmp_path, caplog):
    from worker.cli.context import Context
    from worker.cli.service import warn_unreachable
    from worker.settings import Settings

    source = SOURCE.replace("https://example.org/rss.xml", "http://10.0.0.5/rss.xml")
    cfg = _write(tmp_path, HEAD + source + WATCHLISTS)
    env = {"NEWSWATCH_CONFIG": str(cfg), "NEWSWATCH_DATA_DIR": str(tmp_path)}
    caplog.set_level(logging.WARNING, logger="newswatch")
    warn_unreachable(Context(env, Settings.from_env(env)))  # no exit: not fatal at start
    text = caplog.text
    assert "lower-case 'and'" in text and "no 'notify'" in text
    assert "10.0.0.5 is a private address" in text


fake_dns = netsafety.fake_dns  # the fixture: a resolver of ours, every connect() recorded

NAMED = """\
sources:
  - name: intranet
    feed: https://intranet.example/rss.xml
  - name: wire
    feed: https://news.example/rss.xml
  - name: gone
    feed: https://gone.example/rss.xml
watchlists:
  - {name: w, keywords: [x], notify: [local-file]}
"""


def test_a_host_name_resolving_to_a_private_address_is_refused(tmp_path, fake_dns: FakeDNS, capsys):
    fake_dns.records |= {"intranet.example": ["10.1.2.3"], "news.example": ["93.184.216.34"]}
    cfg = _write(tmp_path, HEAD + NAMED)
    assert cli.main(["check-config", "--config", str(cfg)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert (
        f"{cfg}:5: sources[intranet].feed: intranet.example resolves to 10.1.2.3, a private "
        "address: every fetch would be refused; to monitor it, add it to "
        "fetch.allow_networks (e.g. allow_networks: [intranet.example])"
    ) in lines
    # DNS that does not answer is a warning, not a failure of the check
    (gone,) = [line for line in lines if "gone.example" in line]
    assert gone.startswith(f"{cfg}:9: sources[gone].feed: warning: could not resolve gone.example")
    assert not [line for line in lines if "news.example" in line]  # public: fine
    assert fake_dns.connects == []  # resolved through the (patched) resolver, nothing sent
    # allowed by name or by network: ok, the unresolved name still only a warning
    for allow in ("[intranet.example]", "[10.0.0.0/8]"):
        _write(tmp_path, HEAD + NAMED + f"fetch: {{allow_networks: {allow}}}\n")
        assert cli.main(["check-config", "--config", str(cfg)]) == 0, allow
        out = capsys.readouterr().out
        assert "could not resolve gone.example" in out
        assert out.splitlines()[-1].endswith("3 sources, 1 watchlists, 1 channels")
    # --offline: no name is resolved at all
    _write(tmp_path, HEAD + NAMED)
    fake_dns.lookups.clear()
    assert cli.main(["check-config", "--offline", "--config", str(cfg)]) == 0
    assert fake_dns.lookups == []


def test_a_resolver_that_never_answers_is_a_warning(tmp_path, monkeypatch):
    import socket
    import threading

    from worker.config.checks import resolved_address_problems

    never = threading.Event()

    def hanging(*args, **kwargs):
        never.wait(30)  # released at the end of the test
        raise socket.gaierror(socket.EAI_AGAIN, "late")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    cfg = _write(tmp_path, HEAD + NAMED)
    try:
        errors, warnings = resolved_address_problems(load_config(cfg), timeout=0.2)
    finally:
        never.set()
    assert errors == []
    keys = [w.key for w in warnings]
    assert keys == ["sources[intranet].feed", "sources[wire].feed", "sources[gone].feed"]
    assert all("could not resolve" in w.message and "no answer" in w.message for w in warnings)
