"""Clean lists by default: tracks whose title or artist carries an explicit word or a slur are hidden.

The words are ``better-profanity``'s maintained list (its ``profanity_wordlist.txt``, MIT), matched as whole words
and phrases, case-folded; not a list written by us. A few of its entries are everyday words, names or instruments
far more often than insults in song titles ("God Only Knows", "Hell Is for Children", an organ, the artist Len);
they are let through (:data:`NOT_EXPLICIT`), and the music card reports a spot check of what stays hidden.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Iterable

import numpy as np

#: Entries of the list that are not explicit in a song's title or an artist's name (see the module docstring).
NOT_EXPLICIT = frozenset({
    # everyday words, instruments and things
    "god", "hell", "fat", "organ", "pot", "loin", "whiz", "xx", "hookah", "virgin", "stupid", "ugly", "drunk", "kill",
    "murder", "lust", "naked", "strip", "steamy", "jerk", "dummy", "screw", "screwed", "stoned", "opium", "napalm",
    "pee", "tush", "gay",
    # names and artists' names (Fanny Lu, Len, Dick Feller, Young Thug, Lil Uzi Vert, Vixen, LMFAO, DINKS)
    "fanny", "len", "maxi", "willy", "wang", "dong", "dick", "thug", "uzi", "vixen", "lmfao", "dinks", "guido",
    # Spanish and Portuguese words ("negro": black)
    "negro", "quim",
})
_TOKEN = re.compile(r"[^\W_]+(?:[*'][^\W_]*)*|\*+[^\W_]+(?:\*[^\W_]*)*")


@lru_cache(maxsize=1)
def word_list() -> tuple[frozenset[str], tuple[str, ...]]:
    """(single words, multi-word phrases) of the package's list, less :data:`NOT_EXPLICIT`."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    entries = {line.strip().casefold() for line in text.splitlines() if line.strip()} - NOT_EXPLICIT
    return frozenset(e for e in entries if " " not in e), tuple(sorted(e for e in entries if " " in e))


@lru_cache(maxsize=4096)
def _starred(token: str) -> str | None:
    """The listed word a censored spelling stands for ("n*gga", "f**k": each ``*`` one letter), if any."""
    pattern = re.compile(re.escape(token).replace(r"\*", "[a-z]"))
    return next((w for w in sorted(word_list()[0]) if len(w) == len(token) and pattern.fullmatch(w)), None)


def explicit_words(text: str) -> list[str]:
    """The listed words and phrases ``text`` contains, in order of appearance (empty: clean). A ``*`` inside a word
    stands for a letter, as titles censor themselves ("F*ck", "N**gas")."""
    words, phrases = word_list()
    tokens = [t.strip("'") for t in _TOKEN.findall(str(text).casefold())]
    found = [w for t in tokens for w in [t if t in words else _starred(t) if "*" in t else None] if w]
    joined = f" {' '.join(tokens)} "
    return found + [p for p in phrases if f" {p} " in joined]


def explicit_mask(names: Iterable[str], artists: Iterable[str]) -> np.ndarray:
    """True for each track whose name or artist carries a listed word."""
    return np.array([bool(explicit_words(f"{n} {a}")) for n, a in zip(names, artists)], dtype=bool)
