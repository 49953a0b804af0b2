"""Tools specialists can call."""
