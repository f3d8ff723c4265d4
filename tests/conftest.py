"""Shared fixtures: real servers (Azurite, PostgreSQL) and one local SparkSession."""

from tests.fixtures.servers import azurite, postgres  # noqa: F401
from tests.fixtures.spark import spark  # noqa: F401
