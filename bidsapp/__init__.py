"""bidsapp: fMRIPrep derivatives -> clean, documented samples x features arrays."""

import os

__version__ = "0.1.0"

# bidsapp never uses the network: stop nipype's version check (etelemetry) before nipype is imported.
os.environ.setdefault("NIPYPE_NO_ET", "1")
