"""The config file's schema: pydantic specs for sources, watchlists, channels and the
service's own settings. Validation only: reading the files is loader.py's."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from worker.core.alert_policy import parse_quiet_hours, parse_relevance, parse_schedule
from worker.core.patterns import PatternError, compile_pattern

_INTERVAL_RE = re.compile(
    r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$"
)


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


# The loader validates with this context: in a file an interval needs its unit (`every: 10`
# was read as 10 seconds, silently); code building specs may still pass seconds.
WRITTEN = {"written": True}


def written_interval(value: Any, info: ValidationInfo) -> int:
    """An interval as written in the config file: `10` alone is refused (10 seconds or 10
    minutes?), with the fix."""
    written = isinstance(info.context, dict) and info.context.get("written")
    if written and isinstance(value, int | float) and not isinstance(value, bool):
        n = int(value) if float(value).is_integer() else value
        raise ValueError(f"{n} has no unit; write {n}s or {n}m (or 1h, 1d)")
    return parse_interval(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sources -----------------------------------------------------------------


# A slotted dataclass, not a model: a config may hold 100,000 of them, and a model instance
# keeps a __dict__ and its set of fields set (docs/load.md, "A config of 100,000 sources").
@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class SourceSpec:
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
    def _interval(cls, v: Any, info: ValidationInfo) -> int | None:
        return None if v is None else written_interval(v, info)

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
    """How alerts reach a channel (worker/core/alert_policy.py, docs/alerts.md "Policies").

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
        if v is not None:
            parse_schedule(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        if v is not None:
            parse_quiet_hours(v)
        return v

    @field_validator("min_relevance", mode="before")
    @classmethod
    def _relevance(cls, v: object) -> str | None:
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
    def _interval(cls, v: Any, info: ValidationInfo) -> int:
        return written_interval(v, info)


class HeartbeatSpec(_Strict):
    """A URL pinged after each healthy watchdog check: a dead-man's switch (healthchecks.io,
    Cronitor) that notices from outside when newswatch stops. The URL is a secret."""

    url: SecretStr
    every: int = 60  # never more often than this, across all processes
    method: Literal["get", "post"] = "get"
    fail_url: SecretStr | None = None  # pinged instead on an unhealthy check (e.g. <url>/fail)

    @field_validator("every", mode="before")
    @classmethod
    def _interval(cls, v: Any, info: ValidationInfo) -> int:
        return written_interval(v, info)

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
    def _interval(cls, v: Any, info: ValidationInfo) -> int:
        return written_interval(v, info)

    @field_validator("article_text")
    @classmethod
    def _near_dup_window(cls, v: int) -> int:
        # stories (worker.articles.stories.NEAR_DUP_WINDOW) compare the text of recent articles
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
    # `source(name)` is asked on every poll: by name, not a scan of 100,000 sources; with
    # the sources it was made of (a model_copy may replace them)
    _by_name: tuple[tuple[SourceSpec, ...], dict[str, SourceSpec]] | None = PrivateAttr(None)

    def model_post_init(self, context: Any, /) -> None:
        self._by_name = (self.sources, {s.name: s for s in self.sources})

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
        if self._by_name is None or self._by_name[0] is not self.sources:
            self._by_name = (self.sources, {s.name: s for s in self.sources})
        return self._by_name[1].get(name)
