import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-data", action="store_true", help="run tests that read the full shared datasets")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-data") or os.environ.get("COLORIZE_RUN_DATA") == "1":
        return
    skip = pytest.mark.skip(reason="reads the full shared datasets; opt in with --run-data or COLORIZE_RUN_DATA=1")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own artifact cache so tests never share state."""
    monkeypatch.setenv("COLORIZE_CACHE", str(tmp_path_factory.mktemp("cache")))
