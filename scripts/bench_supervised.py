"""Supervised iteration time on MTAN SegNet (NYUv2): per-task gradients by K backward passes vs one batched pass.

    python scripts/bench_supervised.py --quick                   # CPU-feasible: 1/8-width model, few iterations
    python scripts/bench_supervised.py --device cuda             # the papers' model (width 1.0) on a GPU

One training iteration as ``mtrl.supervised.trainer`` runs it (forward, the three NYUv2 losses, per-task gradients
of the shared parameters, the aggregator, the heads' gradients, Adam step) on synthetic NYUv2 batches
(``mtrl.supervised.synthetic``, batch 2) at the real resolution 288x384 and at a reduced one, for each method with
``train.per_task_grads=loop`` (K = 3 backward passes) and ``batched`` (one batched vector-Jacobian pass). Rounds
are interleaved (every round runs every method and both ways, alternating which goes first); the table gives the
median iteration time over rounds and the median of the per-round ratios batched / loop. Results are appended to
``benchmarks/results/bench_supervised.txt`` with the command line.

    python scripts/bench_supervised.py --quick --rep             # the rep_grad approximation vs parameters

``--rep`` instead times the plain SegNet (``model.attention=false``: the one with a single shared representation)
with ``G`` w.r.t. the shared parameters (K passes) vs w.r.t. the shared representation (``train.grad_wrt=rep``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mtrl.aggregators import make_aggregator
from mtrl.aggregators._autograd import PerTaskGradients, aggregate_backward, aggregate_backward_rep
from mtrl.supervised.data import NpyMultiTaskDataset
from mtrl.supervised.models import MTANSegNet
from mtrl.supervised.synthetic import write_nyuv2
from mtrl.supervised.trainer import task_losses

TASKS = {"segmentation": "segmentation", "depth": "depth", "normal": "normal"}
OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bench_supervised.txt"


def _batch(root: Path, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    ds = NpyMultiTaskDataset(root, "nyuv2", "train", augment=False)
    items = [ds[i] for i in range(size)]
    return {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _interleaved(iteration, methods: list[str], ways: tuple[str, ...], rounds: int, iters: int,
                 device: torch.device) -> dict[tuple[str, str], list[float]]:  # fmt: skip
    """ms per ``iteration(method, way)`` for every (method, way), one list entry per round: every round runs every
    method both ways, alternating which way goes first (after one warm-up call per way: allocator, first calls)."""
    for way in ways:
        iteration(methods[0], way)
    times: dict[tuple[str, str], list[float]] = {(m, w_): [] for m in methods for w_ in ways}
    for r in range(rounds):
        for m in methods:
            for way in ways if r % 2 == 0 else ways[::-1]:
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(iters):
                    iteration(m, way)
                _sync(device)
                times[(m, way)].append((time.perf_counter() - t0) / iters * 1e3)
    return times


def _bench(batch: dict[str, torch.Tensor], res: str, width: float, methods: list[str], rounds: int, iters: int,
           device: torch.device) -> list[str]:  # fmt: skip
    """The rows of one resolution: median ms per iteration for each method, loop vs batched, interleaved."""
    torch.manual_seed(0)
    model = MTANSegNet(TASKS, 13, width, attention=True).to(device)
    shared, task_specific = model.split_parameters("backbone")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    aggs = {m: make_aggregator(m) for m in methods}
    ways = ("loop", "batched")
    engines = {way: PerTaskGradients(way) for way in ways}

    def iteration(method: str, way: str) -> None:
        losses = task_losses("nyuv2", TASKS, model(batch["image"]), batch)
        opt.zero_grad(set_to_none=True)
        out = aggregate_backward(aggs[method], losses, shared, task_specific, 3.0, engines[way])
        if not out.skipped:
            opt.step()

    times = _interleaved(iteration, methods, ways, rounds, iters, device)
    auto = PerTaskGradients("auto", measure_on_cpu=True)  # what auto's measurement picks (the CPU rule aside)
    while auto.chosen is None:
        auto(task_losses("nyuv2", TASKS, model(batch["image"]), batch), shared)
    rows = []
    for m in methods:
        lo, ba = times[(m, "loop")], times[(m, "batched")]
        ratio = statistics.median(b / a for a, b in zip(lo, ba))
        rows.append(f"{res:>10} {m:>8} {statistics.median(lo):>10.1f} {statistics.median(ba):>11.1f} "
                    f"{ratio:>12.2f}x  {auto.chosen}")  # fmt: skip
    if engines["batched"].fallback_reason:
        rows.append(f"# batched fell back to loop: {engines['batched'].fallback_reason}")
    return rows


def _bench_rep(batch: dict[str, torch.Tensor], res: str, width: float, methods: list[str], rounds: int, iters: int,
               device: torch.device) -> list[str]:  # fmt: skip
    """``--rep``: the plain SegNet (no attention), G w.r.t. the shared parameters (K passes) vs w.r.t. the shared
    representation (``train.grad_wrt=rep``, the rep_grad approximation)."""
    torch.manual_seed(0)
    model = MTANSegNet(TASKS, 13, width, attention=False).to(device)
    shared, task_specific = model.split_parameters("backbone")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    aggs = {m: make_aggregator(m) for m in methods}
    ways = ("params", "rep")

    def iteration(method: str, way: str) -> None:
        opt.zero_grad(set_to_none=True)
        if way == "rep":
            rep = model.encode(batch["image"])
            rep_in = rep.detach().requires_grad_()
            losses = task_losses("nyuv2", TASKS, model.decode(rep_in), batch)
            out = aggregate_backward_rep(aggs[method], losses, rep, rep_in, task_specific, 3.0)
        else:
            losses = task_losses("nyuv2", TASKS, model(batch["image"]), batch)
            out = aggregate_backward(aggs[method], losses, shared, task_specific, 3.0)
        if not out.skipped:
            opt.step()

    times = _interleaved(iteration, methods, ways, rounds, iters, device)
    rows = []
    for m in methods:
        pa, re = times[(m, "params")], times[(m, "rep")]
        ratio = statistics.median(b / a for a, b in zip(pa, re))
        rows.append(f"{res:>10} {m:>8} {statistics.median(pa):>10.1f} {statistics.median(re):>11.1f} "
                    f"{ratio:>12.2f}x  (plain SegNet: params vs rep)")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="width 0.125, 2 rounds of 1 iteration (CPU-feasible)")
    ap.add_argument("--width", type=float, default=None, help="model width (default 1.0; --quick: 0.125)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick: 3)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per round and way (default 3; --quick 1)")
    ap.add_argument("--methods", default="ls,imgrad,cagrad,nashmtl")
    ap.add_argument("--resolutions", default="288x384,96x128", help="HxW list; 288x384 is NYUv2's")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rep", action="store_true", help="instead: plain SegNet, G w.r.t. parameters vs representation")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    width = args.width if args.width is not None else (0.125 if args.quick else 1.0)
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 5)
    iters = args.iters if args.iters is not None else (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    methods = args.methods.split(",")
    lines = [
        f"$ python {' '.join(sys.argv)}",
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()})"  # noqa: E501
        f"  torch {torch.__version__}  threads={args.threads}  MTAN SegNet width={width}  batch={args.batch}  "
        f"rounds={rounds} x {iters} iteration(s), interleaved; medians",
        f"{'resolution':>10} {'method':>8} "
        + (
            f"{'params ms':>10} {'rep ms':>11} {'rep/params':>13}"
            if args.rep
            else f"{'loop ms':>10} {'batched ms':>11} {'batched/loop':>13}  auto's measurement"
        ),  # fmt: skip
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.resolutions.split(","):
            h, w = (int(v) for v in res.split("x"))
            root = write_nyuv2(Path(tmp) / res, n_train=args.batch, n_val=1, height=h, width=w, seed=0)
            batch = _batch(root, args.batch, device)
            bench = _bench_rep if args.rep else _bench
            for row in bench(batch, res, width, methods, rounds, iters, device):
                lines.append(row)
                print(row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write("\n".join(lines) + "\n\n")
    print(f"appended to {out}")


if __name__ == "__main__":
    main()
