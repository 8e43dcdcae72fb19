"""``python -m lqvae.evaluate``: the evaluation command (:mod:`lqvae.cli.evaluate`)."""

import sys

from lqvae.cli.evaluate import main

sys.exit(0 if main() is not None else 1)
