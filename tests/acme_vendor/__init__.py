"""A Django app for tests: a vendor extension answering DataTransfer for "com.acme".

Install it in a test server with ``start_daphne(LEVITY_EXTRA_APPS="tests.acme_vendor")``.
"""
