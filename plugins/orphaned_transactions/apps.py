from plugins.apps import PluginAppConfig


class OrphanedTransactionsConfig(PluginAppConfig):
    name = "plugins.orphaned_transactions"
    label = "orphaned_transactions"
    verbose_name = "Orphaned transactions"
    plugin_classes = ("plugins.orphaned_transactions.plugin.OrphanedTransactionPlugin",)
