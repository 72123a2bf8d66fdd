"""What the first adversarial steps do to an L1-pre-trained generator.

Pre-trains G with L1 for ``--pretrain-steps`` steps (once), then, from that same state, runs
adversarial steps under each condition and evaluates G (validation L1 and SWD, the in-loop
metrics of ``ganlab train``) after 0 and ``--at`` (default 1 and 10) adversarial G updates. A
condition changes one thing at the hand-over, so each candidate cause can be switched off on
its own::

    python benchmarks/handover.py --data ../shared/datasets/bsds500/train \
        --val-data ../shared/datasets/bsds500/val --size 64 --batch-size 8 --ngf 16 --ndf 16 \
        --pretrain-steps 1000 --precision bf16

A condition is ``plain`` or modifiers joined by ``+`` (``--conditions``, comma-separated):

``plain``       the hand-over as ``ganlab train --pretrain-steps`` does it
``legacy``      pre-training on unscaled L1 (G's Adam moments sized for L1, not lambda*L1), as
                ganlab did before the pre-training loss was scaled
``rescale``     G's Adam moments rescaled at the hand-over (m*lambda, v*lambda^2)
``reset``       G's Adam state cleared at the hand-over (moments and step counter)
``no-adv``      G's adversarial term removed (lambda*L1 only; D still trains)
``pretrain-more`` no hand-over: the pre-training steps go on (the noise floor of the measurement)
``bn-frozen``   G's BatchNorm running statistics frozen at their pre-trained values
``no-dropout``  G's dropout off in the adversarial steps
``d-instance``  D built with instance norm instead of BatchNorm
``d-warmup``    ``--trick d-warmup:steps=W`` (D alone for W iterations first)
``adv-ramp``    ``--trick adv-ramp:steps=W`` (adversarial weight ramped 0 -> 1 over W iterations)

e.g. ``legacy,legacy+rescale,legacy+reset,legacy+no-adv,plain,plain+no-adv``. Each pre-training
kind runs once and every condition starts from a copy of its final state (weights, optimiser
states, RNG, data order). Also printed: the gradient norms of G's adversarial and lambda*L1
terms at the hand-over (on a copy, so the run is not disturbed) and the size of G's first
adversarial update relative to its last pre-training update.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import torch

from ganlab import losses
from ganlab.config import TrainConfig, TrickSpec
from ganlab.data import build_datasets
from ganlab.trick._stack import TrickStack
from ganlab.trick import Trick, register
from ganlab.runtime import runtime_for
from ganlab.stats import StatsBus, report
from ganlab.train.build import build_session as build_model
from ganlab.train.build import set_learning_rates, total_steps
from ganlab.train.inloop import evaluate


def legacy_pretrain(step_fn, next_batch) -> None:
    """The pre-training step as it was: unscaled L1."""
    cond, real = next_batch()
    step_fn.opt_g.zero_grad(set_to_none=True)
    rec = losses.l1(step_fn.generate(cond), real)
    rec.backward()
    step_fn.opt_g.step()
    report("pretrain/L1", rec)


class _NoAdv(Trick):
    name = "_no-adv"

    def g_loss(self, terms, phase, ctx):
        return {k: v for k, v in terms.items() if k != "adv"}


class _DInstance(Trick):
    name = "_d-instance"

    def configure_nets(self, spec):
        return dataclasses.replace(spec, d_norm="instance")


MODIFIERS = {"plain", "legacy", "rescale", "reset", "no-adv", "bn-frozen", "no-dropout", "d-instance", "d-warmup", "adv-ramp",
             "pretrain-more"}


def _params(G):
    return torch.cat([p.detach().flatten().float() for p in G.parameters()])


def _metrics(model, val, step) -> dict:
    m = evaluate(model, val, step, None)
    return {"L1": m["val/L1"], "SWD": m["val/swd"]}


def _first_grads(model, batch) -> dict:
    """Norms of the gradients G gets from the adversarial and the lambda*L1 term, computed on
    copies of G and D with the global RNG restored, so the run itself is not disturbed."""
    cond, real = batch
    s = model.step_fn
    rng = torch.get_rng_state()
    G, D = copy.deepcopy(model.G), copy.deepcopy(model.D).requires_grad_(False)
    with s.autocast():
        fake = G(cond).float()
        d_fake = D(torch.cat((cond, fake), 1)).float()
    adv = losses.g_adv_term(s.gan_mode, d_fake)
    rec = s.lambda_l1 * losses.l1(fake, real)
    params = list(G.parameters())
    ga = torch.autograd.grad(adv, params, retain_graph=True, allow_unused=True)
    gl = torch.autograd.grad(rec, params, allow_unused=True)
    torch.set_rng_state(rng)
    norm = lambda gs: float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gs if g is not None])))  # noqa: E731
    return {"|g_adv|": norm(ga), "|g_l1|": norm(gl)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-data")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--ndf", type=int, default=16)
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--at", default="1,10", help="evaluate after these numbers of adversarial G updates")
    ap.add_argument("--warmup", type=int, default=100, help="N of d-warmup / adv-ramp")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--conditions", default="legacy,legacy+rescale,legacy+reset,legacy+no-adv,legacy+bn-frozen,legacy+no-dropout,"
                                             "legacy+d-instance,plain,plain+no-adv,d-warmup,adv-ramp")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    at = sorted({int(x) for x in a.at.split(",")})
    conditions = [c.strip() for c in a.conditions.split(",") if c.strip()]
    for c in conditions:
        unknown = set(c.split("+")) - MODIFIERS
        if unknown:
            ap.error(f"condition {c}: unknown {', '.join(sorted(unknown))}; known: {', '.join(sorted(MODIFIERS))}")

    base = TrainConfig(data=a.data, val_data=a.val_data, size=a.size, batch_size=a.batch_size, ngf=a.ngf, ndf=a.ndf,
                       pretrain_steps=a.pretrain_steps, steps=max(at), precision=a.precision, device="cpu",
                       seed=a.seed, backbone_weights="none").validate()
    runtime = runtime_for(base)
    train_data, val_data = build_datasets(base)
    total = total_steps(base, len(train_data))
    P = a.pretrain_steps
    pre: dict[str, dict] = {}
    results = []

    def pretrained(kind: str):
        if kind not in pre:
            train_data.seed(base.seed)
            model = build_model(base, runtime, total)
            next_batch = train_data.batches(base.batch_size, runtime.device)
            t0 = time.perf_counter()
            last = None
            with StatsBus().activate():
                for step in range(P):
                    model.ctx.step = step
                    set_learning_rates(model, step)
                    before = _params(model.G) if step == P - 1 else None
                    (legacy_pretrain(model.step_fn, next_batch) if kind == "legacy" else model.step_fn.pretrain(next_batch))
                    if before is not None:
                        last = float(torch.linalg.vector_norm(_params(model.G) - before))
            print(f"pre-training ({kind}) {P} steps: {time.perf_counter() - t0:.0f} s", flush=True)
            pre[kind] = {"state": copy.deepcopy({"G": model.G.state_dict(), "D": model.D.state_dict(),
                                                 "opt_g": model.opt_g.state_dict(), "opt_d": model.opt_d.state_dict(),
                                                 "rng": torch.get_rng_state(), "data": train_data.state_dict()}),
                         "metrics": _metrics(model, val_data, P - 1), "last_update": last}
        return pre[kind]

    for cond_name in conditions:
        mods = set(cond_name.split("+"))
        kind = "legacy" if "legacy" in mods else "plain"
        p = pretrained(kind)
        tricks = tuple(TrickSpec(t, (("steps", a.warmup),)) for t in ("d-warmup", "adv-ramp") if t in mods)
        if "d-instance" in mods:
            register(_DInstance)
            tricks += (TrickSpec("_d-instance", ()),)
        cfg = base.replace(tricks=tricks)
        model = build_model(cfg, runtime, total)
        s = copy.deepcopy(p["state"])  # the optimisers' load_state_dict keeps the tensors it is given
        model.G.load_state_dict(s["G"])
        if "d-instance" not in mods:
            model.D.load_state_dict(s["D"])
        model.opt_g.load_state_dict(s["opt_g"])
        if "d-instance" not in mods:
            model.opt_d.load_state_dict(s["opt_d"])
        torch.set_rng_state(s["rng"])
        train_data.load_state_dict(s["data"])
        next_batch = train_data.batches(cfg.batch_size, runtime.device)
        if "no-adv" in mods:
            model.step_fn.stack = TrickStack([_NoAdv()], cfg.gan_mode)
        if "rescale" in mods:
            lam = cfg.lambda_l1
            for st in model.opt_g.state.values():
                st["exp_avg"].mul_(lam)
                st["exp_avg_sq"].mul_(lam * lam)
        if "reset" in mods:
            model.opt_g.state.clear()
        if "bn-frozen" in mods:
            for m in model.G.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0
        if "no-dropout" in mods:
            for m in model.G.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
        row = {"condition": cond_name, "0": p["metrics"]}
        warm = a.warmup if "d-warmup" in mods else 0
        t0 = time.perf_counter()
        with StatsBus().activate():
            for i in range(warm + max(at)):
                step = P + i
                model.ctx.step = step
                set_learning_rates(model, step)
                before = None
                if i == warm:  # G's first adversarial update
                    before = _params(model.G)
                    data_state = train_data.state_dict()
                    row.update(_first_grads(model, next_batch()))
                    train_data.load_state_dict(data_state)
                if "pretrain-more" in mods:
                    model.step_fn.pretrain(next_batch)
                else:
                    model.step_fn(next_batch)
                if before is not None:
                    row["update_ratio"] = float(torch.linalg.vector_norm(_params(model.G) - before)) / p["last_update"]
                done = i + 1 - warm
                if done in at:
                    row[str(done)] = _metrics(model, val_data, step)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        r = row
        print(f"{cond_name:22s} L1 " + " / ".join(f"{r[str(n)]['L1']:.4f}" for n in [0, *at])
              + "   SWD " + " / ".join(f"{r[str(n)]['SWD']:.1f}" for n in [0, *at]) + "   "
              f"|g_adv| {r['|g_adv|']:.3g} |g_l1| {r['|g_l1|']:.3g}  first update x{r['update_ratio']:.1f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
