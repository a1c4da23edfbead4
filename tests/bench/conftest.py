"""The API tests' ``service`` fixture (an app on SQLite with the example election), reused."""

from tests.api.conftest import service  # noqa: F401
