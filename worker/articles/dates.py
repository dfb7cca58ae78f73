"""Dates as news pages write them: machine formats, English and the other Latin-script
languages' month names, zone abbreviations, and dates in URLs. Naive datetimes are UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

import lxml.etree as etree
import lxml.html
from dateparser.date import DateDataParser
from dateparser.languages.loader import default_loader
from dateutil import parser as dateutil_parser
from htmldate import find_date

from worker.articles.text import collapse_ws

# Written dates in the other languages of news are read by dateparser, limited to these
# languages (each one costs parse time); its locale data gives their month names.
LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "pl")
_MONTH_KEYS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def _foreign_month_names() -> list[str]:
    names = {
        name.lower().rstrip(".")
        for lang in LANGUAGES
        for key in _MONTH_KEYS
        for name in default_loader.get_locale(lang).info.get(key, [])
    }
    # two-letter abbreviations would match ordinary words
    return sorted((n for n in names if len(n) >= 3 and n.isalpha()), key=len, reverse=True)


_EN_MONTHS = (
    r"Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
)
_MONTHS = rf"(?:{_EN_MONTHS}|" + "|".join(map(re.escape, _foreign_month_names())) + r")\.?"
# The words of a date string dateutil reads right: English month and weekday names,
# zones, ordinals, am/pm. A string with any other word goes to dateparser.
_ENGLISH_WORD = re.compile(
    rf"^(?:{_EN_MONTHS}|(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?|"
    r"of|the|[ap]m?|m|st|nd|rd|th|t|z|utc|gmt|ist)$",
    re.I,
)
_LETTERS = re.compile(r"[^\W\d_]+")


def _english_only(value: str) -> bool:
    return all(_ENGLISH_WORD.match(w) or w.upper() in _TZINFOS for w in _LETTERS.findall(value))


_WEEKDAY = r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,?\s+)?"
_TIME = (
    r"(?:,?\s+(?:at\s+)?\d{1,2}[:.]\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?"
    r"(?:\s*(?:UTC|GMT|[A-Z]{2,4}T))?)?"
)
TEXT_DATE = re.compile(
    # every date starts with a digit, or a word or two then a digit: most positions fail fast
    r"\b(?=\d|[^\W\d_]+\.?,?\s+(?:\d|[^\W\d_]+\.?\s+\d))"
    rf"{_WEEKDAY}(?:"
    # 30 November 2017, 2. Dezember 2017, 1er décembre 2017, 30 de noviembre de 2017
    rf"\d{{1,2}}(?:st|nd|rd|th|er|º)?\.?\s+(?:of\s+|de\s+)?{_MONTHS},?\s+(?:de\s+)?\d{{4}}"
    rf"|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"  # Dec 02, 2017
    rf"|\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}})?)?"  # 2017-12-02 12:42
    rf"|\d{{1,2}}/\d{{1,2}}/\d{{4}}"  # 02/12/2017 (day first unless impossible)
    rf"){_TIME}",
    re.I,
)
MODIFIED_CUE = re.compile(
    r"(modified|updated|edited|revised|aktualisiert|mis à jour|actualizado|atualizado|"
    r"aggiornato|bijgewerkt)\W*(?:on|at|am|le|el|em|il|op)?\W*$",
    re.I,
)
PUBLISHED_CUE = re.compile(
    r"(published|posted|first published|date|veröffentlicht|publié|publicado|pubblicato|"
    r"gepubliceerd)\W*(?:on|at|am|le|el|em|il|op)?\W*$",
    re.I,
)
_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?:/|-|$)")


# Zone abbreviations dateutil does not know; ambiguous ones resolved the US way.
_TZINFOS = {
    name: int(offset * 3600)
    for name, offset in {
        "EST": -5,
        "EDT": -4,
        "CST": -6,
        "CDT": -5,
        "MST": -7,
        "MDT": -6,
        "PST": -8,
        "PDT": -7,
        "AKST": -9,
        "AKDT": -8,
        "HST": -10,
        "BST": 1,
        "CET": 1,
        "CEST": 2,
        "EET": 2,
        "EEST": 3,
        "IST": 5.5,
        "JST": 9,
        "KST": 9,
        "AEST": 10,
        "AEDT": 11,
    }.items()
}


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def parse_date(value: str | None, day_first: bool = True) -> datetime | None:
    """A timezone-aware UTC datetime from a machine or human date string, else None."""
    value = collapse_ws(value)
    if not value or len(value) > 80:
        return None
    value = re.sub(r"\b(at|on)\b", " ", value, flags=re.I)
    value = re.sub(r"(\d)\.(\d{2})\b(?!\.)", r"\1:\2", value)  # 12.42 -> 12:42
    value = re.sub(r"\b([ap])\.m\.", r"\1m", value, flags=re.I)
    dt: datetime | None
    try:
        if _ISO_DATE.match(value):
            dt = _iso(value)
        elif _english_only(value):
            dt = dateutil_parser.parse(value, dayfirst=day_first, fuzzy=True, tzinfos=_TZINFOS)
        else:
            dt = _written_date(value)
    except (ValueError, OverflowError, TypeError):
        return None
    if dt is None or not 1990 <= dt.year <= 2100:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _iso(value: str) -> datetime:
    """2017-12-02, 2017-12-02T12:42Z, "2015-07-10 09:53:00 -0400": never day first."""
    machine = re.sub(r"\s+(?=[+-]\d{2}:?\d{2}$|Z$)", "", value).replace(" ", "T", 1)
    try:
        return dateutil_parser.isoparse(machine)
    except ValueError:
        return dateutil_parser.parse(value, dayfirst=False, yearfirst=True, tzinfos=_TZINFOS)


@lru_cache(maxsize=1)
def _date_parser() -> DateDataParser:
    return DateDataParser(
        languages=["en", *LANGUAGES],
        settings={"PREFER_DAY_OF_MONTH": "first", "REQUIRE_PARTS": ["day", "month", "year"]},
    )


@lru_cache(maxsize=4096)
def _written_date(value: str) -> datetime | None:
    """A date written with month names of another language: "2. Dezember 2017 12:42",
    "30 de noviembre de 2017". Cached: a site repeats its date lines on every page."""
    value = re.sub(r"(\d)(?:er|º)\b", r"\1", value)  # 1er décembre
    return _date_parser().get_date_data(value).date_obj


def published_fallback(
    tree: lxml.html.HtmlElement, url: str, modified: datetime | None
) -> datetime | None:
    """htmldate's original (publication) date, when our own rules found none; never a
    date on the modification date's day (htmldate falls back to it when it finds no
    other)."""
    try:
        found = find_date(tree, url=url or None, original_date=True, extensive_search=False)
    except (ValueError, TypeError, RecursionError, etree.LxmlError):
        return None
    dt = parse_date(found) if found else None
    if dt is None or (modified is not None and dt.date() == modified.date()):
        return None
    return dt


def date_in_url(url: str) -> datetime | None:
    m = _URL_DATE.search(url or "")
    if not m:
        return None
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    except ValueError:
        return None
