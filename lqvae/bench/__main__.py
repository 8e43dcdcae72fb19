"""``python -m lqvae.bench``: the benchmarks (:mod:`lqvae.cli.bench`)."""

from lqvae.cli.bench import main

main()
