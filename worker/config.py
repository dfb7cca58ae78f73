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
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
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
    """How alerts reach a channel (worker/core/policy.py, docs/alerts.md "Policies").

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
        from worker.core.policy import parse_schedule

        if v is not None:
            parse_schedule(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        from worker.core.policy import parse_quiet_hours

        if v is not None:
            parse_quiet_hours(v)
        return v

    @field_validator("min_relevance", mode="before")
    @classmethod
    def _relevance(cls, v: object) -> str | None:
        from worker.core.policy import parse_relevance

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
    # networks (CIDR) or host names that may be fetched although private/loopback
    allow_networks: tuple[str, ...] = ()


class NoticesSpec(_Strict):
    """Operational notices (source failing, delivery dead, config rejected) to one channel."""

    channel: str = Field(min_length=1)
    source_failing_after: int = 7200  # seconds without a successful fetch
    delivery_dead: bool = True
    config_rejected: bool = True

    @field_validator("source_failing_after", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> int:
        return parse_interval(v)


class Config(_Strict):
    sources: tuple[SourceSpec, ...] = ()
    watchlists: tuple[WatchlistSpec, ...] = ()
    channels: tuple[ChannelSpec, ...] = ()
    smtp: SmtpSpec = SmtpSpec()
    fetch: FetchSpec = FetchSpec()
    notices: NoticesSpec | None = None

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


def _yaml_to_python(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> Any:
    """Build Python values from a composed YAML node, remembering each key's line."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _yaml_to_python(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_yaml_to_python(v, (*path, i), lines) for i, v in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)


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
            raw = file.read_bytes()
        except OSError as exc:
            problems.append(ConfigProblem(fname, None, "", f"cannot read: {exc.strerror}"))
            continue
        digest.update(fname.encode() + b"\0" + raw + b"\0")
        try:
            node = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
        except UnicodeDecodeError:
            problems.append(ConfigProblem(fname, None, "", "not UTF-8 text"))
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
        lines: dict[tuple, int] = {}
        data = _yaml_to_python(node, (), lines)
        if not isinstance(data, dict):
            problems.append(
                ConfigProblem(fname, 1, "", "the top level must be a mapping of sections")
            )
            continue
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
