"""A test app that fails a start after the webhook's outbox row was written in its transaction."""
