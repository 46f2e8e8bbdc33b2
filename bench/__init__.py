"""``make bench``: a reproducible benchmark suite (issue 7); run with ``python -m bench``."""
