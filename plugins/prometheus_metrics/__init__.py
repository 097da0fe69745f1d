"""Prometheus metrics of the Central System, its charge points and transactions."""
