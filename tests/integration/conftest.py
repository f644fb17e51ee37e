"""Fixtures of the integration tests: the special Centres shared by the access and ecflow_ui tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.integration.centres import (
    EVERY_IDENTITY,
    LOGSERVERS,
    PASSWORD,
    PASSWORD_BESIDE_PLAIN,
    PASSWORD_ENV,
    WHITE_LISTED,
)


@pytest.fixture
def white_list_centre(make_centre: Callable[..., Any]) -> Any:
    """A Centre whose machine1 admits only user1 and machine2 only user2 (removed after the test)."""
    return make_centre(servers=WHITE_LISTED, logservers=LOGSERVERS)


@pytest.fixture
def every_identity_centre(make_centre: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Centre whose machine1 wants custom user bob with PASSWORD (from $ECFR_TEST_PASSWORD), machine2 the
    white-list name user2, and machine3 takes anyone (removed after the test)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return make_centre(servers=EVERY_IDENTITY, logservers=LOGSERVERS)


@pytest.fixture
def password_centre(make_centre: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Centre whose machine1 wants custom user bob with PASSWORD (in $ECFR_TEST_PASSWORD for the profile's
    `password = "env:ECFR_TEST_PASSWORD"`), beside a plain machine2 (removed after the test)."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    return make_centre(servers=PASSWORD_BESIDE_PLAIN, logservers=LOGSERVERS)
