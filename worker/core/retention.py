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
