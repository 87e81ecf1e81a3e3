"""Neural-network layers (nn.Modules) of cmt-geo; they build only on `cmt_geo.ops` and torch."""
