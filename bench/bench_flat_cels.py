"""How exactly the `color` stage colours flat cels (issue 22): a flat reference, a flat drawing.

    nice .venv/bin/python bench/bench_flat_cels.py [--seeds 1-12] [--json FILE]
    nice .venv/bin/python bench/bench_flat_cels.py --old ../wt-fb2d808   # this checkout against another

Cases (quickart_daemon/tools/flat_cels.py, generators unlike `synth`): the puppet at 320x240 and
480x360, on paper and on transparency, t = 0 / 3 / 6 / 9, its reference 4 and 8 frames before and
after (64 cases); the creature of each seed (random parts, limbs turning at their joints, in front
of the body and behind it) at 320x240 and 400x300, on paper for even seeds, t = 0 / 5, the same
references (16 cases a seed). Per generator and distance: cases, how many come out exact, mean
and worst share of painted pixels (off the lines) in their flat colour, and the pixels off the flat
colour in regions whose colour is right (copied in, not matched: 0 when no shading is carried
where the reference is flat). Last, how many cases are exact but for parts the reference hides
(`flat_cels.unseen_parts`: a forearm hidden whole behind the body in the reference and swung out
in the drawing; no reference says its colour), and the pixels off their flat colour, of them those
in such parts, and how the confidence map marks the wrong pixels: the share of them below the stage's
default --low-confidence (0.5), and the share of all painted pixels below it (a map that marks 10 %
and catches 50 % of the wrong pixels marks them five times better than chance). One thread is
enough: about a minute.

`--old CHECKOUT` (e.g. `git worktree add --detach ../wt-fb2d808 fb2d808`) compares this checkout
with another commit's through the command every version has, `quickart stage color --in LINES --out
OUT --ref REFS`: every case is written once as a layer of its own (LINES: the reference's line art
and the drawing's, REFS: the reference's cel; frame = t + 8), each checkout colours all of them in
one process (`PYTHONPATH=<checkout>`, this interpreter), both outputs are scored the same way, and
the table gives both sides, the ratio of the two processes' times and every case where they differ.
This checkout's scores through the command are checked against its in-process ones.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quickart_daemon.images import read_png, write_png
from quickart_daemon.tools.flat_cels import FlatFrame, creature, flat_errors, off_flat, puppet, unseen_parts

HERE = Path(__file__).resolve().parents[1]
#: frame numbers are t + FRAME_OFFSET, so a reference 8 frames before t = 0 is frame 0
FRAME_OFFSET = 8


def cases(seeds):
    for size in ((320, 240), (480, 360)):
        for paper in (True, False):
            for t in (0, 3, 6, 9):
                for d in (-8, -4, 4, 8):
                    yield "puppet", None, size, paper, t, d
    for seed in seeds:
        for size in ((320, 240), (400, 300)):
            for t in (0, 5):
                for d in (-8, -4, 4, 8):
                    yield "creature", seed, size, seed % 2 == 0, t, d


def generator(kind, seed, size, paper):
    """The case's generator: t -> (line art, cel, flat truth, ink and trace coverage)."""
    if kind == "puppet":
        return lambda t: puppet(t, size=size, paper=paper)
    return lambda t: creature(seed, t, size=size, paper=paper)


def describe(case) -> str:
    kind, seed, (w, h), paper, t, d = case
    return f"{kind}{'' if seed is None else ' ' + str(seed)} {w}x{h} {'paper' if paper else 'clear'} t={t} ref {d:+d}"


def row(case, painted: int, wrong: int, copied: int | None = None, unseen: int = 0, wrong_low: int | None = None,
        flagged: int | None = None) -> dict:
    kind, seed, size, paper, t, d = case
    return dict(kind=kind, seed=seed, size=list(size), paper=paper, t=t, d=d, painted=painted, wrong=wrong,
                copied=copied, unseen=unseen, wrong_low=wrong_low, flagged=flagged, accuracy=1 - wrong / max(painted, 1))


def score_in_process(all_cases) -> list[dict]:
    """This checkout's colour stage called directly (`flat_errors`), one row per case."""
    return [row(c, *flat_errors(generator(*c[:4]), c[4] + c[5], c[4], c[3])) for c in all_cases]


def layer_name(i: int) -> str:
    return f"case{i:03d}"


def write_case_folders(all_cases, root: Path) -> tuple[Path, Path]:
    """Every case as its own layer: LINES holds the reference's line art and the drawing's, REFS the
    reference's cel. Written once, read by both checkouts."""
    lines_dir, refs_dir = root / "lines", root / "refs"
    lines_dir.mkdir()
    refs_dir.mkdir()
    for i, (kind, seed, size, paper, t, d) in enumerate(all_cases):
        gen = generator(kind, seed, size, paper)
        ref = gen(t + d)
        write_png(lines_dir / f"{layer_name(i)}.{t + d + FRAME_OFFSET:04d}.png", ref.lines)
        write_png(lines_dir / f"{layer_name(i)}.{t + FRAME_OFFSET:04d}.png", gen(t).lines)
        write_png(refs_dir / f"{layer_name(i)}.{t + d + FRAME_OFFSET:04d}.png", ref.cel)
    return lines_dir, refs_dir


def command_env(checkout: Path) -> dict:
    """The environment a checkout's command runs in: its own package first, no QUICKART_CONFIG (and an
    empty working folder, see `run_command`), so neither side picks up a config.yaml."""
    env = {k: v for k, v in os.environ.items() if k != "QUICKART_CONFIG"}
    env["PYTHONPATH"] = str(checkout)
    return env


def run_command(checkout: Path, lines_dir: Path, refs_dir: Path, out_dir: Path) -> tuple[float, float]:
    """`quickart stage color` of `checkout` over every case in one process: its wall and CPU seconds
    (Python's start-up and imports included, the same for both sides). CPU seconds (user + system,
    all threads) are the steadier of the two on a machine other work shares."""
    env = command_env(checkout)
    cwd = out_dir.parent / f"cwd-{out_dir.name}"
    cwd.mkdir()
    # import the stage once first, so neither timing pays for compiling the checkout's bytecode; and
    # see that the checkout's package is the one imported (the venv's editable install is the fallback)
    imported = subprocess.run([sys.executable, "-c", "import quickart_daemon.cli, quickart_daemon.stages.color; "
                               "print(quickart_daemon.__file__)"], env=env, cwd=cwd, capture_output=True, text=True)
    if not imported.stdout.strip().startswith(str(checkout) + os.sep):
        sys.exit(f"{checkout}: its quickart_daemon is not the one imported ({imported.stdout.strip() or imported.stderr[-500:]})")
    cmd = [sys.executable, "-m", "quickart_daemon.cli", "stage", "color",
           "--in", str(lines_dir), "--out", str(out_dir), "--ref", str(refs_dir)]
    cpu0, start = children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu0
    if done.returncode != 0:
        sys.exit(f"{checkout}: quickart stage color failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, cpu


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def flat_score(out: np.ndarray, frame: FlatFrame, ref: FlatFrame, paper: bool) -> tuple[int, int, None, int]:
    """(painted pixels off the lines, those off their flat colour, -, those of them in parts the
    reference does not show) of a frame that a command wrote: the measure of `flat_cels.flat_errors`
    (`off_flat`, `unseen_parts`)."""
    paint, wrong = off_flat(out, frame.flat, frame.drawn, paper)
    return int(paint.sum()), int(wrong.sum()), None, int((wrong & unseen_parts(frame, ref)).sum())


def score_outputs(all_cases, out_dir: Path) -> list[dict]:
    """One row per case from the drawing's frame in `out_dir` against the generator's flat truth."""
    rows = []
    for i, (kind, seed, size, paper, t, d) in enumerate(all_cases):
        gen = generator(kind, seed, size, paper)
        out = read_png(out_dir / f"{layer_name(i)}.{t + FRAME_OFFSET:04d}.png")
        rows.append(row((kind, seed, size, paper, t, d), *flat_score(out, gen(t), gen(t + d), paper)))
    return rows


def groups(rows):
    """(generator, distance, that group's rows) in the table's order."""
    for kind in ("puppet", "creature"):
        for d in (4, 8):
            yield kind, d, [r for r in rows if r["kind"] == kind and abs(r["d"]) == d]


def summary(rows) -> str:
    acc = np.array([r["accuracy"] for r in rows])
    return f"{int((acc == 1).sum())} / {acc.mean():.4f} / {acc.min():.4f}"


def print_table(rows) -> None:
    print("| generator | distance | cases | exact | mean | worst | px copied off a right colour | "
          "exact but for parts the reference hides | px off / in parts it hides | wrong@low / flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, d, rr in groups(rows):
        acc = np.array([r["accuracy"] for r in rr])
        shown_exact = sum(r["wrong"] == r["unseen"] for r in rr)
        print(f"| {kind} | {d} | {len(rr)} | {int((acc == 1).sum())} | {acc.mean():.4f} | {acc.min():.4f} | "
              f"{sum(r['copied'] for r in rr)} | {shown_exact} | {sum(r['wrong'] for r in rr)} / "
              f"{sum(r['unseen'] for r in rr)} | {sum(r['wrong_low'] for r in rr) / max(sum(r['wrong'] for r in rr), 1):.2f} / "
              f"{sum(r['flagged'] for r in rr) / max(sum(r['painted'] for r in rr), 1):.3f} |")


def print_comparison(old_name: str, old_rows, new_rows, old_s: tuple[float, float], new_s: tuple[float, float]) -> None:
    print(f"| generator, distance (cases) | {old_name}: exact / mean / worst | this checkout |")
    print("|---|---|---|")
    for (kind, d, old), (_, _, new) in zip(groups(old_rows), groups(new_rows)):
        print(f"| {kind}, {d} ({len(new)}) | {summary(old)} | {summary(new)} |")
    print(f"\ntime, one process over all {len(new_rows)} cases (wall / CPU): {old_name} {old_s[0]:.1f} / {old_s[1]:.1f} s, "
          f"this checkout {new_s[0]:.1f} / {new_s[1]:.1f} s; this / {old_name} = {new_s[0] / old_s[0]:.2f} wall, "
          f"{new_s[1] / old_s[1]:.2f} CPU")


def print_differences(old_name: str, all_cases, old_rows, new_rows) -> None:
    diff = [(c, o["accuracy"], n["accuracy"]) for c, o, n in zip(all_cases, old_rows, new_rows)
            if o["wrong"] != n["wrong"]]
    better_new = sum(n > o for _, o, n in diff)
    print(f"\n{len(diff)} cases differ: this checkout better on {better_new}, {old_name} on {len(diff) - better_new}")
    for c, o, n in sorted(diff, key=lambda x: (x[2] > x[1], -abs(x[2] - x[1]))):
        side = "this checkout" if n > o else old_name
        print(f"  {describe(c):42s} {old_name} {o:.4f}  this {n:.4f}  {side} better by {abs(n - o):.4f}")


def check_command_matches(cli_rows, in_process_rows) -> None:
    """This checkout through the command must score what it scores in-process (same painted and
    wrong pixels per case): else the comparison measures the command's plumbing, not the method."""
    off = [i for i, (a, b) in enumerate(zip(cli_rows, in_process_rows))
           if (a["painted"], a["wrong"]) != (b["painted"], b["wrong"])]
    if off:
        print(f"\nCHECK FAILED: this checkout's scores through the command differ from in-process on {len(off)} "
              f"cases (first: {layer_name(off[0])})")
    else:
        print(f"\ncheck: this checkout's scores through the command equal its in-process scores "
              f"(painted and wrong pixels, all {len(cli_rows)} cases)")


def checkout_label(checkout: Path) -> str:
    """A checkout's commit (short), or its folder's name where git cannot tell."""
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else checkout.name


def compare_with(old: Path, all_cases, in_process_rows) -> list[dict]:
    """The `--old` run: write the cases, colour them with both checkouts' command, score and print."""
    old_name = checkout_label(old.resolve())
    print(f"through `quickart stage color`: this checkout ({HERE}, {checkout_label(HERE)}) against {old_name} "
          f"({old.resolve()})\n")
    with tempfile.TemporaryDirectory(prefix="bench-flat-old-") as tmp:
        root = Path(tmp)
        lines_dir, refs_dir = write_case_folders(all_cases, root)
        old_s = run_command(old.resolve(), lines_dir, refs_dir, root / "out-old")
        new_s = run_command(HERE, lines_dir, refs_dir, root / "out-new")
        old_rows = score_outputs(all_cases, root / "out-old")
        new_rows = score_outputs(all_cases, root / "out-new")
    print_comparison(old_name, old_rows, new_rows, old_s, new_s)
    print_differences(old_name, all_cases, old_rows, new_rows)
    check_command_matches(new_rows, in_process_rows)
    for r, n, o in zip(in_process_rows, new_rows, old_rows):
        r.update(command_accuracy=n["accuracy"], old_accuracy=o["accuracy"])
    return in_process_rows


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1-12", help="creature seeds: a range a-b or a list")
    ap.add_argument("--json", default=None, help="also write the per-case rows here")
    ap.add_argument("--old", type=Path, default=None,
                    help="another commit's checkout: compare both through `quickart stage color`")
    a = ap.parse_args()
    all_cases = list(cases(parse_seeds(a.seeds)))
    rows = score_in_process(all_cases)
    print_table(rows)
    if a.old:
        print()
        rows = compare_with(a.old, all_cases, rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f)


if __name__ == "__main__":
    main()
