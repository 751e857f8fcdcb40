"""Middleware: a NUL character in a query parameter is a 400 for every page, before any view.

PostgreSQL refuses NUL in text, so a filter value or search term holding one (``?window_code=%00``,
``?q=%00``) made every admin list and staff page that passes it to a query answer 500. No honest
form or link ever sends one, so it is refused once, here, rather than in each filter.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest


class RefuseNul:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            raise BadRequest("NUL in a query parameter")
        return self.get_response(request)
