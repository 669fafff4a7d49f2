"""Load benchmarks for mallpoints (figures, not tests). See bench/README.md."""
