"""Training as a library: the resumable loop that runs a job (:mod:`lqvae.train.jobs`: LQ-VAE, classifier,
Defense-GAN).

:func:`train` is what ``python -m lqvae.train lqvae|classifier|defensegan ...`` (:mod:`lqvae.cli.train`)
calls with its parsed arguments: it loads the data, builds the job ``args.what`` names (the factories are
looked up in this module, so a test can wrap them) and calls :func:`run`.

Each epoch prints one JSON line of metrics (also appended to ``<out>/<name>.log.jsonl``) and writes
the shipped checkpoint ``<out>/<name>.safetensors`` plus ``<out>/<name>.train-state.safetensors``
(all weights with h, Adam moments, position, random state). The training state is also written every
few minutes and when SIGINT (Ctrl-C) or SIGTERM stops the run, at whatever point it is: in a step, the
evaluation or a save; the run then exits with 130 or 143. ``--resume`` continues from the exact batch
where it stopped, bit for bit as if never stopped (on the CPU), and refuses a state of a different run
(:class:`ResumeMismatch`). The epoch's metrics are means over all its batches: the running sums are part
of the saved state, so an epoch resumed in the middle averages the batches before the stop too.

Under ``torchrun --nproc_per_node N`` (:mod:`lqvae.core.distributed`) each rank trains on its share of
every batch: ``--batch-size`` stays the global batch, split into N nearly equal parts, and the job's
objective is wrapped in ``DistributedDataParallel``, which averages the ranks' gradients. For a loss that
is a mean over the images (all of ours but the free-bits clamp, which acts on a batch mean per
dimension, and the random draws, which each rank makes from its own stream) an update is the one
process's on the same global batch, up to float rounding; the number of steps, the learning-rate
schedule and the warm-ups are the same as one process's. A global batch with fewer images than ranks
(only the last of an epoch can be) is skipped. The metrics are means over all ranks; rank 0 alone
prints, evaluates and writes the checkpoint, the log and the training state, which holds every rank's
random state, so ``--resume`` with the same N continues bit for bit (on the CPU). Stopping is decided
together: a signal to any rank stops every rank after the same step.

``args`` below is the command's parsed arguments (an ``Args`` or any object with the same
attributes, see :func:`lqvae.cli.train.parser`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from lqvae.core import distributed
from lqvae.io.checkpoint import (CheckpointError, load_train_state, remove_stale_temporaries, save_checkpoint,
                                 save_train_state)
from lqvae.io.data import load_split
from lqvae.train.jobs import ADV_MODES, Args, Job, classifier_job, defensegan_job, lqvae_job

STATE_EVERY_S = 300.0
# Arguments a resumed run may change: where and how it runs, how long, what it reports. Every other argument
# shapes the training trajectory, so a state written under a different value belongs to a different run.
RESUME_MAY_DIFFER = frozenset({"epochs", "out", "resume", "device", "threads", "quiet", "data_dir", "test_limit",
                               "eval_classifier"})


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped the run after it saved a resumable state; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


class ResumeMismatch(ValueError):
    """``--resume`` found a training state written by a different job or different arguments."""


class StopRequest:
    """SIGINT/SIGTERM handler that asks the loop to stop at a safe point instead of raising anywhere.

    A KeyboardInterrupt inside ``optimizer.step()`` or a save would leave half-updated weights or no state
    at all; so a signal only sets ``signum``, and the loop checks it after each step and after each save.
    Only an evaluation, which changes no training state, may be cut short at once (``abortable``). A
    second signal stops immediately: the state on disk is then the last one saved, whole because every
    save is atomic.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._abortable = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second signal {signal.Signals(signum).name}")
        self.signum = signum
        if self._abortable:
            raise Interrupted(signum)

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def abortable(self) -> Iterator[None]:
        """A region a signal may cut short: it must leave nothing behind that a state save would record."""
        self.check()
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopRequest"]:
        """Handle SIGINT and SIGTERM (``nohup ... &`` ignores SIGINT, so SIGTERM is how a background run is
        stopped) and restore the previous handlers afterwards, for in-process callers. Python only lets the
        main thread set handlers; elsewhere the run simply cannot be stopped by a signal."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """The epoch's data order, a function of (seed, epoch) alone, so a resumed run sees the same batches."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return list(perm.split(batch_size))


def _rng_state(device: torch.device) -> dict[str, str]:
    """The random state the steps draw from (dropout, noise, PGD starts): the global torch generator, and
    CUDA's on a GPU; base64 because the training state keeps ``info`` as JSON. Nothing here uses Python's
    ``random`` or numpy's generator."""
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return {k: base64.b64encode(v.numpy().tobytes()).decode("ascii") for k, v in states.items()}


def _set_rng_state(saved: dict[str, str], device: torch.device) -> None:
    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(saved["torch"]))
    if device.type == "cuda" and "cuda" in saved:
        torch.cuda.set_rng_state(tensor(saved["cuda"]), device)


def _fork_rng(device: torch.device) -> contextlib.AbstractContextManager:
    """The evaluation draws from a copy of the random state: training then never depends on whether, or
    how much, it evaluated, and an evaluation cut short leaves the state as it was."""
    if device.type == "cuda":
        return torch.random.fork_rng(devices=[device.index or torch.cuda.current_device()], device_type="cuda")
    return torch.random.fork_rng(devices=[])


def job_identity(job: Job, args: Args) -> dict[str, Any]:
    """What makes two runs the same run: the job, its model config and every trajectory-shaping argument."""
    identity = {"name": job.name, "kind": job.kind, "config": job.model.cfg.to_dict(),  # type: ignore[union-attr]
                "args": {k: v for k, v in sorted(vars(args).items()) if k not in RESUME_MAY_DIFFER}}
    return json.loads(json.dumps(identity, default=str))  # as it reads back from the state's JSON


def _flat(identity: dict[str, Any]) -> dict[str, Any]:
    return {"job": identity.get("name"), "kind": identity.get("kind"),
            **{f"config.{k}": v for k, v in identity.get("config", {}).items()},
            **{"--" + k.replace("_", "-"): v for k, v in identity.get("args", {}).items()}}


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``"--seed 0 there, 1 here"`` for every setting in which two job identities differ."""
    a, b = _flat(saved), _flat(now)
    return [f"{k} {a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _saved_info(path: Path) -> dict[str, Any]:
    """The ``info`` of a training state, read before any tensor so a foreign state is refused untouched."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {}).get("info", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable training state ({exc}); move it away or drop --resume") from None


def _start(job: Job, args: Args, state_path: Path, device: torch.device) -> dict[str, Any]:
    """A fresh ``info``, or with ``--resume`` the saved one (weights, Adam moments and random state loaded)."""
    identity = job_identity(job, args)
    fresh = {"epoch": 0, "batch": 0, "step": 0, "wall_s": 0.0, "sums": {}, "job": identity}
    if not args.resume:
        return fresh
    if not state_path.exists():
        _say(f"--resume: no training state at {state_path}; starting fresh")
        return fresh
    saved = _saved_info(state_path)
    if "job" in saved:
        diffs = _differences(saved["job"], identity)
        if diffs:
            raise ResumeMismatch(f"--resume: {state_path} was written by a different run ({'; '.join(diffs)}). "
                                 "Resume with the arguments it was started with, or pick another --out, or drop "
                                 "--resume to start over (which overwrites it).")
    else:
        _say(f"--resume: {state_path} predates job records and random states; it cannot be checked against this "
             "run, and the resumed run will not match an uninterrupted one bit for bit")
    info = {**fresh, **load_train_state(state_path, job.model, job.optimizer), "job": identity}
    w = distributed.world()
    if info.get("world_size", 1) != w.size:
        _say(f"--resume: {state_path} was written by {info.get('world_size', 1)} process(es), this run has {w.size}: "
             "it continues, but not bit for bit as the original would have")
    if w.size > 1 and len(info.get("rng_ranks", [])) == w.size:
        _set_rng_state(info["rng_ranks"][w.rank], device)
    elif "rng" in info and w.size == 1:
        _set_rng_state(info["rng"], device)
    _say(f"resumed {state_path} at {_position(info)}")
    return info


def _say(message: str) -> None:
    """A message on stderr from rank 0 (every rank knows the same)."""
    if distributed.world().main:
        print(message, file=sys.stderr)


def _position(info: dict[str, Any]) -> str:
    where = f"epoch {info['epoch'] + 1}, batch {info['batch']}"
    return where + (f" of {info['batches']} (its evaluation and checkpoint not done yet)"
                    if info.get("batches") == info["batch"] else "")


def run(job: Job, args: Args, train: tuple[torch.Tensor, torch.Tensor], device: torch.device,
        command: str = "python -m lqvae.train") -> dict:
    """Train ``job`` for ``args.epochs``, resumable at any point.

    The state file records exactly where the run is: ``epoch`` (epochs finished, checkpoint written),
    ``batch`` (batches done in the current one; equal to ``batches`` when only its evaluation and
    checkpoint are left), the running metric sums and the random state. A signal stops the run at the
    next safe point with that state saved, and raises ``Interrupted``.
    """
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w = distributed.world()
    if w.main:
        remove_stale_temporaries(out)  # left by a run killed (SIGKILL, power loss) in the middle of a save
    distributed.barrier()  # no rank looks at the folder before it is clean
    ckpt, state_path, log_path = (out / f"{job.name}.safetensors", out / f"{job.name}.train-state.safetensors",
                                  out / f"{job.name}.log.jsonl")
    job.model.to(device)  # before loading a state: the optimizer puts its moments beside the parameters
    stop = StopRequest()
    with stop.installed():
        info = _start(job, args, state_path, device)
        if w.size > 1:  # after the state is loaded; DDP broadcasts rank 0's weights to the others
            from torch.nn.parallel import DistributedDataParallel

            assert job.objective is not None, f"job {job.name} has no objective to distribute"
            job.train_loss = DistributedDataParallel(job.objective, device_ids=[device] if device.type == "cuda" else None,
                                                     find_unused_parameters=job.unused_parameters)
        try:
            return _epochs(job, args, train, device, info, stop, ckpt, state_path, log_path, command)
        except KeyboardInterrupt:  # a second signal (see StopRequest): the last saved state stands
            _say(f"\nstopped at once; the last saved state is in {state_path}; resume with --resume: "
                 f"{_resume_command(command)}")
            raise Interrupted(stop.signum or signal.SIGINT) from None
        except Interrupted as exc:
            _say(f"\n{exc} at {_position(info)}; the training state is in {state_path}\n"
                 f"resume with --resume: {_resume_command(command)}")
            raise


def _resume_command(command: str) -> str:
    return command if " --resume" in f"{command} " else f"{command} --resume"


def _epochs(job: Job, args: Args, train: tuple[torch.Tensor, torch.Tensor], device: torch.device,
            info: dict[str, Any], stop: StopRequest, ckpt: Path, state_path: Path, log_path: Path,
            command: str) -> dict:
    x_all, y_all = train
    metrics: dict[str, Any] = {}
    w = distributed.world()

    def save_state() -> None:  # a collective under torchrun: every rank's random state goes into rank 0's file
        rng = _rng_state(device)
        if w.size > 1:
            info.update(world_size=w.size, rng_ranks=distributed.gather(rng))
        info["rng"] = rng if w.main else info.get("rng")
        if w.main:
            save_train_state(state_path, job.model, job.optimizer, info)

    last_state = time.monotonic()
    while info["epoch"] < args.epochs:
        epoch = info["epoch"]
        batches = _batches(len(x_all), args.batch_size, args.seed, epoch)
        info["batches"] = len(batches)
        sums: dict[str, float] = info["sums"]
        clock = time.monotonic()
        job.model.train()
        with tqdm(range(info["batch"], len(batches)), desc=f"{job.name} epoch {epoch + 1}/{args.epochs}",
                  leave=False, disable=args.quiet or not w.main) as bar:
            for b in bar:
                idx = batches[b].tensor_split(w.size)[w.rank]  # this rank's part of the global batch
                if len(batches[b]) < w.size:  # not an image for every rank: skipped by all, the same way
                    continue
                if args.cosine:  # cosine decay of every group's lr to 0 over the whole run
                    frac = info["step"] / max(1, args.epochs * len(batches))
                    for group in job.optimizer.param_groups:
                        group["lr"] = job.base_lr * 0.5 * (1.0 + math.cos(math.pi * frac))
                logs = job.step(x_all[idx].to(device), y_all[idx].to(device), info["step"])
                stopping, due = stop.signum is not None, time.monotonic() - last_state > STATE_EVERY_S
                if w.size > 1:  # the ranks' mean metrics, and whether any rank must stop or save: one all-reduce
                    *means, stopping, due = distributed.reduce_values([*logs.values(), stopping, due], device=device)
                    logs = dict(zip(logs, means))
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                info["step"] += 1
                info["batch"] = b + 1
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(logs.items())[:3]})
                if stopping or due:
                    info["wall_s"] += time.monotonic() - clock
                    clock = time.monotonic()
                    save_state()
                    last_state = time.monotonic()
                    if stopping:  # the step finished and its state is saved: stop here, every rank alike
                        raise Interrupted(stop.signum or signal.SIGTERM)
        info["wall_s"] += time.monotonic() - clock
        evaluated: dict[str, Any] = {}
        try:  # rank 0 evaluates; under torchrun not abortable, so the ranks meet again at the state save
            with _fork_rng(device), (stop.abortable() if w.size == 1 else contextlib.nullcontext()):
                job.model.eval()
                evaluated = job.evaluate() if w.main else {}
        except Interrupted:
            save_state()  # the epoch's training is done: a resumed run starts with its evaluation
            raise
        # from here to the state save a signal waits: the checkpoint, the log line and the state agree
        used = sum(len(idx) >= w.size for idx in batches)  # all of them for one process
        metrics = {"epoch": epoch + 1, **{k: v / max(1, used) for k, v in sums.items()}, **evaluated,
                   "wall_s": round(info["wall_s"], 1)}
        if w.main:
            save_checkpoint(ckpt, job.model, kind=job.kind, dataset=args.dataset, command=command,
                            args=vars(args), epochs=epoch + 1, metrics=metrics,
                            extra={"seed": str(args.seed), "wall_s": f"{info['wall_s']:.1f}",
                                   "world_size": str(w.size)})
            line = json.dumps(metrics)
            print(line, flush=True)
            with open(log_path, "a") as fh:
                fh.write(line + "\n")
        info.update(epoch=epoch + 1, batch=0, sums={})
        save_state()
        last_state = time.monotonic()
        # a stop asked for during the last save finds the run complete; under torchrun the ranks decide together
        if info["epoch"] < args.epochs and distributed.any_rank(stop.signum is not None, device):
            raise Interrupted(stop.signum or signal.SIGTERM)
    return metrics


def train(args: Args, command: str = "python -m lqvae.train") -> dict:
    """Load the data, build the job ``args.what`` names and run it (:func:`run`); the last epoch's metrics.

    Raises:
        ValueError: an argument is out of range (``ResumeMismatch`` for a state of another run).
        lqvae.io.checkpoint.CheckpointError: an ``--init``/``--eval-classifier`` checkpoint is refused.
        lqvae.io.data.DataNotFoundError: the dataset is not on disk.
        Interrupted: SIGINT/SIGTERM stopped the run after saving its state.
    """
    if args.epochs < 1:
        raise ValueError(f"expected --epochs >= 1, got {args.epochs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    w = distributed.world()
    device = distributed.device_for(args.device, w)
    train_set = load_split(args.dataset, "train", args.data_dir).tensors(args.limit)
    test_limit = args.test_limit or (min(args.limit, 10_000) if args.limit else None)
    test = load_split(args.dataset, "test", args.data_dir).tensors(test_limit)
    make = {"lqvae": lqvae_job, "classifier": classifier_job, "defensegan": defensegan_job}[args.what]
    job = make(args, test, device)
    if w.size > 1:  # the same initial weights everywhere, then each rank its own stream of random draws
        torch.manual_seed(args.seed * 1_000_003 + w.rank)
    return run(job, args, train_set, device, command)


__all__ = ["ADV_MODES", "Interrupted", "Job", "ResumeMismatch", "StopRequest", "classifier_job", "defensegan_job",
           "job_identity", "lqvae_job", "run", "train"]
