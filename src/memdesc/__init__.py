"""memdesc: an executable, bit-accurate model of the Linux physical page allocator."""

__version__ = "0.1.0"
