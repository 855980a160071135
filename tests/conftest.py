"""Shared test configuration. Fixtures live in ``tests/fixtures/`` modules, one per area,
each owned by the area that needs it; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.data_fixtures",
    "tests.fixtures.db_fixtures",
    "tests.fixtures.ray_fixtures",
    "tests.fixtures.prediction_fixtures",
    "tests.fixtures.oanda_fixtures",
]
