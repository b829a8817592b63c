"""Training from builds: the curriculum schedule, sample index, mixture plan, decoding, loader, the
UniMedVL/Bagel export and the reference training loop."""
