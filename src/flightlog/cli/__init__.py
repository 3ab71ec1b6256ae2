"""The ``flightlog`` command line (see ``flightlog.cli.main``)."""
