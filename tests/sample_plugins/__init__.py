"""A plugin app for tests, and the example plugins of docs/plugins.md.

Install it in a test server with ``start_daphne(LEVITY_EXTRA_APPS="tests.sample_plugins")``.
"""
