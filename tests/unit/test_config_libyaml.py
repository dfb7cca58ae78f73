"""Reading a config with libyaml gives what the pure-Python reader gives: the same config,
the same origins (file and line of every key) and the same problems at the same lines.

libyaml composes (worker/config/yamlread.py); the bounds and duplicate keys are checked on
its nodes, and a file past a bound, or one libyaml cannot read, is read again by the pure
reader. Each file here is loaded both ways and the results compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.config_scale import write_config
from worker.config import ConfigError, load_config, yamlread

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "hostile-config"

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")

# what libyaml composes itself, checked on its nodes (no second reading)
READ_BY_LIBYAML = """\
x-defaults: &defaults
  every: 30m
  full_text: true
sources:
  - name: wire
    feed: https://example.org/rss.xml
    <<: *defaults
  - name: pages
    page: https://example.org/news
    follow: '/story/[0-9]+'
    every: 1h
  - {name: dup, feed: "https://example.org/a", feed: "https://example.org/b"}
watchlists:
  - name: people
    names:
      - Some Name
      - name: Other Person
        aliases: [O. Person, &alias OP]
    keywords: [troops, *alias]
    notify: [log]
    min_mentions: 2
  - name: people
    rule: troops AND ceasefire
channels:
  - name: log
    file: /tmp/alerts.jsonl
    timezone: Europe/Berlin
fetch:
  connect_timeout: 5.5
  allow_networks: [10.0.0.0/8]
retention:
  entries: 400d
"""

# each crosses a bound or is not YAML: read again by the pure reader
READ_AGAIN = {
    "tab.yaml": "sources:\n\t- name: x\n",
    "two-documents.yaml": "a: 1\n---\nb: 2\n",
    "undefined-alias.yaml": "sources: [*nowhere]\n",
    "deep-scalar.yaml": "x-deep: " + "[" * 64 + "1" + "]" * 64 + "\n",
}


def load_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object, int]:
    """(libyaml's result, the pure reader's, how many times libyaml's reading fell back);
    a result is the LoadedConfig's parts or the problems, as text."""
    calls = []
    pure = yamlread._compose_pure

    def counted(text: str):  # type: ignore[no-untyped-def]
        calls.append(1)
        return pure(text)

    def result() -> object:
        try:
            loaded = load_config(path, env={"HOME": "/home/x"})
        except ConfigError as exc:
            return [str(p) for p in exc.problems]
        return loaded.config, dict(loaded.origins), loaded.version

    with monkeypatch.context() as m:
        m.setattr(yamlread, "_compose_pure", counted)
        fast = result()
        fell_back = len(calls)
        m.setattr(yamlread, "LIBYAML", False)
        slow = result()
    return fast, slow, fell_back


CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*.yaml") if p.name != "expected.yaml")


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_hostile_corpus_reads_alike(name, monkeypatch):
    fast, slow, _ = load_both(CORPUS / name, monkeypatch)
    assert fast == slow


@pytest.mark.parametrize("name", ["example.yaml", "newswatch.yaml"])
def test_shipped_configs_read_alike_by_libyaml(name, monkeypatch):
    fast, slow, fell_back = load_both(REPO / "config" / name, monkeypatch)
    assert fast == slow
    assert fell_back == 0


def test_anchors_merges_and_duplicates_read_alike_by_libyaml(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(READ_BY_LIBYAML)
    fast, slow, fell_back = load_both(path, monkeypatch)
    assert fast == slow
    assert fell_back == 0
    assert any("duplicate key 'feed'" in p for p in fast)  # type: ignore[union-attr]
    assert any("two watchlists are named 'people'" in p for p in fast)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(READ_AGAIN))
def test_unreadable_or_past_a_bound_is_read_again(name, tmp_path, monkeypatch):
    path = tmp_path / name
    path.write_text(READ_AGAIN[name])
    fast, slow, fell_back = load_both(path, monkeypatch)
    assert fast == slow
    assert fell_back == 1
    assert all(p.startswith(f"{path}:") for p in fast)  # type: ignore[union-attr]


def test_a_folder_of_files_reads_alike(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(
        READ_BY_LIBYAML.replace("  - name: people\n    rule", "  - name: others\n    rule")
    )
    (tmp_path / "b.yml").write_text("sources:\n  - name: more\n    feed: https://example.net/\n")
    fast, slow, fell_back = load_both(tmp_path, monkeypatch)
    assert fast == slow
    assert fell_back == 0


def test_a_generated_config_of_many_sources_reads_alike(tmp_path, monkeypatch):
    path = tmp_path / "newswatch.yaml"
    write_config(path, 2000)
    fast, slow, fell_back = load_both(path, monkeypatch)
    assert fell_back == 0
    assert fast == slow
    assert len(fast[0].sources) == 2000  # type: ignore[index]
