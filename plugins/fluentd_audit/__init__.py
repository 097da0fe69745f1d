"""Audit records of OCPP messages and WebSocket sessions, sent to Fluentd."""
