"""bidsapp: fMRIPrep derivatives -> clean, documented samples x features arrays."""

__version__ = "0.1.0"
