"""One module per `cmtgeo` subcommand."""
