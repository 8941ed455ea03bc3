"""Fixed cost per update: mtrl's multi-task SAC update against a lean plain-PyTorch SAC update, side by side.

    python scripts/bench_overhead.py                               # tiny and paper size, 1 thread
    python scripts/bench_overhead.py --sizes tiny --rounds 30      # the fixed-cost regime only, short
    python scripts/bench_overhead.py --device cuda                 # on a GPU (synchronised timing)

The **lean** update (``lean``) is written here, in plain PyTorch, the SB3/cleanrl way: one flat batch of
``K * B`` samples (the one-hot task id is part of the observation), ``nn.Sequential`` actor and twin critics, one
``backward()`` per loss, one temperature, Polyak averaging of the targets. It does the work of a SAC update
(target, critic, actor, α, targets) with the FLOPs of mtrl's ``agent.arch=multihead`` networks less the heads,
and none of the multi-task machinery: the floor of what one SAC update costs in PyTorch on this machine. Its
optimisers are torch's default Adam, as cleanrl and SB3 use it (a per-tensor loop); ``lean_fused`` is the same
update with ``Adam(fused=True)`` (what mtrl now uses), a second, stricter reference column.

**mtrl** is :meth:`mtrl.agents.MultiTaskSAC.update` on the ``[K, B, ...]`` batch with the method's per-task
gradients of the shared trunk going through the aggregator (critic and actor, ``agent.aggregate_on`` default), with
the agent's defaults (``agent.diagnostics_every``); ``--diagnostics-every`` overrides it, and a comma-separated list
(e.g. ``1,10,100``) times one agent per value and method (rows ``<method>/<n>``): how the default was chosen.
``--with-reference`` adds each method's update as it was before the fixed-cost work (the test oracle
``tests/_reference_update.py``, run from a checkout; rows ``<method>/ref``): before and after, measured in the same
run. ``--with-diagnostics-file`` adds, per method,
the update followed by what the training loop does with its result (``RunLogger.add_update`` on a diagnostic
update, a window write every 50 updates; rows ``<method>/log``: without the raw diagnostics file, as before issue
22) and the same with the raw file (``logger.diagnostics_file=true``, rows ``<method>/raw``, written to a temp dir):
the file's cost per update, before and after, in one run.

Sizes: ``tiny`` = K 10, hidden 16, 3 layers, 16 samples per task (FLOPs negligible: what is left is the fixed cost
per update, the regime of a GPU); ``paper`` = K 10, hidden 400, 3 layers, 128 per task (MT10 SAC). Every round
times one lean update then one update of each method, in the same process (interleaved, so machine load hits all
alike); the table gives medians and each method's ratio to the lean update, and the means (which include the
diagnostic updates, one in ``agent.diagnostics_every``, that a median mostly leaves out). ``--threads`` (default
1) sets torch's intra-op threads. Output: stdout, and ``--out`` (default ``benchmarks/results/bench_overhead.txt``;
``--out ''``: none).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from mtrl.agents import MultiTaskSAC, SACConfig
from mtrl.aggregators import AGGREGATORS, make_aggregator

SIZES = {"tiny": dict(tasks=10, hidden=16, layers=3, batch_per_task=16),
         "paper": dict(tasks=10, hidden=400, layers=3, batch_per_task=128)}  # fmt: skip
METHODS = ("ls", "imgrad", "cagrad", "pcgrad", "nashmtl", "famo")
OBS, ACT = 39, 4  # Meta-World observation (without the one-hot) and action sizes
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


# ====================================================================== the lean reference SAC (cleanrl-style)
def _mlp(d_in: int, d_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*mods, nn.Linear(d, d_out))


class LeanSAC:
    """Plain SAC on a flat batch (cleanrl ``sac_continuous_action.py``): nothing multi-task but the one-hot input."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, device: torch.device,
                 fused: bool = False) -> None:  # fmt: skip
        self.actor = _mlp(obs_dim, 2 * act_dim, hidden, layers).to(device)
        self.q1 = _mlp(obs_dim + act_dim, 1, hidden, layers).to(device)
        self.q2 = _mlp(obs_dim + act_dim, 1, hidden, layers).to(device)
        self.q1_t = _mlp(obs_dim + act_dim, 1, hidden, layers).to(device)
        self.q2_t = _mlp(obs_dim + act_dim, 1, hidden, layers).to(device)
        self.q1_t.load_state_dict(self.q1.state_dict())
        self.q2_t.load_state_dict(self.q2.state_dict())
        self.log_alpha = torch.zeros(1, device=device, requires_grad=True)
        kw = {"fused": True} if fused else {}  # default: torch's per-tensor Adam, as cleanrl and SB3 use it
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=3e-4, **kw)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=3e-4, **kw)
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=3e-4, **kw)
        self.act_dim, self.target_entropy, self.gamma, self.tau = act_dim, -float(act_dim), 0.99, 0.005
        self.targets = [(pt, p) for t, s in ((self.q1_t, self.q1), (self.q2_t, self.q2))
                        for pt, p in zip(t.parameters(), s.parameters())]  # fmt: skip

    def policy(self, obs: torch.Tensor, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        eps = torch.randn(mean.shape, generator=gen).to(obs.device)
        u = mean + log_std.exp() * eps
        a = torch.tanh(u)
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - torch.log(1.0 - a.pow(2) + 1e-6).sum(-1)
        return a, logp

    def update(self, b: dict[str, torch.Tensor], gen: torch.Generator | None = None) -> None:
        obs, act, rew, nxt, done = b["obs"], b["action"], b["reward"], b["next_obs"], b["terminated"]
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            na, nlogp = self.policy(nxt, gen)
            x = torch.cat([nxt, na], -1)
            q_next = torch.minimum(self.q1_t(x), self.q2_t(x)).squeeze(-1) - alpha * nlogp
            y = rew + self.gamma * (1.0 - done) * q_next
        x = torch.cat([obs, act], -1)
        q_loss = (self.q1(x).squeeze(-1) - y).pow(2).mean() + (self.q2(x).squeeze(-1) - y).pow(2).mean()
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        a, logp = self.policy(obs, gen)
        x = torch.cat([obs, a], -1)
        pi_loss = (alpha * logp - torch.minimum(self.q1(x), self.q2(x)).squeeze(-1)).mean()
        self.pi_opt.zero_grad()
        pi_loss.backward()
        self.pi_opt.step()
        a_loss = (-self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
        self.a_opt.zero_grad()
        a_loss.backward()
        self.a_opt.step()
        with torch.no_grad():
            for pt, p in self.targets:
                pt.lerp_(p, self.tau)


# ====================================================================== the comparison
def make_batch(K: int, B: int, device: torch.device, seed: int = 1) -> dict[str, torch.Tensor]:
    """A random ``[K, B, ...]`` batch (the last K observation entries: the real one-hot task id)."""
    g = torch.Generator().manual_seed(seed)
    obs_dim = OBS + K

    def obs() -> torch.Tensor:
        x = torch.randn(K, B, obs_dim, generator=g)
        x[..., OBS:] = torch.eye(K)[:, None, :]
        return x

    out = {"obs": obs(), "action": torch.rand(K, B, ACT, generator=g) * 1.98 - 0.99,
           "reward": torch.randn(K, B, generator=g), "next_obs": obs(), "terminated": torch.zeros(K, B)}  # fmt: skip
    return {k: v.to(device) for k, v in out.items()}


def make_mtrl(method: str, size: dict, device: torch.device, args: argparse.Namespace,
              every: int | None = None, reference: bool = False) -> MultiTaskSAC:  # fmt: skip
    torch.manual_seed(0)
    kw = {} if every is None else {"diagnostics_every": every}
    cls = MultiTaskSAC
    if reference:  # the test oracle lives in the tests (one update path in the product)
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests._reference_update import ReferenceSAC

        kw, cls = {}, ReferenceSAC
    cfg = SACConfig(hidden_dim=size["hidden"], num_layers=size["layers"], compile=args.compile, **kw)
    aggs = {}
    for i, loss in enumerate(cfg.aggregate_on):
        aggs[loss] = make_aggregator(method)
        aggs[loss].seed(i)
    return cls(OBS + size["tasks"], ACT, size["tasks"], cfg, aggs, device=device)


class _Logged:
    """An agent whose ``update`` also logs like ``mtrl.train``'s loop (``raw``: with the raw diagnostics file)."""

    def __init__(self, agent: MultiTaskSAC, K: int, raw: bool, tmp: str) -> None:
        from mtrl.logging import RunLogger

        self.agent, self.step = agent, 0
        streams = list(agent.cfg.aggregate_on) if raw else None
        self.logger = RunLogger(tmp, [f"t{i}" for i in range(K)], "fake", 0, "bench", tensorboard=False,
                                diagnostics_streams=streams)  # fmt: skip

    def update(self, batch: dict[str, torch.Tensor], gen: torch.Generator | None) -> None:
        info = self.agent.update(batch, gen)
        self.step += 1
        if info.diagnostics:
            self.logger.add_update(info.metrics, info.critic_losses, info.actor_losses, info.alphas, info.results,
                                   step=self.step, update=self.agent.n_updates)  # fmt: skip
        else:
            self.logger.add_scalar("time/update_ms", 0.0)
        if self.step % 50 == 0:
            self.logger.flush(self.step)


def run_size(name: str, size: dict, methods: list[str], args: argparse.Namespace, device: torch.device) -> list[str]:
    K, B = size["tasks"], size["batch_per_task"]
    batch = make_batch(K, B, device)
    flat = {k: v.reshape(K * B, *v.shape[2:]) for k, v in batch.items()}
    torch.manual_seed(0)
    lean = LeanSAC(OBS + K, ACT, size["hidden"], size["layers"], device)
    torch.manual_seed(0)
    lean_f = LeanSAC(OBS + K, ACT, size["hidden"], size["layers"], device, fused=True)
    everies = [None] if args.diagnostics_every is None else [int(n) for n in args.diagnostics_every.split(",")]
    agents = {m if len(everies) == 1 else f"{m}/{n}": make_mtrl(m, size, device, args, n)
              for m in methods for n in everies}  # fmt: skip
    if args.with_reference:
        agents.update({f"{m}/ref": make_mtrl(m, size, device, args, reference=True) for m in methods})
    if args.with_diagnostics_file:
        import tempfile

        tmp = tempfile.mkdtemp(prefix="bench_overhead_")
        for m in methods:
            agents[f"{m}/log"] = _Logged(make_mtrl(m, size, device, args), K, False, f"{tmp}/{m}_log")
            agents[f"{m}/raw"] = _Logged(make_mtrl(m, size, device, args), K, True, f"{tmp}/{m}_raw")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times: dict[str, list[float]] = {"lean": [], "lean_fused": [], **{m: [] for m in agents}}
    rounds = args.rounds if args.rounds is not None else (200 if name == "tiny" else 15)
    for rnd in range(args.warmup + rounds):
        gen = torch.Generator().manual_seed(rnd)
        for key in times:
            sync()
            t0 = time.perf_counter()
            if key.startswith("lean"):
                (lean if key == "lean" else lean_f).update(flat, gen)
            else:
                agents[key].update(batch, gen)
            sync()
            dt = 1e3 * (time.perf_counter() - t0)
            if rnd >= args.warmup:
                times[key].append(dt)
    if args.with_diagnostics_file:
        import shutil

        for a in agents.values():
            if isinstance(a, _Logged):
                a.logger.close()
        shutil.rmtree(tmp, ignore_errors=True)
    base, base_f = statistics.median(times["lean"]), statistics.median(times["lean_fused"])
    lines = [f"## {name}: K={K}, hidden {size['hidden']} x {size['layers']} layers, batch {K * B} ({B}/task), "
             f"median of {rounds} interleaved rounds (after {args.warmup} warm-up)",
             f"{'update':<11} {'median ms':>10} {'ratio to lean':>14} {'to lean_fused':>14} {'mean ms':>9} "
             f"{'mean ratio':>11}"]  # fmt: skip
    mean_base = statistics.fmean(times["lean"])
    for key in times:
        med, mean = statistics.median(times[key]), statistics.fmean(times[key])
        lines.append(f"{key:<11} {med:>10.2f} {med / base:>14.2f} {med / base_f:>14.2f} {mean:>9.2f} "
                     f"{mean / mean_base:>11.2f}")  # fmt: skip
    for m in agents:
        lines.append(f"ratio {name} {m}/lean: {statistics.median(times[m]) / base:.2f}")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="tiny,paper", help="comma-separated: tiny, paper")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default: 200 tiny, 15 paper)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    diag_help = "agent.diagnostics_every (default: agent's), or a comma-separated list of values to compare"
    p.add_argument("--diagnostics-every", default=None, help=diag_help)
    p.add_argument("--compile", action="store_true", help="agent.compile=true")
    p.add_argument("--with-reference", action="store_true", help="also time the update as it was before issue 14 "
                   "(tests/_reference_update.py)")
    p.add_argument("--with-diagnostics-file", action="store_true",
                   help="also time update + logging without (<m>/log) and with (<m>/raw) the raw diagnostics file")
    p.add_argument("--out", default="benchmarks/results/bench_overhead.txt")
    args = p.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not sizes or any(s not in SIZES for s in sizes):
        p.error(f"--sizes must be among {', '.join(SIZES)}")
    bad = [m for m in methods if m not in AGGREGATORS]
    if bad:
        p.error(f"unknown method(s) {', '.join(bad)}; valid: {', '.join(AGGREGATORS)}")
    if args.diagnostics_every is not None and not all(n.strip().isdigit() and int(n) >= 1
                                                      for n in args.diagnostics_every.split(",")):  # fmt: skip
        p.error("--diagnostics-every must be integers >= 1")
    if (args.rounds is not None and args.rounds < 1) or args.warmup < 0 or args.threads < 1:
        p.error("--rounds and --threads must be >= 1, --warmup >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    cfg = SACConfig()
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [f"# bench_overhead: python {' '.join(['scripts/bench_overhead.py', *(argv or sys.argv[1:])])}",
             f"# device {args.device} ({dev}), torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
             f"os.cpu_count {os.cpu_count()}, agent.diagnostics_every="
             f"{args.diagnostics_every if args.diagnostics_every is not None else cfg.diagnostics_every}, "
             f"agent.compile={args.compile}"]  # fmt: skip
    print("\n".join(lines), flush=True)
    for s in sizes:
        block = run_size(s, SIZES[s], methods, args, device)
        print("\n".join(block), flush=True)
        lines += block
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
