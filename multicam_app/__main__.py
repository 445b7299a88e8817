"""``python -m multicam_app``: the ``multicam`` command line."""

from multicam_app import main

main()
