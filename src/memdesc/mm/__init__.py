"""memdesc.mm."""
