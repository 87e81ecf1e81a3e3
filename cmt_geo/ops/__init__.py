"""Stateless tensor operations: the selective scan, the SS2D cross-scan and the 2-D discrete wavelet transforms."""

from cmt_geo.ops.cross_scan import cross_merge, cross_scan
from cmt_geo.ops.selective_scan import available_backends, selective_scan, selective_scan_ref
from cmt_geo.ops.wavelet import dwt2, haar_dwt2, haar_idwt2, idwt2, wavelet_filter_bank

__all__ = [
    "available_backends",
    "cross_merge",
    "cross_scan",
    "dwt2",
    "haar_dwt2",
    "haar_idwt2",
    "idwt2",
    "selective_scan",
    "selective_scan_ref",
    "wavelet_filter_bank",
]
