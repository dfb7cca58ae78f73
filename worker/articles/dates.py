"""Dates as news pages write them: machine formats, English and the other Latin-script
languages' month names, zone abbreviations, and dates in URLs. Naive datetimes are UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dateutil import parser as dateparser

from worker.articles.text import collapse_ws

# Month names of the other languages of Latin-script news (German, French, Spanish,
# Italian, Portuguese, Dutch), full and abbreviated, with and without accents:
# written dates in them are read by putting the English name in their place.
_FOREIGN_MONTHS = {
    month: names.split()
    for month, names in {
        "Jan": "januar jänner janvier enero gennaio janeiro januari janv jän ene gen",
        "Feb": "februar février fevrier febrero febbraio fevereiro februari févr fevr fev",
        "Mar": "märz maerz mars marzo março marco maart mär mrt",
        "Apr": "april avril abril aprile avr abr",
        "May": "mai mayo maggio maio mei mag",
        "Jun": "juni juin junio giugno junho giu",
        "Jul": "juli juillet julio luglio julho juil lug",
        "Aug": "august août aout agosto augustus ago",
        "Sep": "september septembre septiembre settembre setembro set sept",
        "Oct": "oktober octobre octubre ottobre outubro okt ott out",
        "Nov": "november novembre noviembre novembro",
        "Dec": "dezember décembre decembre diciembre dicembre dezembro december dez déc dic",
    }.items()
}
_FOREIGN_MONTH_OF = {name: month for month, names in _FOREIGN_MONTHS.items() for name in names}
_FOREIGN_MONTH = re.compile(
    r"\b(" + "|".join(sorted(_FOREIGN_MONTH_OF, key=len, reverse=True)) + r")\b\.?", re.I
)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|"
    + "|".join(sorted(_FOREIGN_MONTH_OF, key=len, reverse=True))
    + r")\.?"
)
_WEEKDAY = r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,?\s+)?"
_TIME = (
    r"(?:,?\s+(?:at\s+)?\d{1,2}[:.]\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?"
    r"(?:\s*(?:UTC|GMT|[A-Z]{2,4}T))?)?"
)
TEXT_DATE = re.compile(
    rf"\b{_WEEKDAY}(?:"
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


def parse_date(value: str | None, day_first: bool = True) -> datetime | None:
    """A timezone-aware UTC datetime from a machine or human date string, else None."""
    value = collapse_ws(value)
    if not value or len(value) > 80:
        return None
    value = re.sub(r"\b(at|on)\b", " ", value, flags=re.I)
    if not value.isascii() or _FOREIGN_MONTH.search(value):
        # "1er décembre 2017", "30 de noviembre de 2017" -> "1 Dec 2017", "30 Nov 2017"
        value = _FOREIGN_MONTH.sub(lambda m: _FOREIGN_MONTH_OF[m[1].lower()], value)
        value = re.sub(r"(\d)(?:er|º)\b", r"\1", value)
        value = re.sub(r"\bde\b", " ", value, flags=re.I)
    value = re.sub(r"(\d)\.(\d{2})\b(?!\.)", r"\1:\2", value)  # 12.42 -> 12:42
    value = re.sub(r"\b([ap])\.m\.", r"\1m", value, flags=re.I)
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}", value):
            dt = dateparser.isoparse(value.replace(" ", "T", 1)) if "T" not in value else None
            if dt is None:
                dt = dateparser.isoparse(value)
        else:
            dt = dateparser.parse(value, dayfirst=day_first, fuzzy=True, tzinfos=_TZINFOS)
    except (ValueError, OverflowError, TypeError):
        try:
            dt = dateparser.parse(value, dayfirst=day_first, fuzzy=True, tzinfos=_TZINFOS)
        except (ValueError, OverflowError, TypeError):
            return None
    if not 1990 <= dt.year <= 2100:
        return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def date_in_url(url: str) -> datetime | None:
    m = _URL_DATE.search(url or "")
    if not m:
        return None
    try:
        return datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
    except ValueError:
        return None
