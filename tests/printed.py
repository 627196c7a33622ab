"""What a document's printed number claims, for the tests that compare a published document with
a fresh measurement: the value to its printed digits, the same on every machine.

A printed "213.519358" or "6.7e-14" claims a value within half a unit of its last digit. A fresh
measurement differs from machine to machine (BLAS, thread count, versions) by far less than a
hundredth of that unit, so a value is accepted within 0.51 units: a correct document is accepted
everywhere and a wrong one (off by a unit or more) rejected everywhere, whichever way the last
bits fall, where comparing the formatted text flips when a value lies on a rounding edge. A
program the document shows printing a number is run :func:`widened`, so that its value is read
with more digits than it shows, then compared by :func:`same_claims`.
"""

import re

#: how far past half a unit of the last printed digit a value may be: room for rounding noise
SLACK = 0.01
#: after a number that a program printed to more digits than the document shows (:func:`widened`)
WIDENED = "⟨widened⟩"
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.I)


def agrees(printed: str, value: float) -> bool:
    """Whether ``value`` is the number ``printed`` ("4.3e-06", "0.86", "213.519358") to its
    printed digits."""
    mantissa, _, exponent = printed.lower().partition("e")
    unit = 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    return abs(value - float(printed)) <= (0.5 + SLACK) * unit


def widened(code: str) -> str:
    """``code`` with each f-string field ``{value:.Nf}`` printing N + 6 decimals, marked WIDENED, so
    that a test reads the value itself, not where its last printed digit fell."""
    return re.sub(r"(\{[^{}]*?):\.(\d+)f\}", lambda m: f"{m[1]}:.{int(m[2]) + 6}f}}{WIDENED}", code)


def same_claims(printed: str, measured: str) -> bool:
    """Whether a line a widened program printed (``measured``) says what a document shows it
    printing (``printed``): each number marked WIDENED is the printed one to its printed digits;
    everything else, other numbers included, is the same text."""
    parts = NUMBER.split(printed)
    pattern = f"({NUMBER.pattern})({re.escape(WIDENED)})?".join(map(re.escape, parts))
    found = re.fullmatch(pattern, measured, flags=re.I)
    if found is None:
        return False
    values = zip(NUMBER.findall(printed), found.groups()[0::2], found.groups()[1::2], strict=True)
    return all(
        agrees(shown, float(value)) if mark else shown == value for shown, value, mark in values
    )
