"""cmt-geo: CMT-UNet semantic segmentation for aerial, UAV and satellite rasters.

Importing this package is cheap: heavy dependencies (torchgeo, lightning, mamba-ssm, triton, click, qgis) are
imported only by the modules that need them, when they are used.
"""

import logging

from cmt_geo._version import __version__
from cmt_geo.errors import CmtGeoError

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["CmtGeoError", "__version__"]
