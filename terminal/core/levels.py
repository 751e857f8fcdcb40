"""The five satisfaction levels and their two code lists.

We store one canonical code, the provincial interface convention (5 = 非常满意 … 1 = 非常不满意),
and convert at the edges. GB/T 39046-2020 (table 9, code list A.8) numbers the same levels the
other way round (1 = 非常满意), so ``to_gbt``/``from_gbt`` are the only place that knows that.
"""

from __future__ import annotations

from enum import IntEnum

from .checks import shown


class Level(IntEnum):
    VERY_SATISFIED = 5
    SATISFIED = 4
    BASICALLY_SATISFIED = 3
    DISSATISFIED = 2
    VERY_DISSATISFIED = 1

    @property
    def zh(self) -> str:
        return _LABELS[self][0]

    @property
    def en(self) -> str:
        return _LABELS[self][1]

    @property
    def is_bad(self) -> bool:
        """A bad rating (不满意 or 非常不满意) must carry a reason and opens a work order."""
        return self <= Level.DISSATISFIED

    def to_gbt(self) -> int:
        """Code in the GB/T 39046-2020 list A.8 (1 = 非常满意 … 5 = 非常不满意)."""
        return 6 - int(self)

    @classmethod
    def from_gbt(cls, code: int) -> "Level":
        if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 5:
            raise ValueError(f"GB/T 39046 level code must be an integer 1..5, got {shown(code)}")
        return cls(6 - code)

    @classmethod
    def parse(cls, code: object) -> "Level":
        """Canonical code (5 = best) from untrusted input, with a clear error."""
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"level must be an integer 1..5 (5 = 非常满意), got {shown(code)}")
        if not 1 <= code <= 5:
            raise ValueError(f"level {shown(code)} is outside 1..5 (5 = 非常满意, 1 = 非常不满意)")
        return cls._value2member_map_[code]  # what cls(code) returns, without Enum's slow call


_LABELS = {
    Level.VERY_SATISFIED: ("非常满意", "Very satisfied"),
    Level.SATISFIED: ("满意", "Satisfied"),
    Level.BASICALLY_SATISFIED: ("基本满意", "Basically satisfied"),
    Level.DISSATISFIED: ("不满意", "Dissatisfied"),
    Level.VERY_DISSATISFIED: ("非常不满意", "Very dissatisfied"),
}

#: Best first: the order buttons stand on a terminal, left to right.
LEVELS_BEST_FIRST = tuple(sorted(Level, reverse=True))
