from django.shortcuts import render

from home.selectors import home_dashboard


def home(request):
    """The first page after login: what is mine, what needs me, what it cost, what went wrong."""
    return render(request, "home/index.html", home_dashboard(user=request.user))
