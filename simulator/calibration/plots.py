"""Figures of the simulator's calibration, for docs/simulator-calibration.md.

Run: ``python3 -m ranpd.simulator.calibration.plots --out docs/calibration`` (needs matplotlib, part
of the ``train`` extra). Writes:

- ``geometry.png``: downlink geometry CDF, ours (TR 38.901 Table 7.8-1 UE mix; all outdoor; the legacy
  7 omni sites) against the 3GPP §7.8.1 calibration reference;
- ``bler.png``: code-block BLER of three MCS at three block sizes, the fitted curves (``BlerCurves`` at
  the `5g-lena` level) over the 5G-LENA link-level points they were fitted on, and the same shapes at
  the default `pdsch-awgn` level (dashed);
- ``interference.png``: one UE's SINR per subband over 400 slots under each interference model.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ranpd.simulator import phy
from ranpd.simulator.calibration.geometry import TABLE_7_8_1_INDOOR, load_reference, simulated_geometry
from ranpd.simulator.tables import MCS_TABLES

BLER_EXAMPLES = ((2, 4), (2, 9), (2, 17))        # (MCS table, MCS): QPSK, 16QAM, 64QAM
BLOCK_SIZES = (512, 2048, 8192)


def plot_geometry(path: Path, n_ues: int, seed: int) -> None:
    import matplotlib.pyplot as plt

    reference = load_reference()
    envs = sorted({env for env, fc in reference if fc == 6.0})
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), sharey=True)
    for ax, env in zip(np.atleast_1d(axes), envs):
        pct, ref = reference[(env, 6.0)]
        ax.plot(ref, pct / 100, "ko", ms=4, label="3GPP TR 38.901 §7.8.1 (median of companies)")
        for label, kw in (("ours, Table 7.8-1 UEs (80% indoor)", dict(indoor_fraction=TABLE_7_8_1_INDOOR)),
                          ("ours, all outdoor (scenario default)", {}),
                          ("legacy 7 omni sites", dict(layout="legacy7"))):
            g = np.sort(simulated_geometry(env, 6.0, n_ues, seed, **kw))
            ax.plot(g, np.arange(1, g.size + 1) / g.size, label=label)
        ax.set(title=f"{env}, 6 GHz, full load", xlabel="geometry (SIR, dB)", xlim=(-10, 40))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("CDF")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bler(path: Path) -> None:
    import matplotlib.pyplot as plt

    points = phy.read_data_csv(phy.DATA_DIR / "bler_reference_points.csv")
    fig, axes = plt.subplots(1, len(BLER_EXAMPLES), figsize=(5 * len(BLER_EXAMPLES), 3.6), sharey=True)
    for ax, (table, mcs) in zip(axes, BLER_EXAMPLES):
        rows = MCS_TABLES[table]
        qm, rate = rows.qm[mcs], rows.code_rate[mcs] * 1024
        fitted, shipped = phy.mcs_curves(table, "5g-lena"), phy.mcs_curves(table)
        for k in BLOCK_SIZES:
            here = (points["qm"] == qm) & np.isclose(points["rate_x1024"], rate)
            sizes = np.unique(points["cbs_bits"][here])
            nearest = sizes[np.argmin(np.abs(np.log(sizes / k)))]
            sel = here & (points["cbs_bits"] == nearest)
            line, = ax.semilogy(points["sinr_db"][sel], np.maximum(points["bler"][sel], 1e-4), "o", ms=4)
            x = np.linspace(points["sinr_db"][sel].min() - 0.5, points["sinr_db"][sel].max() + 0.5, 200)
            ax.semilogy(x, np.maximum(fitted.tbler(x, mcs, nearest, 1), 1e-4), color=line.get_color(),
                        label=f"K = {int(nearest)}: fit (5g-lena level)")
            shift = float(np.diff([shipped.sinr_db_at(0.5, mcs, nearest), fitted.sinr_db_at(0.5, mcs, nearest)])[0])
            ax.semilogy(x - shift, np.maximum(shipped.tbler(x - shift, mcs, nearest, 1), 1e-4), "--",
                        color=line.get_color(), label=f"K = {int(nearest)}: default level (-{shift:.1f} dB)")
        ax.set(title=f"MCS {mcs} (table {table}, Qm {qm}, R {rate:g}/1024)", xlabel="SINR (dB)", ylim=(1e-3, 1.2))
        ax.set_xlim(right=points["sinr_db"][(points["qm"] == qm) & np.isclose(points["rate_x1024"], rate)].max() + 0.5)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("code-block BLER (dots: 5G-LENA link level)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_interference(path: Path, seed: int) -> None:
    import matplotlib.pyplot as plt

    from ranpd.simulator.engine import Simulation
    from ranpd.simulator.scenarios import BUILTIN_SCENARIOS

    base = BUILTIN_SCENARIOS["uma-mid-vehicular"]
    models = ("onoff", "always_on", "scheduled")
    fig, axes = plt.subplots(len(models), 1, figsize=(9, 6.5), sharex=True, sharey=True)
    for ax, model in zip(axes, models):
        sim = Simulation(base.model_copy(update={"interference_model": model}), seed=seed)
        ue = np.array([int(np.argsort(sim._inr.sum(axis=1))[sim.n_ues // 2])])   # a median-interference UE
        sinr = np.stack([10 * np.log10(sim._sinr(ue, t)[0]) for t in range(400)])
        image = ax.imshow(sinr.T, aspect="auto", origin="lower", cmap="viridis", vmin=-10, vmax=30,
                          extent=(0, 400 * sim.slot_duration_s * 1e3, 0, sim.scenario.n_subbands))
        ax.set(title=f"interference_model = {model}", ylabel="subband")
    axes[-1].set_xlabel(f"time (ms), {base.name}, one UE")
    fig.colorbar(image, ax=axes, label="SINR (dB)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/calibration"),
              show_default=True)
@click.option("--ues", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(out: Path, ues: int, seed: int) -> None:
    """Draw the calibration figures (geometry, BLER, interference) into OUT."""
    out.mkdir(parents=True, exist_ok=True)
    plot_geometry(out / "geometry.png", ues, seed)
    plot_bler(out / "bler.png")
    plot_interference(out / "interference.png", seed)
    click.echo(f"wrote {out}/geometry.png, bler.png, interference.png")


if __name__ == "__main__":
    main()
