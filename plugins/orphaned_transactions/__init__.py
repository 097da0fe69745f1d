"""OrphanedTransactionPlugin: close transactions a charge point never stopped."""
