"""TensorBoard scalars of a training run, beside its JSON logs (the `tensorboard` extra).

One TensorBoard run per model under `<out>/tensorboard/<model>/`, so the curves of every teacher
overlay: `dqn/<field>` per logged env step (loss, mean_reward, epsilon, buffer), `distill/<field>`
per DAgger round (kl, train_argmax_agreement, dataset, actor_reward/<group>), and
`eval/<section>/<kpi>`: the policy's KPI averaged over the section's scenarios. Written as each
stage ends (the jobs may run on other machines). Without the extra: one log line, nothing written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

console = Console(stderr=True)
TENSORBOARD_INSTALL = "pip install 'ranpd[tensorboard]'"
EVAL_KPIS = ("throughput_mbps", "bler_first_tx", "bler_residual", "throughput_p5_mbps")


class Scalars:
    """SummaryWriters under `directory`, one per model; a no-op without tensorboard."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.writers: dict[str, Any] = {}
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            console.log(f"TensorBoard scalars off (tensorboard is not installed): {TENSORBOARD_INSTALL}", markup=False)
            self.summary_writer = None
        else:
            self.summary_writer = SummaryWriter

    def __enter__(self) -> "Scalars":
        return self

    def __exit__(self, *exc) -> None:
        for writer in self.writers.values():
            writer.close()

    def _add(self, run: str, tag: str, value: Any, step: int) -> None:
        if self.summary_writer is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        if run not in self.writers:
            self.writers[run] = self.summary_writer(str(self.directory / run))
        self.writers[run].add_scalar(tag, value, step)

    def training_log(self, model: str, log: list[dict]) -> None:
        """A DQN log (rows keyed by `step`) or a distillation log (rows keyed by `round`)."""
        for row in log:
            prefix, step = ("dqn", row["step"]) if "step" in row else ("distill", row["round"])
            for field, value in row.items():
                if field in ("step", "round"):
                    continue
                for tag, v in (value.items() if isinstance(value, dict) else [("", value)]):
                    self._add(model, f"{prefix}/{field}" + (f"/{tag}" if tag else ""), v, step)

    def evaluation(self, tables: dict[str, dict]) -> None:
        """KPIs[section][scenario][policy]: each policy's scenario mean per section and KPI."""
        for section, table in tables.items():
            policies = {policy for row in table.values() for policy in row}
            for policy in sorted(policies):
                rows = [row[policy] for row in table.values() if policy in row]
                for kpi in EVAL_KPIS:
                    self._add(policy, f"eval/{section}/{kpi}", float(np.mean([r[kpi] for r in rows])), 0)
