"""Where the plugin finds `cmtgeo`: a path kept in the QGIS settings, else `cmtgeo` on PATH."""

from __future__ import annotations

from qgis.core import QgsSettings

from .runner import resolve_executable

#: QGIS settings key holding the configured `cmtgeo` executable or cmt-geo environment folder.
EXECUTABLE_KEY = "cmt_geo/executable"


def configured_executable() -> str:
    """The configured `cmtgeo` executable or environment folder, "" when none is set (then PATH is searched)."""
    return str(QgsSettings().value(EXECUTABLE_KEY, "") or "")


def set_configured_executable(path: str) -> None:
    """Keep `path` (an executable or environment folder; "" to search PATH) in the QGIS settings."""
    QgsSettings().setValue(EXECUTABLE_KEY, path.strip())


def cmtgeo_executable() -> str:
    """The `cmtgeo` to run now.

    Raises:
        CmtGeoNotFoundError: none configured or on PATH; the message says how to install cmt-geo.
    """
    return resolve_executable(configured_executable() or None)
