"""Stateless tensor operations: the selective scan and the SS2D cross-scan."""

from cmt_geo.ops.cross_scan import cross_merge, cross_scan
from cmt_geo.ops.selective_scan import available_backends, selective_scan, selective_scan_ref

__all__ = ["available_backends", "cross_merge", "cross_scan", "selective_scan", "selective_scan_ref"]
