"""avsuite.models."""
