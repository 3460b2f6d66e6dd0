from decimal import Decimal

import pytest
from inventory.items import InvalidItem, Item, parse_sku


def test_parse_sku_normalises_case_and_spaces():
    assert parse_sku("  bolt m4 ") == "BOLT-M4"


def test_parse_sku_rejects_symbols():
    with pytest.raises(InvalidItem):
        parse_sku("bolt/m4")


def test_item_normalises_its_sku():
    assert Item(sku="nut m4", name="M4 nut", unit_price=Decimal("0.05")).sku == "NUT-M4"


def test_item_needs_a_name_and_a_price_of_at_least_zero():
    with pytest.raises(InvalidItem):
        Item(sku="NUT-M4", name=" ", unit_price=Decimal("0.05"))
    with pytest.raises(InvalidItem):
        Item(sku="NUT-M4", name="M4 nut", unit_price=Decimal("-1"))


def test_price_of_multiplies_the_unit_price():
    assert Item(sku="NUT-M4", name="M4 nut", unit_price=Decimal("0.05")).price_of(20) == Decimal("1.00")
