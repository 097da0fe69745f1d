"""TransactionNotificationPlugin: the webhook example of docs/plugins.md, as a working plugin app."""
