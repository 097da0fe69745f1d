"""Levity's benchmark: a closed-loop OCPP 1.6 load generator, two baselines, a runner.

Start it with ``python bench/run.py`` (see README.md, "Performance").
"""
