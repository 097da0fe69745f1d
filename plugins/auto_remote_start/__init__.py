"""AutoRemoteStartPlugin: start charging when a cable is plugged in, without RFID."""
