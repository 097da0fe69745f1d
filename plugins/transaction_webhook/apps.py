from plugins.apps import PluginAppConfig


class TransactionWebhookConfig(PluginAppConfig):
    name = "plugins.transaction_webhook"
    label = "transaction_webhook"
    verbose_name = "Transaction webhook"
    plugin_classes = ("plugins.transaction_webhook.plugin.TransactionNotificationPlugin",)

    def ready(self) -> None:
        from . import receivers  # noqa: F401  connects server_started
