"""BIDS side: collecting a dataset's runs and naming outputs with BIDS entities."""
