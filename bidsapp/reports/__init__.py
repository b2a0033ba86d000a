"""HTML report: one page per participant."""
