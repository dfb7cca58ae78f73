"""Whitespace and the text of parsed HTML elements, as every step of extraction reads them."""

from __future__ import annotations

import re

import lxml.etree as etree

_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")


def collapse_ws(text: str | None) -> str:
    return _WS.sub(" ", text or "").strip()


def text_of(el: etree._Element) -> str:
    # lxml-stubs type itertext() as str | bytes; on Python 3 it yields only str
    return collapse_ws(" ".join(el.itertext()))  # type: ignore[arg-type]


def word_count(text: str) -> int:
    return len(text.split())
