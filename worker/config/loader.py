"""Loading a config: files (one, or a folder of them), `${VAR}` interpolation, validation."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import re
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from worker.config.problems import ConfigError, ConfigProblem, _key_name, _origin_for, line_for
from worker.config.schema import WRITTEN, Config
from worker.config.yamlread import MAX_CONFIG_BYTES, _Builder, _compose, _Refused

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


def without_origins(loaded: LoadedConfig) -> LoadedConfig:
    """The same config without the line of every key, which only error messages use (a
    config of 100,000 sources has some 400,000 of them)."""
    return replace(loaded, origins={})


# how long a child may take to load a config before it is taken for stuck (a deadlock
# after a fork from a threaded process is possible in principle)
CHILD_LOAD_SECONDS = 600.0


def load_in_child(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    check: Callable[[LoadedConfig], list[ConfigProblem]] | None = None,
    timeout: float = CHILD_LOAD_SECONDS,
) -> tuple[LoadedConfig, list[ConfigProblem]]:
    """`load_config` in a forked child, its result pickled back without origins.

    Reading a big config builds far more than it keeps: the YAML node tree, the line of
    every key, pydantic's intermediate values. Freed, that memory mostly stays with the
    process (the allocator's arenas are fragmented), so a worker that loaded a config of
    100,000 sources once kept about 700 MB. In a child it goes with the child
    (docs/load.md, "Memory at idle"; bench/config_memory.py). Errors are the same as in
    process: a ConfigError, with file and line, raised here. `check` (e.g.
    `watching_problems`) runs in the child too, while the origins are there: its problems
    are returned beside the config, for the caller to raise in its own order. A child that
    ends without an answer (killed, out of memory) is a ConfigError as well, so a reload
    keeps the last good version. Without fork (not POSIX): in process.
    """
    if not hasattr(os, "fork"):
        loaded = load_config(path, env)
        return without_origins(loaded), check(loaded) if check is not None else []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child ends in os._exit
        os.close(read_fd)
        _answer_from_child(write_fd, path, env, check)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, pid, timeout, str(path))
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if not data:
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"not loaded: the loading process {how}")]
        )
    result = pickle.loads(data)
    if isinstance(result, BaseException):
        raise result
    loaded, problems = result
    assert isinstance(loaded, LoadedConfig)
    return loaded, problems


def _answer_from_child(
    fd: int,
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    check: Callable[[LoadedConfig], list[ConfigProblem]] | None,
) -> None:  # pragma: no cover - runs in the child
    """Load, pickle the result (or the ConfigError) into `fd`, and end without running
    anything of the parent's (no atexit, no buffers flushed twice)."""
    code = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)  # the parent's handlers (Celery's) are not ours
        try:
            loaded = load_config(path, env)
            problems = check(loaded) if check is not None else []
            result: object = (without_origins(loaded), problems)
        except ConfigError as exc:
            result = exc
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(code)


def _read_all(fd: int, pid: int, timeout: float, what: str) -> bytes:
    """Everything the child writes, until it closes the pipe; the child is killed when it
    takes longer than `timeout`."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise ConfigError([ConfigProblem(what, None, "", f"not loaded within {timeout:.0f} s")])
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def yaml_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    else:
        yield path


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, interpolate and validate a config file (or a folder of them).

    Raises ConfigError listing every problem with file and line.
    """
    # A load makes millions of objects and frees few until its end: the cyclic collector
    # would walk all of them again and again for nothing (a third of the CPU of a load
    # of 100,000 sources). Collection runs as before once the load is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(Path(path), os.environ if env is None else env)
    finally:
        if collecting:
            gc.enable()


def _load(root: Path, env: Mapping[str, str]) -> LoadedConfig:
    if not root.exists():
        raise ConfigError([ConfigProblem(str(root), None, "", "no such file or folder")])
    loading = _Loading(root)
    for file in yaml_files(root):
        read = loading.read(file, env)
        if read is not None:
            loading.merge(str(file), *read)
    loading.problems.extend(_reference_problems(loading.merged, loading.origin, str(root)))
    config = loading.validate()
    return LoadedConfig(
        config=config,
        path=str(root),
        version=loading.digest.hexdigest()[:16],
        origins=loading.origin,
    )


class _Loading:
    """One load: the files read so far merged into one mapping of sections, where each
    key came from, and every problem met (all are reported, not only the first)."""

    def __init__(self, root: Path):
        self.root = root
        self.problems: list[ConfigProblem] = []
        self.merged: dict[str, list | dict] = {}
        self.origin: dict[tuple, tuple[str, int | None]] = {}  # merged path -> (file, line)
        self.digest = hashlib.sha256()

    def read(
        self, file: Path, env: Mapping[str, str]
    ) -> tuple[dict[Any, Any], dict[tuple, int]] | None:
        """One file's sections, interpolated, and the line of every key; None when the
        file cannot be used at all (its problems are recorded)."""
        fname = str(file)
        text = self._text(file)
        if text is None:
            return None
        try:
            node, yaml_problems = _compose(text)
        except _Refused as exc:
            self.problems.append(ConfigProblem(fname, exc.line, "", exc.message))
            return None
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            self.problems.append(ConfigProblem(fname, line, "", yaml_error_text(exc.problem)))
            return None
        except yaml.YAMLError as exc:
            self.problems.append(ConfigProblem(fname, None, "", f"not valid YAML: {exc}"))
            return None
        if node is None:
            return None
        builder = _Builder()
        data = builder.build(node)
        self.problems.extend(
            ConfigProblem(fname, line, "", message)
            for line, message in sorted(yaml_problems + builder.problems)
        )
        if not isinstance(data, dict):
            self.problems.append(
                ConfigProblem(fname, 1, "", "the top level must be a mapping of sections")
            )
            return None
        # `x-...` top-level keys are a place for anchors (`x-defaults: &defaults`), as in
        # Compose files; they are not config sections
        data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return self._interpolated(fname, data, builder.lines, env), builder.lines

    def _text(self, file: Path) -> str | None:
        """The file's text (bounded, UTF-8), counted into the version digest."""
        fname = str(file)
        try:
            with file.open("rb") as f:
                raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            self.problems.append(ConfigProblem(fname, None, "", f"cannot read: {exc.strerror}"))
            return None
        if len(raw) > MAX_CONFIG_BYTES:
            self.problems.append(
                ConfigProblem(
                    fname, None, "", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB; split it"
                )
            )
            return None
        self.digest.update(fname.encode() + b"\0" + raw + b"\0")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            self.problems.append(ConfigProblem(fname, line, "", "not UTF-8 text"))
            return None

    def _interpolated(
        self, fname: str, data: dict, lines: dict[tuple, int], env: Mapping[str, str]
    ) -> dict:
        missing: list[tuple] = []
        data = _interpolate(data, (), env, missing)
        for p, name in missing:
            self.problems.append(
                ConfigProblem(
                    fname,
                    line_for(p, lines),
                    _key_name(p, data),
                    f"environment variable {name} is not set",
                )
            )
        return data

    def merge(self, fname: str, data: dict, lines: dict[tuple, int]) -> None:
        """A file's sections into the whole: lists (sources, watchlists, channels) are
        concatenated across files, any other section may be set in one file only."""
        # the line of every path, by (section, list index): one pass, not one per item
        # (a config of 10,000 sources has ~40,000 paths)
        by_item: dict[tuple, list[tuple[tuple, int]]] = {}
        for p, ln in lines.items():
            if len(p) >= 2:
                by_item.setdefault(p[:2], []).append((p, ln))
        merged, origin = self.merged, self.origin
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
                self._set_twice(fname, section, lines)
                continue
            else:
                merged[section] = value
                for p, ln in lines.items():
                    if p[:1] == (section,):
                        origin[p] = (fname, ln)
            origin.setdefault((section,), (fname, lines.get((section,))))

    def _set_twice(self, fname: str, section: str, lines: dict[tuple, int]) -> None:
        first_file, first_line = self.origin.get((section,), (str(self.root), None))
        first = f"{first_file}:{first_line}" if first_line else first_file
        self.problems.append(
            ConfigProblem(
                fname,
                lines.get((section,)),
                "",
                f"section {section!r} is also set in {first}; set it in one file",
            )
        )

    def validate(self) -> Config:
        """The merged sections as a Config; ConfigError with every problem found so far
        and every schema error, each at its file and line."""
        try:
            config = Config.model_validate(self.merged, context=WRITTEN)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                # pydantic appends the variant name for unions/tagged models; drop those
                data_loc = tuple(
                    p for p in loc if isinstance(p, int) or not str(p).startswith("function-")
                )
                fname, line = _origin_for(data_loc, self.origin, str(self.root))
                msg = plain_message(err, data_loc)
                self.problems.append(
                    ConfigProblem(fname, line, _key_name(data_loc, self.merged), msg)
                )
            raise ConfigError(sorted(self.problems, key=lambda p: (p.file, p.line or 0))) from None
        if self.problems:
            raise ConfigError(self.problems)
        return config


def yaml_error_text(problem: str | None) -> str:
    """PyYAML's words ("expected <block end>, but found '?'") with what to check."""
    problem = problem or "unreadable"
    if "'\\t'" in problem:
        return "not valid YAML: a tab character; tabs are not allowed in YAML, indent with spaces"
    return (
        f"not valid YAML: {problem}; check the indentation of this line and the line above "
        "(items of one list or mapping line up, with spaces, never tabs)"
    )


# what a list-valued key holds, for "must be a list of ..., e.g. [x]"
_LIST_OF = {
    "notify": "channel names",
    "sources": "source names",
    "exclude_sources": "source names",
    "keywords": "words or phrases",
    "exclude": "words or phrases",
    "aliases": "names",
    "weak_aliases": "names",
    "context": "words",
    "email": "email addresses",
    "allow_networks": "networks or host names",
    "names": "names",
}


def plain_message(err: Any, loc: tuple) -> str:
    """A pydantic error in the config's own words (no "Input should be a valid tuple")."""
    kind, msg, value = err["type"], err["msg"], err.get("input")
    key = next((str(p) for p in reversed(loc) if not isinstance(p, int)), "")
    if key in ("password", "secret", "url", "fail_url"):
        value = "..."  # a secret is never quoted back
    # a dataclass's words (SourceSpec) for what a model calls extra_forbidden, missing, ...
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if kind in ("tuple_type", "list_type"):
        what = _LIST_OF.get(key, "values")
        example = f"[{value}]" if isinstance(value, str | int | float) else "[a, b]"
        return f"{key} must be a list of {what}, e.g. {example}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{key} must be a whole number, not {value!r}"
    if kind in ("float_parsing", "float_type"):
        return f"{key} must be a number, not {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{key} must be true or false, not {value!r}"
    if kind == "string_type":
        return f"{key} must be text, not {value!r}"
    if kind in ("missing", "missing_argument"):
        return f"{key} is required"
    if kind in (
        "model_type",
        "model_attributes_type",
        "dict_type",
        "dataclass_type",
        "dataclass_args_type",
    ):
        return f"{key} must be a mapping of keys (key: value), not {value!r}"
    if kind == "literal_error":
        return f"{key} must be " + msg.removeprefix("Input should be ")
    return msg


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
                    loc: tuple[str | int, ...] = ("watchlists", wi, key, ti)
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
