"""The `cmtgeo` command line (installed as the package `cmt_geo_cli`): thin wrappers over the `cmt_geo` library."""
