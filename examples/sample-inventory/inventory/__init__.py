"""A tiny stock-keeping library: items, stock levels and a stock report."""

__version__ = "0.1.0"
