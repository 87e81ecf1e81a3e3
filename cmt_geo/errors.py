"""The cmt-geo error hierarchy.

Every error cmt-geo raises on purpose derives from `CmtGeoError` and also from the builtin exception that fits, so
callers can catch either. Messages say what was wrong, the offending value, and how to fix it, on one line.
"""


class CmtGeoError(Exception):
    """Root of every error cmt-geo raises on purpose."""


class ConfigError(CmtGeoError, ValueError):
    """An option, argument or configuration value is not valid."""


class InvalidRasterError(CmtGeoError, ValueError):
    """A raster cannot be used: unreadable, wrong band count, size or georeferencing."""


class DatasetNotFoundError(CmtGeoError, FileNotFoundError):
    """A dataset folder or one of its files is missing."""


class InvalidLabelError(CmtGeoError, ValueError):
    """A label raster or vector holds a colour, value or class that the dataset does not define."""


class OutputExistsError(CmtGeoError, FileExistsError):
    """An output exists and overwriting was not asked for."""


class OutputNotWritableError(CmtGeoError, PermissionError):
    """An output cannot be written where it was asked for (no permission, or its folder cannot be created)."""


class BackendUnavailableError(CmtGeoError, RuntimeError):
    """A compute backend was asked for but cannot run here (missing package or device)."""


class CheckpointError(CmtGeoError, ValueError):
    """A checkpoint is corrupt, truncated, or does not match what it is loaded into."""


class CanceledError(CmtGeoError):
    """The user canceled a running job."""


class IndexTypeError(CmtGeoError, TypeError):
    """A dataset was indexed with a kind of value it does not take (e.g. an int where a window or slice is due)."""
