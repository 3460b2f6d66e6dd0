"""What a person may type when filing a mission or deciding a gate: the limits and how a budget is read.

The same rules apply to the form, the CLI and the services, so the messages
are written once here.
"""

import re
from decimal import Decimal

# Maximum lengths, in characters. The request is long enough for a detailed
# brief with logs pasted in; beyond it a brief stops helping the agents and
# starts costing every prompt that carries it.
TITLE_MAX = 200
REQUEST_MAX = 20_000
ACCEPTANCE_MAX = 5_000
VARIABLE_MAX = 500
GATE_COMMENT_MAX = 2_000

MIN_BUDGET_USD = Decimal("0.01")
MAX_BUDGET_USD = Decimal("10000")

# Digits, then at most one decimal separator (point or comma) with one or two digits.
_PLAIN_AMOUNT = re.compile(r"(\d+)(?:[.,](\d{1,2}))?")
_SEPARATED = re.compile(r"\d*[.,]\d{3}")


def text_check(label: str, text: str, limit: int) -> str:
    """Return ``text``, or raise ``ValueError`` saying how far over ``limit`` it is."""
    if len(text) > limit:
        raise ValueError(f"The {label} is {len(text):,} characters long; the limit is {limit:,}.")
    return text


def budget_range_check(amount: Decimal) -> Decimal:
    if not amount.is_finite() or not (MIN_BUDGET_USD <= amount <= MAX_BUDGET_USD):
        raise ValueError(f"The budget must be between ${MIN_BUDGET_USD} and ${MAX_BUDGET_USD}.")
    return amount


def budget_parse(text: str) -> Decimal:
    """Read a budget in dollars as a person types it: ``5``, ``5.00``, ``5,00`` (decimal comma) or ``$5``.

    Thousands separators are refused rather than guessed: ``1.234,56`` and
    ``1,234`` mean different amounts to different readers, and a wrong guess
    files a mission with a budget 100 or 1000 times what was meant.
    """
    cleaned = text.strip().removeprefix("$").replace(" ", "")
    if not cleaned:
        raise ValueError("Enter a budget in dollars, e.g. 5 or 5.00.")
    match = _PLAIN_AMOUNT.fullmatch(cleaned)
    if match is None and _PLAIN_AMOUNT.fullmatch(cleaned.removeprefix("-")):
        budget_range_check(Decimal(-1))  # a negative amount: the range message says what is allowed
    if match is None:
        if "." in cleaned and "," in cleaned or cleaned.count(",") + cleaned.count(".") > 1:
            raise ValueError(
                f"“{text.strip()}” has a thousands separator: write the budget without one, "
                "with at most two decimals, e.g. 1234.56."
            )
        if _SEPARATED.fullmatch(cleaned):
            raise ValueError(
                f"“{text.strip()}” is ambiguous (a thousands separator or three decimals?): "
                "write the budget without thousands separators and with at most two decimals, e.g. 1234 or 1.23."
            )
        if re.fullmatch(r"\d+[.,]\d{3,}", cleaned):
            raise ValueError("A budget has at most two decimals (cents).")
        raise ValueError(f"Enter the budget as a number of dollars, e.g. 5 or 5.00, not “{text.strip()[:40]}”.")
    whole, cents = match.groups()
    return budget_range_check(Decimal(f"{whole}.{cents or '0'}").quantize(Decimal("0.01")))
