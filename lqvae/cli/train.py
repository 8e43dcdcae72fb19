"""``python -m lqvae.train lqvae|classifier|defensegan ...``: the training command (:mod:`lqvae.train.run`).

``lqvae --quantizer none`` trains the VAE ablation; ``classifier --adv madry|advtr --init CKPT``
fine-tunes a classifier adversarially (the Madry and Adv Tr baselines); ``defensegan`` trains the
WGAN-GP generator of the Defense-GAN baseline.

Each epoch prints one JSON line of metrics (also appended to ``<out>/<name>.log.jsonl``) and writes
the shipped checkpoint ``<out>/<name>.safetensors`` plus ``<out>/<name>.train-state.safetensors``.
SIGINT (Ctrl-C) or SIGTERM saves the training state and exits with 130 or 143; ``--resume`` continues
from the exact batch where it stopped. Bad arguments, data or checkpoints: one line ``error: ...``,
exit status 2.

``torchrun --nproc_per_node N -m lqvae.train ...`` trains on N processes with DistributedDataParallel
(gloo on the CPU, NCCL on GPUs; :mod:`lqvae.train.run` says what is shared and what stays the same).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from lqvae.cli import errors_exit
from lqvae.core import distributed
from lqvae.core.config import LQVAEConfig
from lqvae.core.device import DEVICE_CHOICES
from lqvae.spec.datasets import DATASETS
from lqvae.train import run as training
from lqvae.train.jobs import ADV_MODES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lqvae.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", choices=DATASETS, default="mnist")
    common.add_argument("--data-dir", default=None, help="folder of idx files (or set LQVAE_DATA)")
    common.add_argument("--epochs", type=int, default=10)
    common.add_argument("--batch-size", type=int, default=128)
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    common.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images")
    common.add_argument("--out", default="runs/dev")
    common.add_argument("--resume", action="store_true")
    common.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    common.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument("--cosine", action="store_true", help="cosine learning-rate decay to 0 over --epochs")
    lq = sub.add_parser("lqvae", parents=[common], help="train an LQ-VAE with Algorithm 1")
    for f in fields(LQVAEConfig):
        if f.name in ("image_shape", "arch", "betas"):
            continue
        typ = {"int": int, "float": float, "float | None": float}.get(str(f.type), str)
        lq.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=typ, default=None,
                        help=f"config {f.name} (default {f.default})")
    lq.add_argument("--eval-classifier", default=None, help="classifier checkpoint for purified accuracy per epoch")
    lq.add_argument("--adv-inputs", default="none",
                    help="adversarial training inputs (beyond the paper, labelled apart): none | classifier | pipeline | "
                         "classifier,pipeline; half of each batch, see lqvae.train.adv_inputs")
    lq.add_argument("--adv-classifier", default=None, help="classifier checkpoint the training attacks aim at")
    lq.add_argument("--adv-eps", type=float, default=0.3, help="L-inf budget of the training attacks")
    lq.add_argument("--adv-steps", type=int, default=1, help="1 = FGSM, more = PGD with a random start")
    lq.add_argument("--init", default=None,
                    help="start from this LQ-VAE checkpoint (fine-tuning; its config, overridden by the flags given)")
    cl = sub.add_parser("classifier", parents=[common], help="train classifier A, B or C")
    dg = sub.add_parser("defensegan", parents=[common], help="train the Defense-GAN generator (WGAN-GP)")
    dg.add_argument("--eval-classifier", default=None, help="classifier checkpoint for purified accuracy per epoch")
    cl.add_argument("--arch", choices=("A", "B", "C"), required=True)
    cl.add_argument("--adv", choices=ADV_MODES, default="none",
                    help="adversarial training: madry = L-inf PGD examples (Madry et al.), advtr = half clean, half FGSM")
    cl.add_argument("--adv-eps", type=float, default=0.3, help="L-inf epsilon of the training attack")
    cl.add_argument("--pgd-steps", type=int, default=7, help="PGD steps per batch for --adv madry")
    cl.add_argument("--pgd-step-size", type=float, default=0.1, help="PGD step size at the full epsilon")
    cl.add_argument("--eps-warmup-steps", type=int, default=0, help="ramp epsilon linearly from 0 over this many batches")
    cl.add_argument("--init", default=None, help="start from this classifier checkpoint (fine-tuning)")
    cl.add_argument("--lr", type=float, default=None, help="Adam learning rate (default the config's 1e-3)")
    return p


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    command = "python -m lqvae.train " + " ".join(shlex.quote(a) for a in argv)
    try:
        with errors_exit(), distributed.session(args.device):
            return training.train(args, command)
    except training.Interrupted as exc:  # 130 for SIGINT, 143 for SIGTERM, as a shell reports a process killed by it
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
