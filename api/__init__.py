"""The faces of Siyu Ledger: the Litestar HTTP API and the ``siyu`` command line."""
