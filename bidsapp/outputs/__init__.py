"""What bidsapp writes: the run transaction, sidecars, column descriptions, checksums and the reader."""
