"""Products the inventory knows about."""

import re
from dataclasses import dataclass
from decimal import Decimal

SKU_PATTERN = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*$")


class InvalidItem(ValueError):
    """An item with a malformed SKU, an empty name or a negative price."""


def parse_sku(text: str) -> str:
    """Normalise a stock-keeping unit: trimmed, upper case, dash-separated words (``bolt m4`` -> ``BOLT-M4``)."""
    sku = "-".join(str(text).strip().upper().split())
    if not SKU_PATTERN.match(sku):
        raise InvalidItem(f"Not a valid SKU: {text!r}")
    return sku


@dataclass(frozen=True)
class Item:
    """A product: its SKU, a human-readable name and the price of one unit."""

    sku: str
    name: str
    unit_price: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "sku", parse_sku(self.sku))
        if not self.name.strip():
            raise InvalidItem(f"Item {self.sku} needs a name")
        if self.unit_price < 0:
            raise InvalidItem(f"Item {self.sku} cannot have a negative price")

    def price_of(self, count: int) -> Decimal:
        """What ``count`` units cost."""
        return self.unit_price * count
