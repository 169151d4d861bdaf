def pytest_configure(config):
    config.addinivalue_line(
        "markers", "provokes(*statuses): HTTP statuses a page test causes on purpose; the browser's console may "
                   "report them (tests/serve_ui/test_page.py)",
    )
