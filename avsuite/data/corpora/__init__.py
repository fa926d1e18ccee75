"""avsuite.data.corpora."""
