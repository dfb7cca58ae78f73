"""What is wrong with a config, where: every problem names the file, the line and the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.core.errors import InputError


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(InputError):
    """A config that cannot be used, with every problem found in it (all at once)."""

    kind = "config"

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def __reduce__(self) -> tuple[Any, ...]:  # pickled back from a loading child (loader.py)
        return (type(self), (self.problems,))


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


def line_for(path: tuple, lines: dict[tuple, int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _origin_for(
    loc: tuple, origin: dict[tuple, tuple[str, int | None]], default: str
) -> tuple[str, int | None]:
    while loc:
        if loc in origin:
            return origin[loc]
        loc = loc[:-1]
    return default, None
