"""``python -m lqvae.train``: the training command (:mod:`lqvae.cli.train`)."""

from lqvae.cli.train import main

main()
