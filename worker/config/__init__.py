"""The config file: sources, watchlists and channels.

Loaded from YAML, `${VAR}` interpolated from the environment, validated with
pydantic. Every problem is reported with the file, the line, the key and what
is wrong, and all problems are reported at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path("config/newswatch.yaml")

_INTERVAL_RE = re.compile(
    r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_interval(value: str | int | float) -> int:
    """'5m', '1h30m', '90s', '1d', or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("an interval is a duration like 30s, 5m, 1h or 1d")
    if isinstance(value, int | float):
        seconds = int(value)
    else:
        m = _INTERVAL_RE.match(value)
        if not m or not any(m.groups()):
            raise ValueError(f"{value!r} is not an interval; write e.g. 30s, 5m, 1h30m or 1d")
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    if seconds <= 0:
        raise ValueError("an interval must be longer than zero")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sources -----------------------------------------------------------------


class SourceSpec(_Strict):
    name: str = Field(min_length=1)
    feed: str | None = None  # RSS/Atom/JSON Feed URL
    page: str | None = None  # listing page whose matching links are articles
    follow: str | None = None  # regex a link on `page` must match to be an article
    every: int = 900  # seconds between polls
    full_text: bool = False  # fetch each feed entry's page and extract the article
    enabled: bool = True
    # politeness (docs/operations.md): the feed's ttl / Cache-Control / Expires may stretch
    # the interval from `every` up to `max_every` (default 4 x every), never shorten it
    max_every: int | None = None
    respect_robots: bool = True  # check robots.txt before fetching the feed, page and articles
    disable_after: int = Field(default=5, ge=1)  # permanent errors (404/410) in a row

    @field_validator("every", "max_every", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> int | None:
        return None if v is None else parse_interval(v)

    @property
    def longest_interval(self) -> int:
        return max(self.max_every or 4 * self.every, self.every)

    @field_validator("feed", "page")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v, re.I):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("follow")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        # the pattern meets links a stranger writes: RE2, linear time, or refused here
        from worker.core.patterns import PatternError, compile_pattern

        if v is not None:
            try:
                compile_pattern(v)
            except PatternError as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if bool(self.feed) == bool(self.page):
            raise ValueError("a source has exactly one of 'feed' or 'page'")
        if self.follow and not self.page:
            raise ValueError("'follow' only applies to a 'page' source")
        if self.max_every is not None and self.max_every < self.every:
            raise ValueError("'max_every' must not be shorter than 'every'")
        return self

    @property
    def kind(self) -> Literal["feed", "page"]:
        return "feed" if self.feed else "page"

    @property
    def url(self) -> str:
        return self.feed or self.page or ""


# --- alert policies ----------------------------------------------------------


class AlertPolicySpec(_Strict):
    """How alerts reach a channel (worker/alerts/policy.py, docs/alerts.md "Policies").

    Set on a channel; a watchlist's `alerts:` overrides any of them for its own
    alerts. Unset (None) means "inherit": immediate, no throttle, no quiet hours,
    any relevance, no story updates.
    """

    digest: str | None = None  # hourly | daily 08:00 Europe/Berlin | cron [zone]
    throttle: int | None = Field(default=None, ge=1)  # immediate alerts per watchlist per hour
    quiet_hours: str | None = None  # 22:00-07:00 [zone]
    min_relevance: str | None = None  # any | title | N | title_or_N
    story_updates: bool | None = None  # a new source of an alerted story sends an update

    @field_validator("digest")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        from worker.alerts.policy import parse_schedule

        if v is not None:
            parse_schedule(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        from worker.alerts.policy import parse_quiet_hours

        if v is not None:
            parse_quiet_hours(v)
        return v

    @field_validator("min_relevance", mode="before")
    @classmethod
    def _relevance(cls, v: object) -> str | None:
        from worker.alerts.policy import parse_relevance

        if v is None:
            return None
        parse_relevance(v)  # type: ignore[arg-type]
        return str(v)


# --- watchlists --------------------------------------------------------------


class EntitySpec(_Strict):
    """A person or organisation: a name and the other ways it is written."""

    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()  # strong: trigger alone
    weak_aliases: tuple[str, ...] = ()  # trigger only with context or a strong alias
    context: tuple[str, ...] = ()  # terms that make weak aliases count

    @field_validator("aliases", "weak_aliases", "context")
    @classmethod
    def _no_blank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not a.strip() for a in v):
            raise ValueError("empty alias")
        return v


class WatchlistSpec(_Strict):
    name: str = Field(min_length=1)
    names: tuple[EntitySpec, ...] = ()
    keywords: tuple[str, ...] = ()
    rule: str | None = None  # boolean rule over names and keywords (see docs/rules.md)
    exclude: tuple[str, ...] = ()  # any of these in the article suppresses the match
    sources: tuple[str, ...] = ()  # only these sources (empty: all)
    exclude_sources: tuple[str, ...] = ()
    min_mentions: int = Field(default=1, ge=1)
    fold_diacritics: bool = True
    exact_case_acronyms: bool = True  # all-caps tokens of up to 4 letters match case-exactly
    notify: tuple[str, ...] = ()
    alerts: AlertPolicySpec | None = None  # overrides the channels' alert policy

    @field_validator("names", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        # `- Some Name` is shorthand for `- name: Some Name`
        if isinstance(v, list):
            return [{"name": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("keywords", "exclude")
    @classmethod
    def _no_blank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k.strip() for k in v):
            raise ValueError("empty term")
        return v

    @model_validator(mode="after")
    def _something_to_watch(self) -> WatchlistSpec:
        if not (self.names or self.keywords or self.rule):
            raise ValueError("a watchlist needs 'names', 'keywords' or a 'rule'")
        return self


# --- channels ----------------------------------------------------------------


class SmtpSpec(_Strict):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "newswatch@localhost"
    timeout: float = Field(default=30.0, gt=0)


class ChannelSpec(AlertPolicySpec):  # its policy fields: digest, throttle, ...
    name: str = Field(min_length=1)
    email: tuple[str, ...] = ()
    smtp: SmtpSpec | None = None  # overrides the top-level `smtp`
    webhook: str | None = None
    secret: SecretStr | None = None  # Standard Webhooks secret (whsec_...)
    format: Literal["standard", "slack", "teams", "discord"] = "standard"
    file: str | None = None  # append alerts as JSON lines to this path
    timezone: str = "UTC"

    @field_validator("email")
    @classmethod
    def _emails(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for addr in v:
            if not re.match(r"^[^@\s<>,]+@[^@\s<>,]+$", addr):
                raise ValueError(f"{addr!r} is not an email address")
        return v

    @field_validator("webhook")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v, re.I):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> ChannelSpec:
        kinds = [k for k in ("email", "webhook", "file") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("a channel has exactly one of 'email', 'webhook' or 'file'")
        return self

    @property
    def kind(self) -> Literal["email", "webhook", "file"]:
        return "email" if self.email else "webhook" if self.webhook else "file"


# --- fetch settings ----------------------------------------------------------


class FetchSpec(_Strict):
    user_agent: str = "newswatch/0.1 (+https://github.com/newswatch/newswatch)"
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=20.0, gt=0)
    deadline: float = Field(default=60.0, gt=0)  # whole request, body included
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)  # decompressed
    # seconds between request starts to one host (a robots.txt Crawl-delay may ask more)
    min_interval: float = Field(default=0.2, ge=0, le=60)
    # networks (CIDR) or host names that may be fetched although private/loopback
    allow_networks: tuple[str, ...] = ()


class NoticesSpec(_Strict):
    """Operational notices (source failing, delivery dead, config rejected or shrunk, the
    watchdog's conditions, feed gaps) to one channel."""

    channel: str = Field(min_length=1)
    source_failing_after: int = 7200  # seconds without a successful fetch
    delivery_dead: bool = True
    config_rejected: bool = True
    config_shrunk: bool = True  # a reload removed more than half of the sources or watchlists
    # the watchdog (worker/service/watchdog.py, docs/operations.md "Watchdog and heartbeat"); the
    # limits apply to the heartbeat's health too, with these defaults when no `notices:`
    no_fetch_after: int = 1800  # no enabled source fetched within its interval plus this
    queue_stalled_after: int = 1800  # the oldest waiting item, article or delivery
    deliveries_stalled_after: int = 1800  # matches made but nothing sent for this long
    gaps: bool = True  # a feed moved past everything seen (worker/sources/gaps.py)

    @field_validator(
        "source_failing_after",
        "no_fetch_after",
        "queue_stalled_after",
        "deliveries_stalled_after",
        mode="before",
    )
    @classmethod
    def _interval(cls, v: Any) -> int:
        return parse_interval(v)


class HeartbeatSpec(_Strict):
    """A URL pinged after each healthy watchdog check: a dead-man's switch (healthchecks.io,
    Cronitor) that notices from outside when newswatch stops. The URL is a secret."""

    url: SecretStr
    every: int = 60  # never more often than this, across all processes
    method: Literal["get", "post"] = "get"
    fail_url: SecretStr | None = None  # pinged instead on an unhealthy check (e.g. <url>/fail)

    @field_validator("every", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> int:
        return parse_interval(v)

    @field_validator("url", "fail_url")
    @classmethod
    def _http(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v.get_secret_value(), re.I):
            # the value itself is not quoted: it is a secret
            raise ValueError("must be an http(s) URL")
        return v


class RetentionSpec(_Strict):
    """How long each kind of row is kept (docs/operations.md, "Retention").

    Pruning (worker/service/retention.py) deletes in small batches and never touches work in
    flight. `entries` is the memory behind "never twice": an entry seen (or an article
    alerted) within it never alerts again, so it is the longest.
    """

    # body and lead of an article (title, link, hash and dates stay), with its
    # near-duplicate fingerprints: at least the 3-day near-duplicate window
    article_text: int = 30 * 86400
    attempts: int = 30 * 86400  # the log of delivery attempts
    deliveries: int = 365 * 86400  # sent or dead deliveries, digest batches and notices
    entries: int = 400 * 86400  # items (seen entry keys), article stubs and matches
    batch: int = Field(default=500, ge=10, le=10000)  # rows per statement, each committed

    @field_validator("article_text", "attempts", "deliveries", "entries", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> int:
        return parse_interval(v)

    @field_validator("article_text")
    @classmethod
    def _near_dup_window(cls, v: int) -> int:
        # worker.articles.stories.NEAR_DUP_WINDOW reads the text of recent articles
        if v < 3 * 86400:
            raise ValueError("article_text must be at least 3d (the near-duplicate window)")
        return v

    @field_validator("attempts", "deliveries", "entries")
    @classmethod
    def _a_day(cls, v: int) -> int:
        if v < 86400:
            raise ValueError("must be at least 1d")
        return v


class Config(_Strict):
    sources: tuple[SourceSpec, ...] = ()
    watchlists: tuple[WatchlistSpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    smtp: SmtpSpec = SmtpSpec()
    fetch: FetchSpec = FetchSpec()
    notices: NoticesSpec | None = None
    heartbeat: HeartbeatSpec | None = None
    # A service with no source or no watchlist watches nothing: refused (check-config,
    # start-up, reload) unless this says it is meant, e.g. a standby
    allow_empty: bool = False
    retention: RetentionSpec = RetentionSpec()

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        problems: list[str] = []
        for kind, items in (
            ("source", self.sources),
            ("watchlist", self.watchlists),
            ("channel", self.channels),
        ):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    problems.append(f"two {kind}s are named {item.name!r}")
                seen.add(item.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel(self, name: str) -> ChannelSpec:
        return next(c for c in self.channels if c.name == name)

    def source(self, name: str) -> SourceSpec | None:
        return next((s for s in self.sources if s.name == name), None)


# --- loading -----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: str
    version: str  # sha256 of the raw file content, recorded on matches
    # where each key came from: ("watchlists", 2, "rule") -> (file, line), for later errors
    origins: Mapping[tuple, tuple[str, int | None]] = field(default_factory=dict, compare=False)

    def where(self, *path: Any) -> tuple[str, int | None]:
        """(file, line) of a key, or of its nearest parent that has one."""
        return _origin_for(tuple(path), dict(self.origins), self.path)


# --- reading YAML safely ------------------------------------------------------------
# A config file is input too: a worker reloads whatever is written there. These bounds
# keep a hostile or broken file from taking a worker's memory or time (documented in
# docs/operations.md, "Bad config", and config/example.yaml).
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # per file
MAX_DEPTH = 64  # nesting of lists and mappings; a real config uses about 6
# An alias repeats its anchor's whole subtree wherever it appears: nested aliases grow
# exponentially ("billion laughs"). Bounded per file, counted while composing, before
# anything is built.
MAX_ALIAS_VALUES = 100_000
MAX_ALIAS_CHARS = 10_000_000


class _Refused(yaml.YAMLError):
    """A file the loader will not build; `mark` says where."""

    def __init__(self, mark: yaml.Mark, message: str):
        super().__init__(message)
        self.mark, self.message = mark, message


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer with bounds on depth and on alias expansion, and a record of
    duplicate keys (YAML keeps the last silently; we refuse the file)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.alias_values = 0
        self.alias_chars = 0
        self.sizes: dict[int, tuple[int, int]] = {}
        self.problems: list[tuple[int, str]] = []  # (line, message), the file goes on

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise _Refused(
                    event.start_mark,
                    f"alias *{event.anchor} is inside its own anchor: it would never end",
                )
            node = super().compose_node(parent, index)
            values, chars = self._size(node)
            self.alias_values += values
            self.alias_chars += chars
            if self.alias_values > MAX_ALIAS_VALUES or self.alias_chars > MAX_ALIAS_CHARS:
                raise _Refused(
                    event.start_mark,
                    f"alias *{event.anchor} repeats {values:,} values ({chars:,} characters); "
                    f"the aliases of one file may repeat at most {MAX_ALIAS_VALUES:,} values "
                    f"and {MAX_ALIAS_CHARS:,} characters",
                )
            return node
        if self.depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        anchor = getattr(event, "anchor", None)
        self.depth += 1
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.discard(anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                self.problems.append((line, "a key must be a plain value, not a list or mapping"))
                continue
            ident = (key.tag, key.value)
            if ident in first:
                self.problems.append(
                    (line, f"duplicate key {key.value!r} (first at line {first[ident]})")
                )
            else:
                first[ident] = line
        return node

    def _size(self, node: yaml.Node) -> tuple[int, int]:
        """(values, characters) the node stands for with every alias in it expanded;
        memoized, so a shared subtree is measured once."""
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, yaml.ScalarNode):
            size = (1, len(node.value))
        else:
            children = (
                [n for pair in node.value for n in pair]
                if isinstance(node, yaml.MappingNode)
                else node.value
            )
            values, chars = 1, 0
            for child in children:
                v, c = self._size(child)
                values, chars = values + v, chars + c
            size = (values, chars)
        self.sizes[id(node)] = size
        return size


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Python values from a composed YAML node, remembering each key's line.

    A value YAML cannot construct (`2024-13-45` read as a date, an unknown `!tag`) is a
    problem at its line, not an exception."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.problems: list[tuple[int, str]] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: tuple = ()) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            merged: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    merged.append(value_node)
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # refused by the loader
                key = self.scalar(key_node)
                if isinstance(key, list | dict | set):
                    continue
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key))
            for source in merged:  # `<<: *defaults`: keys written here win
                self._merge(out, source, path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        return self.scalar(node)

    def _merge(self, out: dict, source: yaml.Node, path: tuple) -> None:
        sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for one in sources:
            if not isinstance(one, yaml.MappingNode):
                self.problems.append((one.start_mark.line + 1, "'<<' merges only mappings"))
                continue
            outer, self.lines = self.lines, {}
            try:
                values = self.build(one, path)
            finally:
                inner, self.lines = self.lines, outer
            added = {key for key in values if key not in out}
            for key in added:
                out[key] = values[key]
            depth = len(path)
            for p, line in inner.items():  # lines of the merged keys: where they are written
                if len(p) > depth and p[depth] in added:
                    self.lines.setdefault(p, line)

    def scalar(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.append((node.start_mark.line + 1, f"cannot read this value: {problem}"))
            return node.value  # the problem is reported once, not again as a wrong type


def _compose(text: str) -> tuple[yaml.Node | None, list[tuple[int, str]]]:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node(), loader.problems
    finally:
        loader.dispose()


def _interpolate(value: Any, path: tuple, env: Mapping[str, str], missing: list[tuple]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.append((path, name))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, missing) for i, v in enumerate(value)]
    return value


def _key_name(path: tuple, data: Any) -> str:
    """('sources', 2, 'every') -> 'sources[2:world-news].every' for the message."""
    parts: list[str] = []
    node = data
    for p in path:
        if isinstance(p, int):
            label = f"[{p}]"
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict):
                name = node[p].get("name")
                if isinstance(name, str):
                    label = f"[{name}]"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(p))
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts)


def _line_for(path: tuple, lines: dict[tuple, int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _iter_yaml_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    else:
        yield path


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, interpolate and validate a config file (or a folder of them).

    Raises ConfigError listing every problem with file and line.
    """
    env = os.environ if env is None else env
    root = Path(path)
    problems: list[ConfigProblem] = []
    merged: dict[str, list | dict] = {}
    origin: dict[tuple, tuple[str, int | None]] = {}  # merged path -> (file, line)
    digest = hashlib.sha256()
    if not root.exists():
        raise ConfigError([ConfigProblem(str(root), None, "", "no such file or folder")])
    for file in _iter_yaml_files(root):
        fname = str(file)
        try:
            with file.open("rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            problems.append(ConfigProblem(fname, None, "", f"cannot read: {exc.strerror}"))
            continue
        if len(raw) > MAX_CONFIG_BYTES:
            problems.append(
                ConfigProblem(
                    fname, None, "", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB; split it"
                )
            )
            continue
        digest.update(fname.encode() + b"\0" + raw + b"\0")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            problems.append(ConfigProblem(fname, line, "", "not UTF-8 text"))
            continue
        try:
            node, yaml_problems = _compose(text)
        except _Refused as exc:
            problems.append(ConfigProblem(fname, exc.mark.line + 1, "", exc.message))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            problems.append(
                ConfigProblem(fname, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")
            )
            continue
        if node is None:
            continue
        builder = _Builder()
        data = builder.build(node)
        lines = builder.lines
        problems.extend(
            ConfigProblem(fname, line, "", message)
            for line, message in sorted(yaml_problems + builder.problems)
        )
        if not isinstance(data, dict):
            problems.append(
                ConfigProblem(fname, 1, "", "the top level must be a mapping of sections")
            )
            continue
        # `x-...` top-level keys are a place for anchors (`x-defaults: &defaults`), as in
        # Compose files; they are not config sections
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        missing: list[tuple] = []
        data = _interpolate(data, (), env, missing)
        for p, name in missing:
            problems.append(
                ConfigProblem(
                    fname,
                    _line_for(p, lines),
                    _key_name(p, data),
                    f"environment variable {name} is not set",
                )
            )
        # the line of every path, by (section, list index): one pass, not one per item
        # (a config of 10,000 sources has ~40,000 paths)
        by_item: dict[tuple, list[tuple[tuple, int]]] = {}
        for p, ln in lines.items():
            if len(p) >= 2:
                by_item.setdefault(p[:2], []).append((p, ln))
        for section, value in data.items():
            if isinstance(value, list) and isinstance(merged.get(section, []), list):
                base = merged.setdefault(section, [])
                assert isinstance(base, list)
                for i, item in enumerate(value):
                    idx = len(base)
                    base.append(item)
                    for p, ln in by_item.get((section, i), ()):
                        origin[(section, idx, *p[2:])] = (fname, ln)
            elif section in merged:
                # a second file setting the same section would silently replace the first
                first_file, first_line = origin.get((section,), (str(root), None))
                first = f"{first_file}:{first_line}" if first_line else first_file
                problems.append(
                    ConfigProblem(
                        fname,
                        lines.get((section,)),
                        "",
                        f"section {section!r} is also set in {first}; set it in one file",
                    )
                )
                continue
            else:
                merged[section] = value
                for p, ln in lines.items():
                    if p[:1] == (section,):
                        origin[p] = (fname, ln)
            origin.setdefault((section,), (fname, lines.get((section,))))
    problems.extend(_reference_problems(merged, origin, str(root)))
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic appends the variant name for unions/tagged models; drop non-data parts
            data_loc = tuple(
                p for p in loc if isinstance(p, int) or not str(p).startswith("function-")
            )
            fname, line = _origin_for(data_loc, origin, str(root))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            problems.append(ConfigProblem(fname, line, _key_name(data_loc, merged), msg))
        raise ConfigError(sorted(problems, key=lambda p: (p.file, p.line or 0))) from None
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(
        config=config, path=str(root), version=digest.hexdigest()[:16], origins=origin
    )


def _origin_for(
    loc: tuple, origin: dict[tuple, tuple[str, int | None]], default: str
) -> tuple[str, int | None]:
    while loc:
        if loc in origin:
            return origin[loc]
        loc = loc[:-1]
    return default, None


def _reference_problems(merged: dict, origin: dict, default: str) -> list[ConfigProblem]:
    """Names that point nowhere: a watchlist notifying an unknown channel, an unknown source filter.

    Works on the raw data so these are reported together with schema errors.
    """

    def names(section: str) -> set[str]:
        items = merged.get(section)
        if not isinstance(items, list):
            return set()
        return {i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}

    problems = []
    known = {
        "notify": names("channels"),
        "sources": names("sources"),
        "exclude_sources": names("sources"),
    }
    watchlists = merged.get("watchlists")
    for wi, wl in enumerate(watchlists if isinstance(watchlists, list) else []):
        if not isinstance(wl, dict):
            continue
        for key, valid in known.items():
            targets = wl.get(key)
            for ti, target in enumerate(targets if isinstance(targets, list) else []):
                if isinstance(target, str) and target not in valid:
                    loc = ("watchlists", wi, key, ti)
                    fname, line = _origin_for(loc, origin, default)
                    what = "channel" if key == "notify" else "source"
                    listed = ", ".join(sorted(valid)) or "none defined"
                    problems.append(
                        ConfigProblem(
                            fname,
                            line,
                            _key_name(loc, merged),
                            f"no {what} named {target!r} ({what}s: {listed})",
                        )
                    )
    notices = merged.get("notices")
    target = notices.get("channel") if isinstance(notices, dict) else None
    if isinstance(target, str) and target not in known["notify"]:
        loc = ("notices", "channel")
        fname, line = _origin_for(loc, origin, default)
        listed = ", ".join(sorted(known["notify"])) or "none defined"
        problems.append(
            ConfigProblem(
                fname, line, "notices.channel", f"no channel named {target!r} (channels: {listed})"
            )
        )
    return problems


# --- a config that would watch nothing, or much less than before -------------------------


def watching_problems(loaded: LoadedConfig) -> list[ConfigProblem]:
    """A config with no enabled source or no watchlist monitors nothing: an emptied or
    truncated file, a folder whose files moved. Refused unless `allow_empty: true`."""
    cfg = loaded.config
    if cfg.allow_empty:
        return []
    out = []
    root = Path(loaded.path)
    for section, count in (
        ("sources", sum(1 for s in cfg.sources if s.enabled)),
        ("watchlists", len(cfg.watchlists)),
    ):
        if count:
            continue
        file, line = loaded.where(section)
        if line is None and not root.is_dir():
            line = 1
        what = "no enabled sources" if section == "sources" and cfg.sources else f"no {section}"
        if root.is_dir() and not any(_iter_yaml_files(root)):
            what += " (no .yaml or .yml file in this folder)"
        out.append(
            ConfigProblem(
                file,
                line,
                "",
                f"{what}: this config would watch nothing (set 'allow_empty: true' if meant)",
            )
        )
    return out


def shrink_warning(old: Config, new: Config) -> str | None:
    """What a reload removes when it drops more than half of the enabled sources or of the
    watchlists: applied (the edit may be meant), but never silently."""
    parts = []
    for section, before, after in (
        (
            "sources",
            {s.name for s in old.sources if s.enabled},
            {s.name for s in new.sources if s.enabled},
        ),
        ("watchlists", {w.name for w in old.watchlists}, {w.name for w in new.watchlists}),
    ):
        gone = sorted(before - after)
        if before and len(gone) * 2 > len(before):
            shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
            parts.append(f"{len(gone)} of {len(before)} {section} ({shown})")
    return "the reloaded config removes " + " and ".join(parts) if parts else None
