"""Command handlers: request -> aggregates -> events -> answer, one module per area."""
