"""Security fixtures: the dashboard's users and records, plus the browser of tests/browser/."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.browser.conftest import ARGS, CHROMIUM  # noqa: F401  (the same Debian chromium, same flags)
from tests.dashboard.conftest import (  # noqa: F401  (shared fixtures)
    make_record, operator, operator_user, reader, readonly_user,
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/security/" in str(item.fspath) and item.get_closest_marker("browser") and CHROMIUM is None:
            item.add_marker(pytest.mark.skip(reason="no chromium on PATH"))


@pytest.fixture
def nonstaff_user(django_user_model):
    """Logged-in but not staff, though holding both permissions: still nothing."""
    user = django_user_model.objects.create_user("outsider", password="pw")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs"))
    return user


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made per test by the hundred here: a fast hasher keeps the matrix quick."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
