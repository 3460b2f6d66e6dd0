"""Stock levels of the items an inventory knows about."""

from decimal import Decimal

from inventory.items import Item, parse_sku


class UnknownItem(KeyError):
    """A SKU the inventory has never registered."""


class InsufficientStock(ValueError):
    """More units were asked for than are in stock."""


class Inventory:
    """Items by SKU and how many units of each are in stock."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._counts: dict[str, int] = {}

    def register(self, item: Item) -> None:
        """Make an item known, with nothing in stock yet; registering it again keeps its stock."""
        self._items[item.sku] = item
        self._counts.setdefault(item.sku, 0)

    def item(self, sku: str) -> Item:
        """The registered item with this SKU."""
        key = parse_sku(sku)
        if key not in self._items:
            raise UnknownItem(key)
        return self._items[key]

    def add(self, sku: str, count: int) -> int:
        """Put ``count`` units into stock; returns the new quantity."""
        key = self.item(sku).sku
        if count <= 0:
            raise ValueError("count must be positive")
        self._counts[key] += count
        return self._counts[key]

    def remove(self, sku: str, count: int) -> int:
        """Take ``count`` units out of stock; returns the new quantity."""
        key = self.item(sku).sku
        if count <= 0:
            raise ValueError("count must be positive")
        if count > self._counts[key]:
            raise InsufficientStock(f"only {self._counts[key]} of {key} in stock, {count} asked for")
        self._counts[key] -= count
        return self._counts[key]

    def quantity(self, sku: str) -> int:
        """How many units of this item are in stock."""
        return self._counts[self.item(sku).sku]

    def skus(self) -> list[str]:
        """Every registered SKU, sorted."""
        return sorted(self._items)

    def total_value(self) -> Decimal:
        """What everything in stock is worth at unit prices."""
        return sum((item.price_of(self._counts[sku]) for sku, item in self._items.items()), Decimal("0"))
