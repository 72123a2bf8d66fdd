"""The tables and figures of docs/findings.md, from the confirmations studies/findings.sh ran.

For every confirmation in RUNS/studies.db (q1-adversarial, q2-wgan-pixeltcl, q3-weak-d,
q4-ganhacks, q6-modern):

- each finished run's final generator is measured on the test split (the 200 BSDS500 test
  photographs, never used to choose anything), once: RUN/test-metrics.json;
- each configuration: mean and 95% t interval over its seeds, on val (the confirmation's own
  objectives and the in-loop metrics) and on test (every weight-free metric of ``ganlab eval``);
- each arm against the baseline: the median seed-paired difference, the sign test's interval and
  the verdict, on val as ``ganlab report`` decides them (the confirmation's family), and on the
  test split's a/b SWD as a second family (Holm, 5%);
- question 5: each metric's spread over seeds for the baseline and question 4's best, and the
  seeds an effect of the sizes found needs; question 6's arms against question 4's best, seed by
  seed (the same settings and seeds), a family of its own;
- figures: test-split samples side by side, the report's evidence plots.

Writes RUNS/findings/tables.md (and .json) and small PNGs into --docs. A second call reuses every
test-split measurement.

    python studies/findings/tables.py --runs ../findings-runs --data ../shared/datasets/bsds500 --docs docs/findings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ganlab.evaluate import EvalOptions, evaluate_run
from ganlab.io import atomic_write_bytes, atomic_write_json
from ganlab.study.evidence import (ALPHA, ArmRuns, arm_runs, comparisons, decide_family, seeds_needed, summarise)
from ganlab.study.objective import DIVERGED_INSTABILITY
from ganlab.study.record import study_record, trial_record

QUESTIONS = [("q1-adversarial", "1"), ("q2-wgan-pixeltcl", "2"), ("q3-weak-d", "3"), ("q4-ganhacks", "4"),
             ("q6-modern", "6")]
TEST_METRICS = [  # (key in test-metrics.json, column, lower is better)
    ("ab_swd", "a/b SWD", True), ("swd", "RGB SWD", True), ("color_hist", "ab-hist", True), ("psnr", "PSNR", False),
    ("ssim", "SSIM", False), ("uiqi", "UIQI", False), ("colorfulness_gap", "colourfulness gap", True)]
VERDICT_TEST = "test_ab_swd"
# Comparisons inside a question that are not against the baseline: (study, arm, reference)
WITHIN = [("q1-adversarial", "resnet18-pretrained", "resnet18")]


def test_metrics(run_dir: Path, data: Path) -> dict[str, float] | None:
    """The run's final generator on the test split (cached in RUN/test-metrics.json)."""
    path = run_dir / "test-metrics.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("data") == str(data):
            return cached["values"]
    try:
        result = evaluate_run(EvalOptions(run_dir=str(run_dir), data=str(data), checkpoint="latest", no_download=True),
                              console=_quiet())
    except Exception as exc:  # noqa: BLE001 -- a run that cannot be measured is listed, not fatal
        print(f"  {run_dir.name}: not measured on test ({exc})", file=sys.stderr)
        return None
    m = result["metrics"]
    values = {k: float(m[k]["value"]) for k, _, _ in TEST_METRICS if k in m and m[k].get("available")}
    if m.get("colorfulness_real", {}).get("available") and m.get("colorfulness_fake", {}).get("available"):
        values["colorfulness_gap"] = abs(float(m["colorfulness_real"]["value"]) - float(m["colorfulness_fake"]["value"]))
    atomic_write_json(path, {"data": str(data), "checkpoint_step": result["checkpoint_step"], "values": values})
    return values


def _quiet():
    from rich.console import Console
    return Console(stderr=True, quiet=True)


@dataclasses.dataclass
class Confirmation:
    name: str
    objectives: list[str]
    directions: list[str]
    record: object
    arms: dict[str, ArmRuns]  # val objectives, as ganlab report reads them
    test: dict[str, ArmRuns]  # the test split's metrics
    val_metrics: dict[str, dict[str, dict[int, float]]]  # arm -> in-loop metric -> seed -> value
    wall: float  # seconds from the first run's start to the last run's end
    settings: dict
    run_dirs: dict[str, dict[int, str]]  # arm -> seed -> its run folder


def load(storage: str, name: str, data: Path) -> Confirmation | None:
    try:
        confirm = optuna.load_study(study_name=name + "-confirm", storage=storage)
    except KeyError:
        return None
    record = study_record(confirm)
    objectives = list(record.objectives or [])
    directions = [d.name.lower() for d in confirm.directions]
    arms = arm_runs(confirm, objectives, DIVERGED_INSTABILITY)
    test = {label: ArmRuns(runs.plan, {k: {} for k, _, _ in TEST_METRICS}, list(runs.diverged))
            for label, runs in arms.items()}
    val_metrics: dict[str, dict[str, dict[int, float]]] = {label: {} for label in arms}
    starts, ends = [], []
    run_dirs: dict[str, dict[int, str]] = {label: {} for label in arms}
    for t in confirm.get_trials(deepcopy=False):
        arm = trial_record(t).arm
        if not isinstance(arm, dict) or arm.get("label") not in arms or t.state != TrialState.COMPLETE:
            continue
        label, seed = arm["label"], int(arm["seed"])
        starts.append(t.datetime_start)
        ends.append(t.datetime_complete)
        for k, v in (trial_record(t).metrics or {}).items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                val_metrics[label].setdefault(k, {})[seed] = float(v)
        run_dir = trial_record(t).run_dir
        if run_dir:
            run_dirs[label][seed] = run_dir
        values = test_metrics(Path(run_dir), data) if run_dir else None
        for k, v in (values or {}).items():
            test[label].values.setdefault(k, {})[seed] = v
    wall = (max(ends) - min(starts)).total_seconds() if starts else 0.0
    return Confirmation(name, objectives, directions, record, arms, test, val_metrics, wall,
                        dict(record.settings or {}), run_dirs)


def _cell(values: dict[int, float] | None, digits: int = 3) -> str:
    vals = [v for v in (values or {}).values() if math.isfinite(v)]
    if not vals:
        return "-"
    s = summarise(vals)
    if s.n < 2:
        return f"{s.mean:.{digits}g} (1)"
    return f"{s.mean:.{digits}g} [{s.low:.{digits}g}, {s.high:.{digits}g}]"


def _effect_cell(e) -> str:
    return f"{e.text()} {e.verdict}" if e.n else e.verdict


def configuration_table(c: Confirmation) -> list[str]:
    cols = [("val", o) for o in c.objectives] + [("test", k) for k, _, _ in TEST_METRICS]
    head = [f"val {o}" for o in c.objectives] + [f"test {label}" for _, label, _ in TEST_METRICS]
    md = ["| configuration | seeds | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for label, runs in c.arms.items():
        if label != runs.plan.get("label"):
            continue  # an alias
        cells = []
        for split, key in cols:
            cells.append(_cell(runs.values.get(key) if split == "val" else c.test[label].values.get(key)))
        div = f", {len(runs.diverged)} diverged" if runs.diverged else ""
        md.append(f"| {describe(runs)} | {len(runs.seeds)}{div} | " + " | ".join(cells) + " |")
    return md


def describe(runs: ArmRuns) -> str:
    plan = runs.plan
    tricks = ", ".join(n + (":" + ",".join(f"{k}={v}" for k, v in p.items()) if p else "") for n, p in plan.get("tricks") or [])
    params = ", ".join(f"{k}={v}" for k, v in (plan.get("params") or {}).items())
    extra = "; ".join(x for x in (tricks, params) if x)
    return f"{plan['label']}" + (f" ({extra})" if extra and plan["label"] not in ("baseline",) else "")


def verdict_rows(c: Confirmation) -> tuple[list, object, list, object]:
    """(val rows, val family, test rows, test family)."""
    primary = bool(getattr(c.record, "primary", False))
    margins = {k: float(v) for k, v in (getattr(c.record, "equivalence", None) or {}).items()}
    val_rows, val_family = decide_family(comparisons(c.arms, c.objectives, c.directions), c.objectives, c.directions,
                                         primary=primary, margins=margins)
    test_arms = {label: ArmRuns(r.plan, {VERDICT_TEST: r.values.get("ab_swd", {})}, r.diverged)
                 for label, r in c.test.items()}
    test_rows, test_family = decide_family(comparisons(test_arms, [VERDICT_TEST], ["minimize"]), [VERDICT_TEST],
                                           ["minimize"])
    return val_rows, val_family, test_rows, test_family


def verdict_table(c: Confirmation) -> list[str]:
    val_rows, val_family, test_rows, test_family = verdict_rows(c)
    test_by = {(what, ref): by for what, ref, by in test_rows}
    head = [f"val {o}" for o in c.objectives] + ["test a/b SWD"]
    md = ["| effect of | against | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for what, ref, by in val_rows:
        cells = [_effect_cell(by[o]) if o in by else "-" for o in c.objectives]
        t = test_by.get((what, ref), {}).get(VERDICT_TEST)
        cells.append(_effect_cell(t) if t is not None else "-")
        md.append(f"| {what} | {ref} | " + " | ".join(cells) + " |")
    md += ["", f"Val: the confirmation's {val_family.text()}; test: a/b SWD alone, {test_family.text()}. A cell is the "
               "median seed-paired difference (the arm minus the reference; negative is better for every objective "
               "here) with the sign test's interval at the level Holm's rule decided it at."]
    return md


def pairs_against(c: Confirmation, ref: ArmRuns, ref_test: ArmRuns, ref_label: str,
                  only: tuple[str, ...] | None = None) -> tuple[list, object]:
    """Every chosen arm of ``c`` (or those in ``only``) against another arm, of ``c`` or of another
    confirmation with the same settings and seeds, paired by seed: val objectives and test a/b SWD
    in one family."""
    keys = c.objectives + [VERDICT_TEST]
    dirs = c.directions + ["minimize"]

    def merged(runs: ArmRuns, test: ArmRuns, kind: str, label: str) -> ArmRuns:
        plan = {**runs.plan, "kind": kind, "label": label}
        return ArmRuns(plan, {**{o: runs.values.get(o, {}) for o in c.objectives},
                              VERDICT_TEST: test.values.get("ab_swd", {})}, runs.diverged)

    arms = {"baseline": merged(ref, ref_test, "baseline", "baseline")}
    for label, runs in c.arms.items():
        if runs.plan.get("kind") == "chosen" and label == runs.plan.get("label") and (only is None or label in only):
            arms[label] = merged(runs, c.test[label], "chosen", label)
    rows, family = decide_family(comparisons(arms, keys, dirs), keys, dirs)
    return [(what, ref_label, by) for what, _, by in rows], family


def spread_lines(confs: dict[str, Confirmation]) -> list[str]:
    """Question 5: each metric's spread over seeds (baseline, question 4's best), and the seeds an
    effect of the sizes the other questions found needs."""
    q4 = confs.get("q4-ganhacks")
    if q4 is None:
        return ["Question 4's confirmation has not run yet."]
    best = next((r for label, r in q4.arms.items() if r.plan.get("kind") == "chosen" and label == r.plan["label"]), None)
    md = ["| metric | baseline: mean ± sd (CV) | best of question 4: mean ± sd (CV) | sd of the paired difference |",
          "|---|---|---|---|"]
    rows = [(f"val {o}", q4.arms["baseline"].values.get(o, {}), best.values.get(o, {}) if best else {})
            for o in q4.objectives]
    rows += [(f"test {label}", q4.test["baseline"].values.get(k, {}), q4.test[best.plan["label"]].values.get(k, {})
              if best else {}) for k, label, _ in TEST_METRICS]
    paired_sd = {}
    for name, base, other in rows:
        cells = []
        for values in (base, other):
            vals = [v for v in values.values() if math.isfinite(v)]
            if len(vals) < 2:
                cells.append("-")
                continue
            m, sd = statistics.fmean(vals), statistics.stdev(vals)
            cells.append(f"{m:.3g} ± {sd:.2g} ({abs(sd / m):.0%})" if m else f"{m:.3g} ± {sd:.2g}")
        common = sorted(set(base) & set(other))
        d = [other[s] - base[s] for s in common if math.isfinite(other[s] - base[s])]
        paired_sd[name] = statistics.stdev(d) if len(d) > 1 else math.nan
        cells.append(f"{paired_sd[name]:.3g}" if math.isfinite(paired_sd[name]) else "-")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    # the effects the questions found on the test split's a/b SWD
    effects = []
    for c in confs.values():
        _, _, test_rows, _ = verdict_rows(c)
        effects += [abs(by[VERDICT_TEST].median) for _, _, by in test_rows
                    if by[VERDICT_TEST].n and math.isfinite(by[VERDICT_TEST].median)]
    sd = paired_sd.get("test a/b SWD", math.nan)
    if effects and math.isfinite(sd):
        effects.sort()
        md += ["", f"Seeds per arm that a seed-paired sign test needs (80% power, normal differences of sd {sd:.3g}, the "
                   "paired spread of question 4's best against the baseline on the test a/b SWD):", "",
               "| effect on test a/b SWD | alone (5%) | in a family of 8 (Holm's first step, 0.625%) |", "|---|---|---|"]
        picks = [("smallest found", effects[0]), ("median found", statistics.median(effects)), ("largest found", effects[-1])]
        for what, e in picks:
            alone, family = seeds_needed(e, sd, ALPHA), seeds_needed(e, sd, ALPHA / 8)
            md.append(f"| {what}: {e:.3g} | {alone if alone is not None else '> 2000'} | "
                      f"{family if family is not None else '> 2000'} |")
    return md


def sample_figure(runs: list[tuple[str, str]], data: Path, path: Path, n: int = 6) -> bool:
    """Test-split samples: grey input | each run's colourisation | ground truth, one row per photo."""
    import numpy as np
    import torch
    from PIL import Image

    from ganlab.data import build_datasets, to_rgb
    from ganlab.color import to_uint8
    from ganlab.infer import open_generator

    columns, cond = [], None
    for _, run_dir in runs:
        loaded = open_generator(run_dir, "latest", device="cpu", which="latest")
        cfg = dataclasses.replace(loaded.cfg, data=str(data), val_data=str(data))
        _, test = build_datasets(cfg)
        c, target = next(test.fixed_batches(n, torch.device("cpu"), n))
        with torch.inference_mode():
            out = loaded.G(c).float()
        columns.append(to_uint8(to_rgb(cfg.task, c, out)))
        cond = (c, target, cfg.task)
    if cond is None:
        return False
    c, target, task = cond
    grey = to_uint8(to_rgb(task, c, torch.zeros_like(target)))
    truth = to_uint8(to_rgb(task, c, target))
    grid = torch.stack([grey, *columns, truth], dim=1)  # (n, cols, 3, H, W)
    rows = [torch.cat(list(row), dim=2) for row in grid]  # each (3, H, cols*W)
    img = torch.cat(rows, dim=1).permute(1, 2, 0).numpy().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    # a 256-colour palette (median cut, no dithering): a third of the bytes, no visible change at this size
    Image.fromarray(img).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        tmp, optimize=True)
    tmp.replace(path)
    return True


def same_seed(cols: list[tuple[str, Confirmation, str]]) -> list[tuple[str, str]] | None:
    """Each column's run of the first seed every column has (so the columns differ only by arm)."""
    seeds = set.intersection(*(set(c.run_dirs.get(label, {})) for _, c, label in cols))
    if not seeds:
        return None
    seed = min(seeds)
    return [(title, c.run_dirs[label][seed]) for title, c, label in cols]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True, help="findings.sh's RUNS (its studies.db)")
    p.add_argument("--data", type=Path, required=True, help="the BSDS500 folder (test/ is measured)")
    p.add_argument("--docs", type=Path, required=True, help="where the PNGs go (docs/findings)")
    p.add_argument("--study", action="append", help="these studies only (default: the five questions')")
    args = p.parse_args(argv)
    questions = [(n, n) for n in args.study] if args.study else QUESTIONS
    db = args.runs / "studies.db"
    if not db.is_file():
        print(f"tables.py: {db} does not exist; run studies/findings.sh first", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    args.docs.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{db.resolve()}"
    test_dir = (args.data / "test").resolve()
    confs: dict[str, Confirmation] = {}
    total_train_h = 0.0
    md = ["# Findings tables", "", f"From {db}; test split {test_dir}.", ""]
    for name, q in questions:
        print(f"{name} ...", file=sys.stderr, flush=True)
        c = load(storage, name, test_dir)
        md += [f"## Question {q}: {name}", ""]
        if c is None:
            md += ["Not run yet.", ""]
            continue
        confs[name] = c
        s = c.settings
        own = [r for label, r in c.arms.items() if label == r.plan.get("label")]
        n_runs = sum(len(r.seeds) for r in own)
        train_h = sum(r.seconds for r in own) / 3600
        total_train_h += train_h
        md += [f"{n_runs} finished runs; {s.get('steps')} steps, {s.get('size')} px, ngf {s.get('ngf')}, ndf "
               f"{s.get('ndf')}, batch {s.get('batch_size')}; {train_h:.2f} h of training (the runs' own time, one "
               f"thread each), {c.wall / 3600:.2f} h of wall time for the confirmation.", "",
               "Mean [95% t interval] over seeds:", ""]
        md += configuration_table(c) + [""] + verdict_table(c) + [""]
        report_png = args.runs / name / "report" / "evidence.png"
        if report_png.is_file():
            shutil.copyfile(report_png, args.docs / f"{name}-evidence.png")
    for name, arm, ref in WITHIN:
        c = confs.get(name)
        if c is None or arm not in c.arms or ref not in c.arms:
            continue
        rows, family = pairs_against(c, c.arms[ref], c.test[ref], ref, only=(arm,))
        keys = c.objectives + [VERDICT_TEST]
        md += [f"## {name}: {arm} against {ref}", "", "| effect of | against | " + " | ".join(
            c.objectives + ["test a/b SWD"]) + " |", "|---|---|" + "---|" * len(keys)]
        for what, against, by in rows:
            md.append(f"| {what} | {against} | " + " | ".join(_effect_cell(by[k]) for k in keys) + " |")
        md += ["", f"One {family.text()}, apart from the confirmation's.", ""]
    md += ["## Question 5: how much the answers depend on the seed", ""] + spread_lines(confs) + [""]
    q4, q6 = confs.get("q4-ganhacks"), confs.get("q6-modern")
    if q4 is not None and q6 is not None:
        best = next((label for label, r in q4.arms.items() if r.plan.get("kind") == "chosen"), None)
        if best is not None:
            rows, family = pairs_against(q6, q4.arms[best], q4.test[best], f"question 4's best ({best})")
            head = q6.objectives + ["test a/b SWD"]
            keys = q6.objectives + [VERDICT_TEST]
            md += ["## Question 6 against question 4's best", "", "| effect of | against | " + " | ".join(head) + " |",
                   "|---|---|" + "---|" * len(head)]
            for what, ref, by in rows:
                md.append(f"| {what} | {ref} | " + " | ".join(_effect_cell(by[k]) for k in keys) + " |")
            md += ["", f"One {family.text()}.", ""]
    # the figures: the best configuration chosen on val (never on test), its seed-1000 run
    chosen = [(statistics.fmean(r.values[c.objectives[0]].values()), c, label) for c in confs.values()
              for label, r in c.arms.items() if r.plan.get("kind") == "chosen" and r.values.get(c.objectives[0])]
    control = next((c for c in confs.values() if c.run_dirs.get("l1-only")), None)
    if chosen and control:
        _, bc, blabel = min(chosen, key=lambda x: x[0])
        runs = same_seed([("L1-only", control, "l1-only"), ("baseline", bc, "baseline"), (blabel, bc, blabel)])
        if runs and sample_figure(runs, test_dir, args.docs / "samples.png"):
            md += ["## Samples", "", f"docs/findings/samples.png: grey input | L1-only | baseline | {blabel} ({bc.name}, "
                                     f"the lowest mean val {bc.objectives[0]}) | ground truth; the first 6 test "
                                     f"photographs, centre crops, the runs of one seed.", ""]
    q2 = confs.get("q2-wgan-pixeltcl")
    if q2 is not None:
        labels = [label for label, r in q2.arms.items() if q2.run_dirs.get(label) and label == r.plan.get("label")]
        runs = same_seed([(label, q2, label) for label in labels]) if labels else None
        if runs and sample_figure(runs, test_dir, args.docs / "q2-samples.png"):
            md += ["docs/findings/q2-samples.png: grey input | " + " | ".join(labels) + " | ground truth.", ""]
    md += [f"Training time of the confirmations above: {total_train_h:.2f} h (each run on one thread).", ""]
    out = args.runs / "findings"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "tables.md", ("\n".join(md) + "\n").encode())
    print(f"wrote {out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
