"""Market data: the columnar event format, its readers, recorder and generator."""
