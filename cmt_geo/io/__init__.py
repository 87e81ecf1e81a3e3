"""Raster and vector I/O shared by every workflow (torch-free): `raster` reads with clear errors, `grid` tiles a
raster into windows, `outputs` writes atomically with overwrite rules. Import the submodules; this package imports
nothing itself, so the command line can use `outputs` without loading GDAL."""
