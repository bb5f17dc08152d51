"""Which words an attack changed: a word-level diff of a clean and an adversarial caption.

The diff is difflib's longest-matching-blocks alignment of the two word lists, so "a small red square" →
"a small blue square" changes one word, not every word after it. Each changed word is paired with the word it
replaced (when there is one), so a figure can show both words' maps side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import zip_longest


@dataclass(frozen=True)
class ChangedWord:
    """One changed position: the clean caption's word index, the adversarial one's, or both (a replacement)."""

    clean: int | None
    adversarial: int | None


@dataclass(frozen=True)
class WordDiff:
    """The two captions' words and their changes, in reading order."""

    clean: tuple[str, ...]
    adversarial: tuple[str, ...]
    changes: tuple[ChangedWord, ...]

    @property
    def same(self) -> bool:
        return not self.changes

    def changed_clean(self) -> frozenset[int]:
        """Indices of the clean caption's words that the adversarial caption does not keep."""
        return frozenset(c.clean for c in self.changes if c.clean is not None)

    def changed_adversarial(self) -> frozenset[int]:
        """Indices of the adversarial caption's words that the clean caption does not have."""
        return frozenset(c.adversarial for c in self.changes if c.adversarial is not None)


def word_diff(clean: Sequence[str], adversarial: Sequence[str]) -> WordDiff:
    """Align the word lists; inside a replaced block the words pair up in order, the longer side's rest alone."""
    matcher = SequenceMatcher(a=list(clean), b=list(adversarial), autojunk=False)
    changes: list[ChangedWord] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "equal":
            changes += [ChangedWord(a, b) for a, b in zip_longest(range(a0, a1), range(b0, b1))]
    return WordDiff(tuple(clean), tuple(adversarial), tuple(changes))
