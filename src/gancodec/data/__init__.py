"""Image I/O, corruption checks, dataset download and split."""
