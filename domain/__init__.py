"""The pure model of Siyu Ledger: aggregates, events, rules, errors, and the Application.

Nothing here imports a web framework, a database driver, NATS, ``os.environ`` or
logging configuration (tests/unit/test_dependency_rule.py enforces it).
"""
