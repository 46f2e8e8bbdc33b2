"""The read side: the store adapters, the projection engine, and the read models it feeds."""
