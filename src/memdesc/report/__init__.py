"""memdesc.report.text."""
