"""A plain-text stock report."""

from inventory.stock import Inventory

HEADERS = ("SKU", "Name", "Qty", "Value")


def stock_report(inventory: Inventory) -> str:
    """A table of every item with its quantity and value, and a total line; columns fit their widest cell."""
    rows = []
    for sku in inventory.skus():
        item, count = inventory.item(sku), inventory.quantity(sku)
        rows.append((sku, item.name, str(count), f"{item.price_of(count):.2f}"))
    rows.append(("", "Total", "", f"{inventory.total_value():.2f}"))
    widths = [max(len(row[i]) for row in (HEADERS, *rows)) for i in range(len(HEADERS))]
    return "\n".join(format_row(row, widths) for row in (HEADERS, *rows))


def format_row(cells: tuple[str, ...], widths: list[int]) -> str:
    """Text cells left-aligned, numeric columns (the last two) right-aligned, two spaces apart."""
    parts = [
        cell.ljust(width) if i < 2 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(parts).rstrip()
