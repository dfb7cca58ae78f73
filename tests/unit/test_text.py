"""Folding into the match view, and the way back to the original offsets."""

from __future__ import annotations

import random
import re

import pytest

from worker.matching.text import case_tokens, fold, fold_term, mark_tokens

WORDS = re.compile(r"[^ ]+")


def _words_and_spans(text: str) -> list[tuple[str, str]]:
    """(view word, original text it maps back to) for every word of the view."""
    folded = fold(text)
    out = []
    for m in WORDS.finditer(folded.text):
        a, b = folded.original_span(m.start(), m.end())
        out.append((m.group(), text[a:b]))
    return out


@pytest.mark.parametrize(
    ("text", "view"),
    [
        ("Hashd al-Sha’abi", " hashd al sha abi "),
        ("HASHD  AL\u00a0SHA'ABI", " hashd al sha abi "),
        ("U.S.-led", " u s led "),
        ("Tillerson's", " tillerson s "),
        ("ﬁne ＮＡＴＯ", " fine nato "),
        ("Straße", " strasse "),
        ("Bāqerī", " baqeri "),
        ("Ba\u0304qeri\u0304", " baqeri "),
        ("Mobili\u00adzation", " mobilization "),
        ("Søren Œuvre", " soren oeuvre "),
        ("“quoted” — dash", " quoted dash "),
        ("", " "),
        ("   ", " "),
        ("Ирак и Сирия", " ирак и сирия "),
    ],
)
def test_view(text: str, view: str) -> None:
    assert fold(text).text == view


def test_every_view_word_maps_back_to_its_original_word() -> None:
    text = "  “Hadi Al-Ameri,” he said —\n\nthe ﬁnal Straße ½ Bāqerī\u00adx U.S.-led PMF’s "
    assert _words_and_spans(text) == [
        ("hadi", "Hadi"),
        ("al", "Al"),
        ("ameri", "Ameri"),
        ("he", "he"),
        ("said", "said"),
        ("the", "the"),
        ("final", "ﬁnal"),
        ("strasse", "Straße"),
        ("1", "½"),
        ("2", "½"),
        ("baqerix", "Bāqerī\u00adx"),
        ("u", "U"),
        ("s", "S"),
        ("led", "led"),
        ("pmf", "PMF"),
        ("s", "s"),
    ]


def test_offsets_survive_random_text() -> None:
    # property: every view word folds back from the original slice it maps to
    rng = random.Random(4)
    alphabet = "abcXYZ  \n\t,.-’“”ﬁßéİ\u00ad\u0301½—Ø"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for word, original in _words_and_spans(text):
            assert word in fold(original).text.split(), (text, word, original)


def test_fold_term_has_no_padding() -> None:
    assert fold_term("Hashd al-Sha'abi") == "hashd al sha abi"
    assert fold_term("  --  ") == ""


def test_case_tokens_keep_case_and_drop_marks() -> None:
    assert case_tokens("U.S.-led Bāqerī") == ["U", "S", "led", "Baqeri"]


def test_mark_tokens_keep_diacritics_either_way_they_are_written() -> None:
    assert mark_tokens("Bāqerī") == mark_tokens("Ba\u0304qeri\u0304")
    assert mark_tokens("Bāqerī") != mark_tokens("Baqeri")


def test_ascii_text_has_identity_offsets_apart_from_spaces() -> None:
    text = "one,  two.\n\nthree"
    folded = fold(text)
    assert folded.text == " one two three "
    assert folded.original_span(5, 8) == (6, 9)  # "two"
    assert folded.original_span(9, 14) == (12, 17)  # "three"


def test_the_latin_fast_path_equals_the_general_path() -> None:
    """Runs found by the encoder (fast path) give the view and breaks of the regex path."""
    import random

    from worker.matching import text as t

    chars = list("abc XYZ-.,’“”–\u00adßæﬁ½é\u0301ŁøİÅ\u200b 12")
    rng = random.Random(4)
    checked = 0
    for _ in range(3000):
        s = "".join(rng.choice(chars) for _ in range(rng.randint(1, 30)))
        if s.isascii():
            continue
        assert t._translate_latin(s) == t._translate_reference(s), s
        checked += 1
    assert checked > 2000


def test_non_latin_letters_take_the_general_path() -> None:
    folded = fold("Путин said “no” — Ωmega")
    assert folded.text == " путин said no ωmega "
    assert folded.original_span(1, 6) == (0, 5)


def test_the_whole_text_path_equals_the_reference_path() -> None:
    """Other scripts go through one translate; view and breaks are the reference's."""
    import random

    from worker.matching import text as t

    chars = list("Путин ΩΣς 한국어 삼성 ガスがガ 習近平 ภาษาไทย नमस्ते مُحَمَّد שָׁלוֹם ßﬁ½é\u0301-’ ab.")
    rng = random.Random(5)
    for _ in range(2000):
        s = "".join(rng.choice(chars) for _ in range(rng.randint(1, 30)))
        assert t._translate_whole(s) == t._translate_reference(s), s


@pytest.mark.parametrize(
    ("text", "view"),
    [
        ("삼성전자는 한국", " 삼성전자는 한국 "),  # Hangul syllables stay syllables
        ("ガスが「値上げ」", " ガスが 値上げ "),  # kana keep their voicing; CJK brackets separate
        ("ภาษาไทย", " ภาษาไทย "),  # Thai vowel signs are part of the word
        ("नमस्ते", " नमस्ते "),  # so is the Devanagari virama
        ("مُحَمَّد", " محمد "),  # Arabic vowel signs are optional in print: folded away
        ("שָׁלוֹם", " שלום "),  # so are Hebrew points
        ("Bāqerī", " baqeri "),
    ],
)
def test_marks_that_are_letters_parts_are_kept(text: str, view: str) -> None:
    assert fold(text).text == view


def test_spaced_view_separates_scripts_written_without_spaces() -> None:
    from worker.matching.text import spaced_view

    view = fold("アップルはiPhone 15を発売、中国G7峰会").text
    spaced, places = spaced_view(view)
    assert spaced == " アップルは iphone 15 を発売 中国 g7 峰会 "
    # taking the added spaces out again, in order, gives the view back
    rebuilt = list(spaced)
    for k, p in enumerate(places):
        assert rebuilt.pop(p) == " ", k
    assert "".join(rebuilt) == view
    assert spaced_view(fold("Путин и Ирак").text) is None
    assert spaced_view(fold("plain ASCII").text) is None
    assert spaced_view(fold("中国外交部").text) is None  # one script: nothing to separate
