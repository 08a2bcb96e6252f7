"""memdesc.driver."""
