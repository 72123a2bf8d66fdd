"""``ganlab tricks [NAME]``: the registered tricks, or one trick's documentation."""

from __future__ import annotations

import argparse
import difflib
import inspect

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ganlab.errors import UsageError
from ganlab.modes import GAN_MODES, L1_ONLY
from ganlab.trick._registry import registry  # the tricks themselves (and torch) load when it is called

DESCRIPTION = """\
List the tricks ganlab can use: the built-in ones and those of any installed package that
registers a trick under the entry-point group 'ganlab.tricks'. With NAME, show that trick's
documentation, its source paper, its parameters and what it cannot be combined with.

Switch tricks on with: ganlab train --trick NAME[:key=value,...] (repeatable)

Examples:
  ganlab tricks
  ganlab tricks wgan-gp
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help="show this trick's documentation")


# ---------------------------------------------------------------------------------------------
# What a trick cannot be combined with (computed by trying, so it is always the stack's truth)
# ---------------------------------------------------------------------------------------------


def incompatibilities(known: dict) -> dict[str, list[tuple[str, str]]]:
    """``{trick: [(other, sentence), ...]}`` where ``other`` is a trick or ``--gan-mode M``."""
    from ganlab.trick._stack import TrickStack

    out: dict[str, list[tuple[str, str]]] = {name: [] for name in known}
    instances = {}
    for name, cls in known.items():
        try:
            instances[name] = cls()
        except Exception as exc:  # a plugin whose defaults do not build
            out[name].append(("(defaults)", f"its default parameters are invalid: {exc}"))
    names = sorted(instances)
    for i, a in enumerate(names):
        for mode in (*GAN_MODES, L1_ONLY):  # the adversarial losses, then the L1-only control
            try:
                TrickStack([instances[a]], mode)
            except UsageError as exc:
                out[a].append((f"--gan-mode {mode}", str(exc)))
        for b in names[i + 1 :]:
            try:
                TrickStack([instances[a], instances[b]], "vanilla")
            except UsageError as exc:
                out[a].append((b, str(exc)))
                out[b].append((a, str(exc)))
    return out


def _conflict_cell(items: list[tuple[str, str]]) -> str:
    tricks = sorted(o for o, _ in items if not o.startswith("--"))
    modes = [o.split()[-1] for o, _ in items if o.startswith("--gan-mode")]
    parts = []
    if tricks:
        parts.append(", ".join(tricks))
    if modes:
        parts.append("--gan-mode " + "|".join(modes))
    return "\n".join(parts) or "-"


def _param_lines(cls) -> list[tuple[str, str, str, str, str, str]]:
    from ganlab.trick.params import param_infos

    rows = []
    for info in param_infos(cls.Params):
        default = str(info.default).lower() if isinstance(info.default, bool) else f"{info.default:g}" if isinstance(info.default, float) else str(info.default)
        space = info.search_space()
        if space is None:
            search = "fixed"
        elif space[0] == "categorical":
            search = "|".join(str(c).lower() if isinstance(c, bool) else str(c) for c in space[1])
        else:
            search = f"{space[1]:g}..{space[2]:g}" + (" (log)" if space[3] else "")
        rows.append((info.key, default, info.describe_range(), search, info.help, info.describe_condition()))
    return rows


def _param_summary(key: str, default: str, allowed: str, searched: str, _help: str, condition: str) -> str:
    text = f"{key} = {default}  {allowed}"
    if set(searched.split("|")) != set(allowed.split("|")):
        text += f"  search {searched}"
    if condition:
        text += f"  if {condition}"
    return text


def _console():
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(width=160, soft_wrap=False)
    return console


# ---------------------------------------------------------------------------------------------
# The two views
# ---------------------------------------------------------------------------------------------


def list_tricks(console, known: dict) -> None:
    conflicts = incompatibilities(known)
    table = Table(title=f"ganlab tricks ({len(known)} registered)", show_lines=True, title_justify="left", expand=True)
    table.add_column("trick", style="bold cyan", no_wrap=True)
    table.add_column("what it does", ratio=3)
    table.add_column("hooks (order)", ratio=2)
    table.add_column(escape("parameter = default  [allowed]  searched range"), ratio=5)
    table.add_column("cannot be combined with", width=26)
    for name, cls in known.items():
        params = "\n".join(_param_summary(*row) for row in _param_lines(cls)) or "-"
        hooks = ", ".join(h for h in cls.hooks_used() if h != "state_dict") or "-"
        table.add_row(
            escape(name),
            escape(cls.summary or "-"),
            escape(f"{hooks} ({cls.order})"),
            escape(params),
            escape(_conflict_cell(conflicts[name])),
        )
    console.print(table)
    console.print("Details: ganlab tricks NAME.   Use: ganlab train --trick NAME[:key=value,...]", highlight=False, markup=False)


def show_trick(console, known: dict, name: str) -> None:
    cls = known[name]
    doc = inspect.cleandoc(cls.__doc__ or "") or cls.summary or "(no documentation)"
    module = inspect.getmodule(cls)
    source = module.__name__ if module else "?"
    console.print(Panel(Text(doc), title=f"[bold cyan]{escape(name)}[/]", subtitle=escape(f"{source}.{cls.__qualname__}"), expand=False), highlight=False)
    if cls.paper:
        console.print(f"[bold]Source:[/] {escape(cls.paper)}", highlight=False)
    hooks = ", ".join(cls.hooks_used()) or "none"
    console.print(f"[bold]Hooks:[/] {hooks}   [bold]order:[/] {cls.order}", highlight=False)
    rows = _param_lines(cls)
    if rows:
        table = Table(title="parameters", title_justify="left")
        conditional = any(row[5] for row in rows)
        for col in ("name", "default", "allowed", "searched", "meaning", *(("acts only when",) if conditional else ())):
            table.add_column(col)
        for row in rows:
            table.add_row(*map(escape, row if conditional else row[:5]))
        console.print(table)
        if conditional:
            console.print("A parameter that acts only when another has a given value is drawn by a study only then.",
                          highlight=False, markup=False)
    else:
        console.print("[bold]Parameters:[/] none", highlight=False)
    if cls.identity is None:
        console.print("[bold]Identity setting:[/] none (the trick always changes the step)", highlight=False)
    else:
        ident = ", ".join(f"{k}={v}" for k, v in cls.identity.items()) or "any parameters (training is unchanged)"
        console.print(f"[bold]Identity setting:[/] {escape(ident)}", highlight=False)
    for label, caps in (("Provides", cls.provides), ("Replaces", cls.replaces), ("Removes", cls.removes), ("Requires", cls.requires)):
        if caps:
            console.print(f"[bold]{label}:[/] {escape(', '.join(sorted(caps)))}", highlight=False)
    conflicts = incompatibilities(known)[name]
    if conflicts:
        console.print("[bold]Cannot be combined with:[/]", highlight=False)
        for _, sentence in conflicts:
            console.print(f"  - {sentence}", highlight=False, markup=False)
    example = ",".join(f"{k}={d}" for k, d, *_ in rows[:2])
    console.print("[bold]Use:[/] " + escape(f"ganlab train --trick {name}" + (f":{example}" if example else "")), highlight=False)


def run(args: argparse.Namespace) -> int:
    known = registry()
    console = _console()
    if args.name is None:
        list_tricks(console, known)
        return 0
    if args.name not in known:
        close = difflib.get_close_matches(args.name, list(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known) or 'none'}"
        raise UsageError(f"ganlab tricks {args.name}: no such trick{hint}")
    show_trick(console, known, args.name)
    return 0
