from django import template

register = template.Library()
NO_DATA = "No data"


@register.simple_tag
def kpi_cell(row: dict, column) -> str:
    """One cell as the page shows it; None is "No data" (nothing to compute it from), never a zero."""
    value = row.get(column.key)
    kind = row.get("kind", "text") if column.kind == "auto" else column.kind
    if value is None:
        return NO_DATA
    if kind == "usd":
        return f"${value}"
    if kind == "percent":
        return f"{value} %"
    if kind == "hours":
        return f"{value} h"
    if kind == "ratio":
        return f"{value}×"
    return str(value)


@register.filter
def is_numeric(column) -> bool:
    return column.kind not in ("text", "auto")
