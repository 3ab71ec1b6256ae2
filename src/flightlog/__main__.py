"""``python -m flightlog`` runs the command line."""

from flightlog.cli.main import main

main()
