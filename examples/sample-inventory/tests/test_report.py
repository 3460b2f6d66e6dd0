from decimal import Decimal

from inventory.items import Item
from inventory.report import format_row, stock_report
from inventory.stock import Inventory


def test_stock_report_lists_items_and_a_total():
    inventory = Inventory()
    inventory.register(Item(sku="BOLT-M4", name="M4 bolt", unit_price=Decimal("0.12")))
    inventory.add("BOLT-M4", 10)
    assert stock_report(inventory).splitlines() == [
        "SKU      Name     Qty  Value",
        "BOLT-M4  M4 bolt   10   1.20",
        "         Total          1.20",
    ]


def test_an_empty_inventory_reports_a_zero_total():
    assert stock_report(Inventory()).splitlines() == ["SKU  Name   Qty  Value", "     Total        0.00"]


def test_format_row_right_aligns_numbers():
    assert format_row(("A", "B", "1", "2.00"), [3, 3, 3, 5]) == "A    B      1   2.00"
