"""``python -m lqvae.train``: the training command (:mod:`lqvae.train.run`)."""

from lqvae.train.run import main

main()
