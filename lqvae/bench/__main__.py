"""``python -m lqvae.bench``: the benchmarks (:mod:`lqvae.bench.engine`)."""

from lqvae.bench.engine import main

main()
