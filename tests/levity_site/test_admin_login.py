"""Admin login throttling (django-axes) and the security headers, over a real daphne server."""

from __future__ import annotations

import httpx
import pytest

from tests.admin_fixtures import PASSWORD, form_fields

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def throttled_server(module_daphne):
    """A server that locks a username out after 3 failed logins (attempts are rows: each
    test starts with none)."""
    return module_daphne(LEVITY_LOGIN_FAILURE_LIMIT="3")


def log_in(client: httpx.Client, password: str) -> httpx.Response:
    page = client.get("/admin/login/")
    fields = form_fields(page.text, "login-form")
    fields.update(username="operator", password=password)
    return client.post("/admin/login/?next=/admin/", data=fields)


def test_a_username_is_locked_out_after_too_many_failed_logins(throttled_server, operator):
    from axes.models import AccessAttempt

    with httpx.Client(base_url=throttled_server.http_url, timeout=20) as client:
        for _ in range(2):
            assert log_in(client, "wrong").status_code == 200  # the form again, with an error
        assert log_in(client, "wrong").status_code == 429
        # Now even the right password is refused, for the cool-off period.
        locked = log_in(client, PASSWORD)
        assert locked.status_code == 429
        assert locked.headers.get("location") != "/admin/"
    attempt = AccessAttempt.objects.get(username="operator")
    assert attempt.failures_since_start >= 3


def test_a_successful_login_is_not_throttled(throttled_server, operator):
    with httpx.Client(base_url=throttled_server.http_url, timeout=20) as client:
        assert log_in(client, "wrong").status_code == 200
        response = log_in(client, PASSWORD)
        assert response.status_code == 302 and response.headers["location"] == "/admin/"


def test_responses_carry_the_security_headers(daphne_server):
    response = httpx.get(daphne_server.http_url + "/admin/login/", timeout=20)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_with_https_cookies_are_secure_and_http_is_redirected(start_daphne):
    server = start_daphne(LEVITY_HTTPS="true", LEVITY_PROXY_SSL_HEADER="true")
    with httpx.Client(base_url=server.http_url, timeout=20) as client:
        plain = client.get("/admin/login/")
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://")
        tls = client.get("/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert tls.status_code == 200
    assert tls.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    cookie = tls.headers["set-cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie
