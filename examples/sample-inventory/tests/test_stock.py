from decimal import Decimal

import pytest
from inventory.items import Item
from inventory.stock import InsufficientStock, Inventory, UnknownItem


@pytest.fixture
def stock():
    inventory = Inventory()
    inventory.register(Item(sku="BOLT-M4", name="M4 bolt", unit_price=Decimal("0.12")))
    inventory.register(Item(sku="NUT-M4", name="M4 nut", unit_price=Decimal("0.05")))
    return inventory


def test_a_registered_item_starts_with_no_stock(stock):
    assert stock.quantity("BOLT-M4") == 0


def test_add_and_remove_change_the_quantity(stock):
    assert stock.add("BOLT-M4", 250) == 250
    assert stock.remove("bolt m4", 40) == 210
    assert stock.quantity("BOLT-M4") == 210


def test_removing_more_than_in_stock_is_refused_and_changes_nothing(stock):
    stock.add("NUT-M4", 3)
    with pytest.raises(InsufficientStock):
        stock.remove("NUT-M4", 4)
    assert stock.quantity("NUT-M4") == 3


def test_counts_must_be_positive(stock):
    with pytest.raises(ValueError):
        stock.add("NUT-M4", 0)
    with pytest.raises(ValueError):
        stock.remove("NUT-M4", -1)


def test_an_unknown_sku_is_an_error(stock):
    with pytest.raises(UnknownItem):
        stock.add("WASHER-M4", 1)


def test_registering_again_keeps_the_stock(stock):
    stock.add("NUT-M4", 5)
    stock.register(Item(sku="NUT-M4", name="M4 hex nut", unit_price=Decimal("0.06")))
    assert stock.quantity("NUT-M4") == 5
    assert stock.item("NUT-M4").name == "M4 hex nut"


def test_skus_are_sorted(stock):
    assert stock.skus() == ["BOLT-M4", "NUT-M4"]


def test_total_value_sums_every_item(stock):
    stock.add("BOLT-M4", 10)
    stock.add("NUT-M4", 20)
    assert stock.total_value() == Decimal("2.20")
