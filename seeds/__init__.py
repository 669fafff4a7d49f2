"""Demo mall data and its loader."""
