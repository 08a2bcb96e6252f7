"""memdesc.analysis."""
