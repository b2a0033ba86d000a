"""Names of strategies and models (no imports: the command-line parser reads them for --help)."""

MODELS = ("basic", "derivatives", "power2", "full")
COMPCOR = ("anat_combined", "anat_separated", "temporal", "temporal_anat_combined", "temporal_anat_separated")
STRATEGIES = ("none", "simple", "scrubbing", "compcor", "ica_aroma")
