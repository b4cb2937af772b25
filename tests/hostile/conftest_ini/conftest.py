"""A submitted conftest.py: if pytest ever collected it, every test would pass."""
import os

import pytest

open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "CONFTEST_WAS_IMPORTED"), "w").close()
print("SUBMITTED CONFTEST IMPORTED")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"


def pytest_collection_modifyitems(items):
    items.clear()
