"""Admin test helpers: a logged-in browser for the real daphne server, form parsing.

Loaded as a plugin by tests/conftest.py. ``operator_client`` is a logged-in Django
test client like pytest-django's ``admin_client``, without its password hashing
(about a second per test); ``operator`` has a real password, for logging in over
HTTP with ``browser``.
"""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest
from django.contrib.auth.hashers import make_password

PASSWORD = "levity-admin-pw-1"


class FormFields(HTMLParser):
    """The values a browser would submit for one <form> (inputs, selects, textareas)."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside or ("name" not in attrs and tag != "option"):
            return
        if tag == "input" and attrs.get("type") not in {"submit", "checkbox", "radio"}:
            self.fields[attrs["name"]] = attrs.get("value") or ""
        elif tag == "input" and "checked" in attrs:
            self.fields[attrs["name"]] = attrs.get("value") or "on"
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs.get("value") or ""
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.fields[self._textarea] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data


def form_fields(html: str, form_id: str) -> dict[str, str]:
    parser = FormFields(form_id)
    parser.feed(html)
    return parser.fields


_password_hash: list[str] = []


@pytest.fixture
def operator_client(django_user_model, client):
    """An in-process client logged in as a superuser (no password, so no hashing)."""
    user = django_user_model(username="admin", is_staff=True, is_superuser=True)
    user.set_unusable_password()
    user.save()
    client.force_login(user)
    return client


@pytest.fixture
def operator(django_user_model):
    """A superuser with a real password (hashed once per test session)."""
    if not _password_hash:
        _password_hash.append(make_password(PASSWORD))
    return django_user_model.objects.create(
        username="operator", password=_password_hash[0], is_staff=True, is_superuser=True
    )


@pytest.fixture
def browser(daphne_server, operator):
    """An HTTP client logged into the admin of the real daphne server."""
    with httpx.Client(base_url=daphne_server.http_url, timeout=20) as client:
        login = client.get("/admin/login/")
        assert login.status_code == 200
        fields = form_fields(login.text, "login-form")
        fields.update(username="operator", password=PASSWORD)
        response = client.post("/admin/login/?next=/admin/", data=fields)
        assert response.status_code == 302, response.text[:500]
        assert response.headers["location"] == "/admin/"
        yield client
