"""Train the line refiner: ``python -m quickart_daemon.tools.refine.train``.

Resumable: a checkpoint (model, EMA, optimiser, step, seconds trained, data RNG state) is
written to ``--work`` every ``--checkpoint-minutes``; running the same command again
continues from it. The learning rate follows a cosine over the *training seconds* budget
(``--minutes``), so an interrupted and resumed run follows the same schedule. At the end
(or with ``--export-only``) the EMA weights are written as a plain state dict to ``--out``.
``--init`` starts a new run from existing weights (fine-tuning).

Data: a pool of paper-flattened frames, a few replaced by fresh renders every step: 30 %
the generator's roughs (`data.render_pair`, training seeds), the rest procedural drawings
(`drawings.py`) made rough by one of `rough_families.TRAIN_FAMILIES` (never the held-out
family); most get scanner and desk degradations (`data.degrade`), 6 % are clean drawings as
input; random crops with flips, quarter turns and channel permutations. Validation (printed
at each checkpoint) uses generator seed 500 and drawing seed 50 of the training families,
neither a training seed nor a seed of any reported figure.

Example, fine-tuning the previous model (the exact commands behind models/refine-v2.pt are in
models/refine-v2.md)::

    nohup nice -n 10 .venv/bin/python -m quickart_daemon.tools.refine.train --minutes 60 \
        --init models/refine-v1.pt --lr 1e-3 --work bench/out/refine-train-v2 \
        --out bench/out/refine-train-v2/refine-v2.pt > bench/out/refine-train-v2.log 2>&1 &
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import data, rough_families
from ...stages.refine.colours import flatten_paper
from .metrics import line_f1
from ...stages.refine.net import LineRefiner, parameter_count

VAL_SEED = 500
#: drawing seed of the rough-family validation frames (neither training nor evaluation seeds)
VAL_FAMILY_SEED = 50
#: share of training frames from the project's own generator; the rest come from the rough families
SYNTH_SHARE = 0.3


def _default_work() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "quickart" / "refine-train"


class Pool:
    """Rendered frames (flattened RGB float32, ink, trace) that training crops from."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.rng = rng
        self.items: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for _ in range(size):
            self.items.append(self.render())

    def render(self):
        """One training frame: the generator's rough (SYNTH_SHARE) or a procedural drawing made
        rough by one of the training families; a few clean drawings as input; scanner and desk
        degradations on top of most."""
        rng = self.rng
        size = data.TRAIN_SIZES[int(rng.integers(len(data.TRAIN_SIZES)))]
        if rng.random() < SYNTH_SHARE:
            pair = data.render_pair(int(rng.choice(data.TRAIN_SEEDS)), float(rng.uniform(0, 2000)), size)
        else:
            family = rough_families.TRAIN_FAMILIES[int(rng.integers(len(rough_families.TRAIN_FAMILIES)))]
            pair = data.family_pair(family, int(rng.choice(data.FAMILY_TRAIN_SEEDS)), size)
        if rng.random() < 0.06:
            rough = data.clean_as_input(pair.ink, pair.trace, rng)
        elif rng.random() < 0.7:
            rough = data.degrade(rng, pair.rough)
        else:
            rough = pair.rough
        return flatten_paper(rough), pair.ink, pair.trace

    def refresh(self, n: int = 1) -> None:
        for _ in range(n):
            self.items[int(self.rng.integers(len(self.items)))] = self.render()

    def batch(self, n: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        rng = self.rng
        while len(xs) < n:
            flat, ink, tr = self.items[int(rng.integers(len(self.items)))]
            h, w = ink.shape
            y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            ti, tt = ink[y0:y0 + crop, x0:x0 + crop], tr[y0:y0 + crop, x0:x0 + crop]
            if (ti.mean() + tt.mean()) < 0.01 and rng.random() < 0.85:
                continue  # mostly crops with lines in them
            fx, ti, tt = data.augment(rng, flat[y0:y0 + crop, x0:x0 + crop], ti, tt)
            xs.append(fx.transpose(2, 0, 1))
            ys.append(np.stack([ti, tt]))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(2.0))
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1)
    return bce + 0.5 * dice.mean()


def validate(model: LineRefiner, pairs) -> float:
    from ...stages.refine.net import refine
    f1s = []
    model.eval()
    for p in pairs:
        cov = refine(model, flatten_paper(p.rough))
        f1s.append(line_f1(cov[..., 0] >= 0.5, p.ink >= 0.5)["f1"])
    model.train()
    return float(np.mean(f1s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=35.0, help="training time budget (seconds trained, summed over resumes)")
    ap.add_argument("--work", type=Path, default=_default_work(), help="checkpoint folder")
    ap.add_argument("--out", type=Path, default=Path("models/refine-v2.pt"))
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--pool", type=int, default=96, help="frames kept in memory")
    ap.add_argument("--data-seed", type=int, default=20240401)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--export-only", action="store_true", help="write --out from the last checkpoint and stop")
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a state dict), e.g. the previous model")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.data_seed)
    a.work.mkdir(parents=True, exist_ok=True)
    ckpt_path = a.work / "checkpoint.pt"

    model = LineRefiner()
    ema = LineRefiner()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    step, trained, history = 0, 0.0, []
    rng = np.random.default_rng(a.data_seed)
    if a.init is not None and not ckpt_path.is_file():
        model.load_state_dict(torch.load(a.init, map_location="cpu", weights_only=True))
        ema.load_state_dict(model.state_dict())
        print(f"initialised from {a.init}", flush=True)
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)  # tensors, numbers, strings only
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        step, trained, history = ck["step"], ck["seconds"], ck.get("history", [])
        rng.bit_generator.state = ck["rng"]
        print(f"resumed at step {step}, {trained / 60:.1f} min trained", flush=True)
    if a.export_only:
        _export(ema, a.out)
        return 0

    print(f"LineRefiner {parameter_count(model)} parameters; building a pool of {a.pool} frames", flush=True)
    t0 = time.monotonic()
    pool = Pool(rng, a.pool)
    val = data.held_out_pairs((640, 360), n=3, seed=VAL_SEED)
    val_families = [p for f in rough_families.TRAIN_FAMILIES
                    for p in data.family_held_out_pairs(f, (640, 360), n=2, seed=VAL_FAMILY_SEED)]
    print(f"pool ready in {time.monotonic() - t0:.0f} s", flush=True)
    budget = a.minutes * 60.0
    last_ck = time.monotonic()
    ema_decay = 0.998
    model.train()
    while trained < budget:
        ts = time.monotonic()
        lr = a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, trained / budget))))
        warm = min(1.0, (step + 1) / 200)
        for g in opt.param_groups:
            g["lr"] = lr * warm
        x, y = pool.batch(a.batch, a.crop)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        if step % 4 == 0:
            pool.refresh(1)
        step += 1
        trained += time.monotonic() - ts
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} trained {trained / 60:.1f} min", flush=True)
        if time.monotonic() - last_ck > a.checkpoint_minutes * 60 or trained >= budget:
            f1, f1_fam = validate(ema, val), validate(ema, val_families)
            history.append({"step": step, "minutes": round(trained / 60, 2), "val_f1": round(f1, 4),
                            "val_families_f1": round(f1_fam, 4)})
            print(f"checkpoint step {step}: validation F1 generator (seed {VAL_SEED}) {f1:.4f}, "
                  f"training families (drawing seed {VAL_FAMILY_SEED}) {f1_fam:.4f}", flush=True)
            tmp = ckpt_path.with_suffix(".tmp")
            args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}  # weights_only: no Paths
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "step": step, "seconds": trained, "rng": rng.bit_generator.state,
                        "history": history, "args": args}, tmp)
            os.replace(tmp, ckpt_path)
            _export(ema, a.out)
            last_ck = time.monotonic()
    print(f"done: {step} steps, {trained / 60:.1f} min trained", flush=True)
    return 0


def _export(model: LineRefiner, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
