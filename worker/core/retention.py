"""What retention keeps of a row once its work is done. Pure."""

from __future__ import annotations

from typing import Any

# An item's feed text, kept on the row only until the parser has made an article of
# it: from then on the article holds the text, and the item only needs what identifies
# it and says why it went where it did (key, identity, link, title, dates, authors, tags).
ITEM_TEXT = ("content_html", "summary")


def item_identification(data: dict[str, Any] | None) -> dict[str, Any]:
    """The item's data without the text its article now holds (the input is unchanged)."""
    return {k: v for k, v in (data or {}).items() if k not in ITEM_TEXT}


# What an item keeps once its article's text is pruned: enough to explain it (`why`) and
# to tell a new version of the same entry (`identity`); its key and link are columns.
ITEM_SEEN = ("identity", "title", "refused")


def item_seen_record(data: dict[str, Any] | None, pruned_on: str) -> dict[str, Any]:
    """The item's data once its article's text is pruned: identity and title only (no
    empty value), stamped with the day the text went (the input is unchanged)."""
    kept = {k: v for k, v in (data or {}).items() if k in ITEM_SEEN and v not in (None, "", [])}
    return kept | {"text_pruned": pruned_on}
