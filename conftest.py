"""The repository's own tests use the failover-lab pytest plugin (users opt in the same way)
and pytester, to run the plugin in sessions of its own."""

pytest_plugins = ["harness.pytest_plugin", "pytester"]
