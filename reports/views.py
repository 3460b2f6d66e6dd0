import csv

from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from audit.exports import csv_safe
from reports.forms import KpiFilterForm
from reports.selectors import kpi_report


def kpi(request):
    """The KPI report of the missions the person may see; ``?format=csv&table=<name>`` downloads one table."""
    form = KpiFilterForm(request.GET, user=request.user)  # always bound: no filters means the defaults
    wants_csv = request.GET.get("format") == "csv"
    if not form.is_valid():
        if wants_csv:
            return HttpResponseBadRequest("Fix the report's filters: " + _errors_text(form), content_type="text/plain")
        return render(request, "reports/kpi.html", {"form": form, "report": None})
    report = kpi_report(user=request.user, filters=form.filters())
    if wants_csv:
        table = report.tables.get(request.GET.get("table", ""))
        if table is None:
            names = ", ".join(report.tables)
            return HttpResponseBadRequest(f"No such table; choose one of: {names}.", content_type="text/plain")
        return _csv_response(table, report.filters)
    context = {"form": form, "report": report, "query": _query_without_format(request)}
    return render(request, "reports/kpi.html", context)


def _cell(value):
    return csv_safe(value) if isinstance(value, str) else value


def _csv_response(table, filters) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"kpi-{table.name}-{filters.date_from.isoformat()}-{filters.date_to.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(column.key for column in table.columns)
    for row in table.rows:
        # Only text can start a formula; a negative number stays a number a spreadsheet can sum.
        writer.writerow(_cell(row.get(column.key)) for column in table.columns)
    return response


def _errors_text(form) -> str:
    return " ".join(str(message) for messages in form.errors.values() for message in messages)


def _query_without_format(request) -> str:
    """The page's filters as a query string, for each table's CSV link to keep."""
    query = request.GET.copy()
    for key in ("format", "table"):
        query.pop(key, None)
    return query.urlencode()
