from datetime import date, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone

from missions.models import MissionTemplate
from missions.selectors import missions_visible_to
from projects.models import Project
from reports.selectors import BUCKETS, KpiFilters

DEFAULT_DAYS = 30
# Buckets a chart and its table may have: a year of days, or about five years of weeks.
MAX_DAYS = {"day": 366, "week": 366 * 5}
# Far enough either way for any real filing date, and away from date.min/max, which a range end would overflow.
DATE_LIMITS = [MinValueValidator(date(1970, 1, 1)), MaxValueValidator(date(9000, 12, 31))]


class KpiFilterForm(forms.Form):
    """The report's filters from the query string; every field may be left out (the last 30 days, everything)."""

    date_from = forms.DateField(
        required=False, label="From", validators=DATE_LIMITS, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", validators=DATE_LIMITS, widget=forms.DateInput(attrs={"type": "date"})
    )
    project = forms.ModelChoiceField(queryset=Project.objects.none(), required=False, to_field_name="slug")
    template = forms.ModelChoiceField(queryset=MissionTemplate.objects.none(), required=False, to_field_name="slug")
    requester = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), required=False, to_field_name="username"
    )
    bucket = forms.ChoiceField(
        choices=[(b, b.capitalize()) for b in BUCKETS], required=False, initial="day", label="Per"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Only what the person's own missions name: a project or requester they may not see is not offered.
        visible = missions_visible_to(user).order_by().values("pk")
        self.fields["project"].queryset = Project.objects.filter(missions__in=visible).distinct().order_by("name")
        self.fields["template"].queryset = MissionTemplate.objects.order_by("name")
        self.fields["requester"].queryset = (
            get_user_model().objects.filter(missions__in=visible).distinct().order_by("username")
        )

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        date_to = data.get("date_to") or today
        date_from = data.get("date_from") or (date_to - timedelta(days=DEFAULT_DAYS - 1))
        bucket = data.get("bucket") or "day"
        if "date_from" in self.errors or "date_to" in self.errors or "bucket" in self.errors:
            return data
        if date_from > date_to:
            raise forms.ValidationError("The start date is after the end date.", code="reversed")
        days = (date_to - date_from).days + 1
        if days > MAX_DAYS[bucket]:
            hint = " Choose weeks for a longer range." if bucket == "day" else ""
            raise forms.ValidationError(
                "%(days)s days is too long a range per %(bucket)s: at most %(max)s.%(hint)s",
                code="too_long",
                params={"days": days, "bucket": bucket, "max": MAX_DAYS[bucket], "hint": hint},
            )
        data.update(date_from=date_from, date_to=date_to, bucket=bucket)
        # The inputs show the range reported, not blanks, when the defaults filled them.
        self.data = self.data.copy()
        for name, value in (("date_from", date_from.isoformat()), ("date_to", date_to.isoformat()), ("bucket", bucket)):
            self.data[name] = value  # QueryDict.update would add a second value, not replace the first
        return data

    def filters(self) -> KpiFilters:
        data = self.cleaned_data
        return KpiFilters(
            date_from=data["date_from"],
            date_to=data["date_to"],
            project=data.get("project"),
            template=data.get("template"),
            requester=data.get("requester"),
            bucket=data["bucket"],
        )
