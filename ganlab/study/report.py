"""What a study found (``ganlab report NAME``), as Markdown with plots and a CSV.

- first, where the study has a confirmation (``ganlab confirm``), what its evidence supports: the
  verdicts, their family and error rate, what they rest on and how many seeds an effect needs
  (:mod:`ganlab.study.evidence`, docs/statistics.md),
- the importance of each trick and parameter for each objective (Optuna's evaluators),
- the Pareto front (or the best trial) and a scatter plot of all trials,
- a per-trick comparison: median and spread of each objective with the trick on and off,
- loss curves of the best and the worst trials, from their run folders,
- ``trials.csv`` with every trial.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ganlab.study.record import study_record, trial_record
from ganlab.io import atomic_write_bytes
from ganlab.stats import read_series
from ganlab.study.budget import shown
from ganlab.study.evidence import confirmation_of, evidence_section
from ganlab.study.objective import DIVERGED_INSTABILITY
from ganlab.study.table import trial_cells

__all__ = ["importances", "per_trick", "trials_csv", "write_report"]

def _objective_names(study) -> list[str]:
    names = study_record(study).objectives
    if names and len(names) == len(study.directions):
        return list(names)
    return [f"objective{i}" for i in range(len(study.directions))]


def _finished(study):
    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
            and all(math.isfinite(v) for v in t.values)]


def importances(study, names: list[str]) -> dict[str, dict[str, float]]:
    """Per objective: {parameter: importance}, or {} with the reason when it cannot be computed."""
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        sign = 1.0 if study.directions[i].name == "MINIMIZE" else -1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PED-ANOVA's reminder that it ranks for low targets
                out[name] = optuna.importance.get_param_importances(study, target=lambda t, i=i: sign * t.values[i])
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            out[name] = {"_unavailable": str(exc).splitlines()[0][:120]}
    return out


def per_trick(study, trials, names: list[str]) -> list[dict[str, Any]]:
    """For each trick that appeared: each objective's median and spread with it on and off."""
    tricks = sorted({n for t in trials for n in (trial_record(t).tricks or [])}
                    | {k.split(":", 1)[1] for t in trials for k in t.params if k.startswith("trick:")})
    rows = []
    for trick in tricks:
        row: dict[str, Any] = {"trick": trick}
        for i, name in enumerate(names):
            on = [t.values[i] for t in trials if trick in (trial_record(t).tricks or [])]
            off = [t.values[i] for t in trials if trick not in (trial_record(t).tricks or [])]
            row[name] = {"on": _describe(on), "off": _describe(off)}
        rows.append(row)
    return rows


def _conditional_params(trials) -> dict[str, int]:
    """Base and trick parameters drawn in some finished trials but not all, with their counts."""
    counts: dict[str, int] = {}
    for t in trials:
        for k in t.params:
            counts[k] = counts.get(k, 0) + 1
    return {k: n for k, n in sorted(counts.items()) if n < len(trials) and not k.startswith(("trick:", "group:"))}


def _is_control(t) -> bool:
    """A trial of the L1-only control: ``gan_mode = none`` drawn, or fixed in the definition."""
    return t.params.get("gan_mode", trial_record(t).gan_mode) == "none"


def _describe(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
    return {"n": len(values), "median": statistics.median(values), "q1": q[0], "q3": q[2]}


def _plot_pareto(study, trials, names, front, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not trials:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    if len(names) == 2:
        xs, ys = [t.values[0] for t in trials], [t.values[1] for t in trials]
        ax.scatter(xs, ys, c="#bbbbbb", label="trials", zorder=1)
        fr = sorted(front, key=lambda t: t.values[0])
        ax.plot([t.values[0] for t in fr], [t.values[1] for t in fr], "o-", c="#d62728", label="Pareto front", zorder=2)
        for t in fr:
            ax.annotate(str(t.number), (t.values[0], t.values[1]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"{names[0]} ({study.directions[0].name.lower()})")
        ax.set_ylabel(f"{names[1]} ({study.directions[1].name.lower()})")
    else:
        ax.plot([t.number for t in trials], [t.values[0] for t in trials], "o", c="#1f77b4", label="trials")
        best = front[0] if front else None
        if best is not None:
            ax.plot([best.number], [best.values[0]], "o", c="#d62728", label=f"best (#{best.number})")
        ax.set_xlabel("trial")
        ax.set_ylabel(names[0])
    ax.set_title(f"study {study.study_name}: {len(trials)} finished trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_importances(imps: dict[str, dict[str, float]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    usable = {k: v for k, v in imps.items() if v and "_unavailable" not in v}
    if not usable:
        return None
    fig, axes = plt.subplots(1, len(usable), figsize=(5.5 * len(usable), 0.45 * max(len(v) for v in usable.values()) + 1.6), dpi=110, squeeze=False)
    for ax, (name, values) in zip(axes[0], usable.items()):
        items = sorted(values.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
        ax.set_title(f"importance for {name}")
        ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_curves(trials_by_label: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {}
    for label, t in trials_by_label.items():
        run = trial_record(t).run_dir
        if run and (Path(run) / "stats.jsonl").is_file():
            series[label] = read_series(Path(run) / "stats.jsonl")
    if not series:
        return None
    tags = [("D/loss_real", "D loss (real)"), ("D/loss_fake", "D loss (fake)"), ("G/adv", "G adversarial"), ("G/L1", "G L1")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), dpi=110)
    for ax, (tag, title) in zip(axes.flat, tags):
        for label, s in series.items():
            if tag in s:
                steps, values = zip(*s[tag])
                ax.plot(steps, values, label=label, lw=0.9)
        ax.set_title(title)
        ax.set_xlabel("step")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


FEW_TRIALS = 10  # below this many finished trials, the importances get a caveat


def _pruned_text(t, names: list[str]) -> str:
    """How a pruned trial is described: the objective's value only if the pruner watched it."""
    values, state = trial_cells(t, len(names))
    if trial_record(t).pruned_on_objective and any(v != "-" for v in values):
        return f"{state.replace('pruned@', 'pruned at step ')}: " + ", ".join(f"{n} = {v.split(' @')[0]}" for n, v in zip(names, values))
    return state.replace("pruned@", "pruned at step ")


def write_report(study, out: Path) -> Path:
    """Write report.md, trials.csv and the PNGs into ``out``; return the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    names = _objective_names(study)
    trials = _finished(study)
    multi = len(study.directions) > 1
    if multi:
        front = [t for t in study.best_trials if t in trials] if trials else []
    else:
        front = [min(trials, key=lambda t: t.values[0] if study.directions[0].name == "MINIMIZE" else -t.values[0])] if trials else []

    atomic_write_bytes(out / "trials.csv", trials_csv(study, names).encode())

    imps = importances(study, names) if len(trials) >= 2 else {n: {"_unavailable": "needs at least two finished trials"} for n in names}
    pareto_png = _plot_pareto(study, trials, names, front, out / "pareto.png")
    imp_png = _plot_importances(imps, out / "importance.png")
    ranked = sorted(trials, key=lambda t: _rank_key(study, t))
    curves = {}
    if ranked:
        curves[f"best #{ranked[0].number}"] = ranked[0]
        if len(ranked) > 1:
            curves[f"worst #{ranked[-1].number}"] = ranked[-1]
    diverged = [t for t in study.trials if trial_record(t).diverged_step is not None]
    for t in diverged[:1]:
        curves[f"diverged #{t.number}"] = t
    curves_png = _plot_curves(curves, out / "curves.png")

    states: dict[str, int] = {}
    for t in shown(study.trials):
        key = "refused" if trial_record(t).refused else ("diverged" if trial_record(t).diverged_step is not None else t.state.name.lower())
        states[key] = states.get(key, 0) + 1
    md = [f"# Study `{study.study_name}`", ""]
    definition = study_record(study).definition or ""
    question = [line[1:].strip() for line in definition.splitlines() if line.startswith("#")]
    asked = ["", "> " + " ".join(question)] if question else []
    confirm = confirmation_of(study)
    if confirm is not None:
        directions = [d.name.lower() for d in confirm.directions]
        # the definition's fixed arms ([arms]): chosen configurations that no search trial gave
        fixed = any(a.get("kind") == "chosen" and a.get("trial") is None for a in study_record(confirm).plan or [])
        md += evidence_section(confirm, list(study_record(confirm).objectives or names), directions, out,
                               DIVERGED_INSTABILITY, searched=not fixed)
        if fixed:
            md += asked + ["", "The configurations are the definition's own [arms]: nothing was searched."]
            return _write_md(out, md)
        md += ["# The search", ""]
    md.append(f"{len(shown(study.trials))} trials: " + ", ".join(f"{n} {k}" for k, n in sorted(states.items())) + ". "
              "Objectives: " + ", ".join(f"{n} ({d.name.lower()})" for n, d in zip(names, study.directions)) + ".")
    md += asked
    md += ["", "## Pareto front" if multi else "## Best trial", ""]
    if front:
        md.append("| trial | tricks | " + " | ".join(names) + " | parameters |")
        md.append("|---|---|" + "---|" * len(names) + "---|")
        for t in sorted(front, key=lambda t: t.values[0]):
            params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items() if not k.startswith(("trick:", "group:")))
            md.append(f"| {t.number} | {', '.join(trial_record(t).tricks or []) or 'none'} | "
                      + " | ".join(f"{v:.4g}" for v in t.values) + f" | {params} |")
    else:
        md.append("No finished trial yet.")
    if pareto_png:
        md += ["", f"![trials]({pareto_png.name})"]
    md += ["", "## What mattered", ""]
    if 2 <= len(trials) < FEW_TRIALS:
        md += [f"Caveat: these importances come from only {len(trials)} finished trials; below about "
               f"{FEW_TRIALS} they are mostly noise (and several objectives often get the same numbers).", ""]
    for name, values in imps.items():
        if "_unavailable" in values:
            md.append(f"- **{name}**: importance unavailable ({values['_unavailable']}).")
        else:
            top = ", ".join(f"`{k}` {v:.2f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1])[:6])
            md.append(f"- **{name}**: {top}")
    conditional = _conditional_params(trials)
    if conditional:
        md += ["", "Not ranked (Optuna ranks the parameters every finished trial has; these were drawn only where "
               "they reach the run, e.g. a learning rate a trick does not override): "
               + ", ".join(f"`{k}` ({n} of {len(trials)} trials)" for k, n in conditional.items()) + "."]
    if imp_png:
        md += ["", f"![importance]({imp_png.name})"]
    seeds = max((len(trial_record(t).seed_runs or [None]) for t in trials), default=1)
    screening = "single-seed" if seeds == 1 else f"{seeds}-seed"
    md += ["", "## Each trick on and off (confounded screening)", "",
           f"Median [q1, q3] (n) of each objective over the finished trials: {screening} runs, each trick on together "
           "with other, randomly drawn tricks. A screen, not an effect: `ganlab confirm` measures effects over fresh "
           "seeds against the baseline and by ablation.", ""]
    rows = per_trick(study, trials, names)
    if rows:
        md.append("| trick | " + " | ".join(f"{n} on | {n} off" for n in names) + " |")
        md.append("|---|" + "---|---|" * len(names))
        for row in rows:
            cells = []
            for n in names:
                for side in ("on", "off"):
                    d = row[n][side]
                    cells.append("-" if d is None else f"{d['median']:.4g} [{d['q1']:.3g}, {d['q3']:.3g}] ({d['n']})")
            md.append(f"| {row['trick']} | " + " | ".join(cells) + " |")
    else:
        md.append("No trick was switched on in a finished trial.")
    control = [t for t in trials if _is_control(t)]
    if control:
        md += ["", "## The L1-only control", "",
               "Trials with `gan_mode = none` train G with lambda*L1 alone (no D): does the adversarial term beat "
               "plain regression at all? Median [q1, q3] (n) of each objective.", ""]
        md.append("| | " + " | ".join(names) + " |")
        md.append("|---|" + "---|" * len(names))
        for label, group in (("L1-only control", control), ("adversarial", [t for t in trials if not _is_control(t)])):
            cells = []
            for i in range(len(names)):
                d = _describe([t.values[i] for t in group])
                cells.append("-" if d is None else f"{d['median']:.4g} [{d['q1']:.3g}, {d['q3']:.3g}] ({d['n']})")
            md.append(f"| {label} | " + " | ".join(cells) + " |")
    degenerate = [t for t in trials if trial_record(t).degenerate]
    if degenerate:
        md += ["", "## Degenerate runs", "",
               "The adversarial game did not happen in these trials (D at chance throughout, or a negligible share "
               "of G's gradient). A label, not a penalty: the instability score reads image quality alone; the "
               "loss_shape score adds 10 for them, so that it never ranks them calmer than a run whose D learned "
               "(docs/metrics.md).", ""]
        for t in degenerate:
            md.append(f"- #{t.number} [{', '.join(trial_record(t).tricks or []) or 'no tricks'}]"
                      f"{' (L1-only control)' if _is_control(t) else ''}: {trial_record(t).degenerate}")
    if curves_png:
        md += ["", "## Loss curves", "", f"![curves]({curves_png.name})"]
    refused = [t for t in study.trials if trial_record(t).refused]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED and not trial_record(t).refused]
    some_diverged = [t for t in trials if trial_record(t).diverged_seeds]
    if refused or diverged or pruned or some_diverged:
        md += ["", "## Not trained, diverged or pruned", ""]
        for t in some_diverged:
            runs = trial_record(t).seed_runs or []
            steps = ", ".join(f"seed {r['seed']} at step {r['diverged_step']}" for r in runs if "diverged_step" in r)
            md.append(f"- #{t.number}: {trial_record(t).diverged_seeds} of {len(runs)} seeds diverged ({steps}); its "
                      f"objectives are over the others, its instability counts each diverged seed as "
                      f"{DIVERGED_INSTABILITY:g}")
        for t in refused:
            md.append(f"- #{t.number}: refused: {trial_record(t).refused}")
        for t in diverged:
            md.append(f"- #{t.number}: diverged at step {trial_record(t).diverged_step} ({trial_record(t).diverged_value})")
        for t in pruned:
            md.append(f"- #{t.number}: {_pruned_text(t, names)}")
    md += ["", "All trials: [trials.csv](trials.csv). Each trial's run folder is in its `run_dir` column."]
    return _write_md(out, md)


def _write_md(out: Path, md: list[str]) -> Path:
    return atomic_write_bytes(out / "report.md", ("\n".join(md) + "\n").encode())


CSV_ATTRS = ("tricks", "run_dir", "instability", "loss_shape", "adv_grad_share", "degenerate", "seconds", "refused", "diverged_step", "reason", "samples",
             "pruned_step", "pruned_on", "pruned_value")


def trials_csv(study, names: list[str]) -> str:
    """Every trial: number, state, objectives, parameters and the attributes ganlab records."""

    trials = shown(study.trials)
    params = sorted({k for t in trials for k in t.params} - {"number", "state", *names})
    attrs_shown = [a for a in CSV_ATTRS if a not in names]  # an objective named instability: one column
    seeded = sorted({n for t in trials for n in (trial_record(t).seed_values or {})})
    per_seed_cols = [c for n in seeded for c in (f"{n}_per_seed", f"{n}_sd")]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", *names, *params, *attrs_shown, "seeds", "diverged_seeds", *per_seed_cols, "duration_s"])
    for t in trials:
        values = list(t.values) if t.values and len(t.values) == len(names) else [""] * len(names)
        if t.state == TrialState.PRUNED and not trial_record(t).pruned_on_objective:
            values = [""] * len(names)  # Optuna's value of a pruned trial is what the pruner watched
        attrs = []
        record = trial_record(t)
        for a in attrs_shown:
            v = getattr(record, a)
            v = "" if v is None else v
            attrs.append(";".join(v) if isinstance(v, list) else v)
        duration = t.duration.total_seconds() if t.duration else ""
        runs = trial_record(t).seed_runs or []
        per_seed = trial_record(t).seed_values or {}
        cells = []
        for n in seeded:
            v = per_seed.get(n, [])
            cells += [";".join(f"{x:.6g}" for x in v), f"{statistics.stdev(v):.6g}" if len(v) > 1 else ""]
        w.writerow([t.number, t.state.name, *values, *(t.params.get(p, "") for p in params), *attrs,
                    len(runs) or "", (trial_record(t).diverged_seeds if trial_record(t).diverged_seeds is not None else 0 if runs else ""), *cells, duration])
    return buf.getvalue()


def _rank_key(study, t) -> float:
    # Best to worst by the first objective (in its direction).
    v = t.values[0]
    return v if study.directions[0].name == "MINIMIZE" else -v


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


