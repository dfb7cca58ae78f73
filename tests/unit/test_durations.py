from datetime import timedelta

import pytest

from worker.core.durations import human


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0 s"),
        (45, "45 s"),
        (119, "119 s"),
        (120, "2 min"),
        (7199, "119 min"),
        (7200, "2.0 h"),
        (13 * 3600, "13.0 h"),
        (2 * 86400, "2.0 days"),
        (400 * 86400, "400.0 days"),
    ],
)
def test_a_span_in_the_unit_that_keeps_it_short(seconds: int, text: str) -> None:
    assert human(timedelta(seconds=seconds)) == text
