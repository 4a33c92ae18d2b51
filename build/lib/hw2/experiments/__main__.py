"""``python -m hw2.experiments``: the command line (:mod:`hw2.experiments.cli`)."""
import sys

from hw2.experiments.cli import main

sys.exit(main())
