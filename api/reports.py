"""/api/v1/reports/kpi: the KPI report's figures and tables, by the page's own filter form and selector."""

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from api.errors import ApiError
from api.schemas import COMMON_ERRORS, FieldErrorsOut
from reports.forms import KpiFilterForm
from reports.selectors import kpi_report

router = Router(tags=["reports"])


class KpiQuery(Schema):
    """The page's filters; each may be left out (the last 30 days, everything, per day)."""

    date_from: str | None = Field(None, description="First day filed, YYYY-MM-DD.", max_length=40)
    date_to: str | None = Field(None, description="Last day filed, YYYY-MM-DD.", max_length=40)
    project: str | None = Field(None, description="Project slug.", max_length=200)
    template: str | None = Field(None, description="Template slug.", max_length=200)
    requester: str | None = Field(None, description="Requester's username.", max_length=200)
    bucket: str | None = Field(None, description="`day` or `week`.", max_length=10)


class KpiOut(Schema):
    filters: dict = Field(description="The filters the figures are for, defaults filled in.")
    figures: dict = Field(description="Headline numbers; money as decimal strings, null where there is no data.")
    tables: dict = Field(description="Every table of the page by name: title, columns and all its rows.")


@router.get("/kpi", response={200: KpiOut, 400: FieldErrorsOut, **COMMON_ERRORS}, summary="The KPI report")
def kpi(request: HttpRequest, query: Query[KpiQuery]):
    """The missions the token's user may see, as on /reports/: every table whole, not only its first rows."""
    data = {name: value for name, value in query.dict().items() if value not in (None, "")}
    form = KpiFilterForm(data, user=request.auth)
    if not form.is_valid():
        errors = {
            ("non_field" if name == "__all__" else name): [m["message"] for m in messages]
            for name, messages in form.errors.get_json_data().items()
        }
        first = next(iter(errors.values()))[0]
        raise ApiError(400, f"Fix the report's filters: {first}", errors=errors)
    return kpi_report(user=request.auth, filters=form.filters()).as_dict()
