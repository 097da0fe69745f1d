"""TransactionNotificationPlugin: the spec's webhook example, as a working plugin app."""
