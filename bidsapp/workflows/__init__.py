"""nipype workflow factories: they only wire nodes."""
