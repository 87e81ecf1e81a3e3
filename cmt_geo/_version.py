"""The cmt-geo version, the single source for the package metadata."""

__version__ = "0.1.0"
