"""The `ranpd` command line: one group; each subsystem contributes its commands.

Commands load lazily, so `ranpd --help` and the runtime commands never import torch (only
`train` and `evaluate` need the `train` extra).
"""
from __future__ import annotations

import importlib
import importlib.util

import click

# command name -> "module:attribute" of a click command
COMMANDS = {
    "scenarios": "ranpd.simulator.cli:scenarios",
    "simulate": "ranpd.simulator.cli:simulate",
    "tbs": "ranpd.simulator.cli:tbs",
    "bench": "ranpd.cli.bench:bench",
    "demo": "ranpd.cli.demo:demo",
    "e2node": "ranpd.cli.e2node:e2node_command",
    "xapp": "ranpd.xapp.cli:xapp",
    "train": "ranpd.training.cli:train",
    "evaluate": "ranpd.training.cli:evaluate",
    "export": "ranpd.xapp.baseband:export",
}

SUMMARIES = {
    "scenarios": "List the built-in scenarios and their key parameters.",
    "simulate": "Run a scenario with ILLA or OLLA and print its KPIs.",
    "tbs": "Transport block size per TS 38.214 §5.1.3.2.",
    "bench": "Benchmarks: simulator speed, xApp latency, student inference.",
    "demo": "The main job: xApp on the shipped student, simulator in the loop, KPI table.",
    "e2node": "Run the simulator as an E2 node against an xApp.",
    "xapp": "Start the xApp (E2 stream server + REST).",
    "train": "Train teachers, distil students, export ONNX, write the report (needs torch).",
    "evaluate": "Evaluate a model against OLLA on a scenario (needs the train extra).",
    "export": "Export the student as dependency-free C99 for the baseband (export c).",
}


def require_extra(command: str, extra: str, *modules: str) -> None:
    """Stop `command` with a one-line error when a module of the `extra` install is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(f"`ranpd {command}` needs the '{extra}' extra ({', '.join(missing)} not "
                                   f"installed): python3 -m pip install 'ranpd[{extra}]' (in a checkout: -e '.[{extra}]')")


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked."""

    commands_map: dict[str, str] = COMMANDS
    summaries: dict[str, str] = SUMMARIES

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands_map)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands_map:
            return None
        module, attribute = self.commands_map[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, self.summaries[name]) for name in self.commands_map])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ranpd")
def main() -> None:
    """ranpd: reinforcement-learning link adaptation for 5G NR, distilled into tiny students
    and served as an O-RAN near-RT RIC xApp.

    Every command takes --help. Commands that report figures take --json for machines.
    """
