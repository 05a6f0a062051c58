"""BLER-vs-SINR reference from 5G-LENA's LDPC link-level tables, fitted into the simulator's data files.

Run: ``python3 -m ranpd.simulator.calibration.bler_reference --source <nr checkout | the two .cc files>``
(needs scipy, part of the ``test`` extra).

Source: the ns-3 ``nr`` module (5G-LENA, CTTC), ``model/nr-eesm-t1.cc`` and ``model/nr-eesm-t2.cc``:
code-block BLER against AWGN SINR (dB) per MCS of TS 38.214 Tables 5.1.3.1-1/-2, LDPC base graph and
block size, from InterDigital's NR-compliant link-level simulator, and the EESM β per MCS calibrated on
TDL-A/TDL-D channels (S. Lagén et al., "New Radio Physical Layer Abstraction for System-Level
Simulations of 5G Networks", IEEE ICC 2020). The data files produced here were generated from the
public mirror github.com/QiuYukang/5G-LENA at commit 25752db92eb40f5be400ff2dde158f98322b63c8
(nr v4.1.1-110, 2026-01-20); the tables are unchanged there since 2025-02 (a250ef8 only moved the MCS
tables). Only derived numbers are written, never the ns-3 sources.

Per curve (table, MCS, base graph, block size K) a logistic in dB, BLER(x) = 1 / (1 + exp((x − x50)/s)),
is fitted by minimising the binomial cross-entropy of the reference points (points at BLER 0 or 1
included). Per (Qm, R) the x50 and s sequences over K are then projected on non-increasing sequences
(weighted isotonic regression, weights = points per curve), the reference's trend that longer blocks
need no more SINR and have no wider waterfall; its departures (per-size scatter of ±0.1–0.3 dB) are
taken as link-level noise. Files written under ``simulator/data/``:

- ``bler_curves.csv``: table, mcs, qm, rate_x1024, base_graph, cbs_bits, n_points, x50_db, scale_db,
  resid_db (RMS horizontal distance, dB, from the 0 < BLER < 1 points to the fitted curve),
  x50_mono_db, scale_mono_db (after the isotonic step; what ``phy.BlerCurves`` uses).
- ``bler_reference_points.csv``: the raw points, once per distinct (Qm, R) (table 2's rows that
  repeat a table-1 row hold identical data and are not repeated).
- ``eesm_beta.csv``: table, mcs, qm, rate_x1024, beta.
"""
from __future__ import annotations

import ast
import csv
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import click
import numpy as np
from scipy.optimize import isotonic_regression, minimize

from ranpd.simulator.phy import BlerCurves, load_reference, read_data_csv
from ranpd.simulator.tables import MCS_TABLES

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TABLE_FILES = {1: "nr-eesm-t1.cc", 2: "nr-eesm-t2.cc"}
DEFAULT_LABEL = ("github.com/QiuYukang/5G-LENA (ns-3 nr module, CTTC) model/nr-eesm-t1.cc, "
                 "model/nr-eesm-t2.cc")


def parse_eesm_table(text: str) -> tuple[list, list[float]]:
    """(curves, beta) from one nr-eesm-tN.cc: curves[bg - 1][mcs] = [(cbs, sinr_db list, bler list)]."""
    text = re.sub(r"//[^\n]*", "", text)
    body = re.search(r"SimulatedBlerFromSINR\s+\w+\s*=\s*(\{.*?\});", text, re.S).group(1)
    body = re.sub(r"(\d)U\b", r"\1", body.replace("NrEesmErrorModel::DoubleTuple", ""))
    nested = ast.literal_eval(body.replace("{", "[").replace("}", "]"))
    curves = [[[(int(cbs), sinr, bler) for cbs, (sinr, bler) in per_mcs if cbs > 0] for per_mcs in per_bg]
              for per_bg in nested]
    beta = re.search(r"BetaTable\d\s*=\s*\{([^}]*)\}", text).group(1)
    return curves, [float(v) for v in beta.split(",") if v.strip()]


def fit_logistic(sinr_db, bler) -> tuple[float, float, float]:
    """(x50, s, resid_db): cross-entropy fit of BLER = 1/(1 + exp((x − x50)/s)) to one curve's points."""
    x, p = np.asarray(sinr_db, np.float64), np.clip(np.asarray(bler, np.float64), 0.0, 1.0)

    def loss(theta):
        z = (x - theta[0]) / np.exp(theta[1])
        return np.sum(p * np.logaddexp(0.0, z) + (1.0 - p) * np.logaddexp(0.0, -z))

    start = [x[np.argmin(np.abs(p - 0.5))], np.log(0.2)]
    theta = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10}).x
    x50, s = float(theta[0]), float(np.exp(theta[1]))
    inside = (p > 0) & (p < 1)
    resid = x[inside] - (x50 + s * np.log((1.0 - p[inside]) / p[inside]))
    return x50, s, float(np.sqrt(np.mean(resid ** 2))) if inside.any() else float("nan")


def crossing_db(sinr_db, bler, target: float) -> float:
    """SINR where a reference curve crosses `target` BLER: linear in logit(BLER) between the two
    points with 0 < BLER < 1 that bracket it; NaN when no such pair does."""
    x, p = np.asarray(sinr_db, np.float64), np.asarray(bler, np.float64)
    keep = (p > 0) & (p < 1)
    x, logit = x[keep], np.log((1.0 - p[keep]) / p[keep])
    goal = np.log((1.0 - target) / target)
    for i in range(len(x) - 1):
        lo, hi = logit[i] - goal, logit[i + 1] - goal
        if lo * hi <= 0 and logit[i] != logit[i + 1]:
            return float(x[i] + (goal - logit[i]) * (x[i + 1] - x[i]) / (logit[i + 1] - logit[i]))
    return float("nan")


def _rate_x1024(table: int, mcs: int) -> float:
    return round(float(MCS_TABLES[table].code_rate[mcs]) * 1024.0, 1)


def build_rows(sources: dict[int, str]) -> tuple[list[dict], list[dict], list[dict]]:
    """(curve fits, reference points, β rows) from the two tables' source texts."""
    fits, points, betas, seen = [], [], [], {}
    for table, text in sources.items():
        curves, beta = parse_eesm_table(text)
        mcs_table = MCS_TABLES[table]
        if len(beta) != mcs_table.size:
            raise ValueError(f"table {table}: {len(beta)} β values for {mcs_table.size} MCS rows")
        for mcs in range(mcs_table.size):
            key = (int(mcs_table.qm[mcs]), _rate_x1024(table, mcs))
            betas.append({"table": table, "mcs": mcs, "qm": key[0], "rate_x1024": key[1], "beta": beta[mcs]})
            per_row = [(bg + 1, cbs, s, b) for bg in range(2) for cbs, s, b in curves[bg][mcs]]
            if key in seen and seen[key] != per_row:
                raise ValueError(f"(Qm, R·1024) = {key} has different curves in the two tables")
            new = key not in seen
            seen[key] = per_row
            for bg, cbs, sinr, bler in per_row:
                x50, s, resid = fit_logistic(sinr, bler)
                fits.append({"table": table, "mcs": mcs, "qm": key[0], "rate_x1024": key[1], "base_graph": bg,
                             "cbs_bits": cbs, "n_points": len(sinr), "x50_db": x50, "scale_db": s,
                             "resid_db": resid})
                if new:
                    points += [{"qm": key[0], "rate_x1024": key[1], "base_graph": bg, "cbs_bits": cbs,
                                "sinr_db": x, "bler": p} for x, p in zip(sinr, bler)]
    _monotone_in_block_size(fits)
    return fits, points, betas


def _monotone_in_block_size(fits: list[dict]) -> None:
    """Adds x50_mono_db / scale_mono_db: per (table, MCS), non-increasing in K (weighted isotonic)."""
    groups: dict[tuple, list[dict]] = {}
    for row in fits:
        groups.setdefault((row["table"], row["mcs"]), []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: r["cbs_bits"])
        weights = np.array([r["n_points"] for r in rows], np.float64)
        for name in ("x50", "scale"):
            values = np.array([r[f"{name}_db"] for r in rows])
            mono = isotonic_regression(values, weights=weights, increasing=False).x
            for r, v in zip(rows, mono):
                r[f"{name}_mono_db"] = float(v)


def _write_csv(path: Path, header: Iterable[str], rows: list[dict], fmt: dict[str, str]) -> None:
    cols = list(fmt)
    with open(path, "w", newline="") as f:
        for line in header:
            f.write(f"# {line}\n")
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(cols)
        for row in rows:
            writer.writerow([format(row[c], fmt[c]) for c in cols])


def _read_sources(source: tuple[Path, ...]) -> dict[int, str]:
    files = {}
    for path in source:
        candidates = [path] if path.is_file() else [path / "model", path]
        for table, name in TABLE_FILES.items():
            for base in candidates:
                hit = base if base.is_file() else base / name
                if hit.name == name and hit.is_file():
                    files[table] = hit.read_text()
    missing = sorted(set(TABLE_FILES) - set(files))
    if missing:
        raise click.UsageError(f"--source: no {', '.join(TABLE_FILES[t] for t in missing)} found")
    return files


def _git_label(source: tuple[Path, ...]) -> str | None:
    """The source named with its commit when --source is the root of an nr git checkout."""
    for path in source:
        if not (path / "model" / TABLE_FILES[1]).is_file():
            continue
        try:
            commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            continue
        return f"{DEFAULT_LABEL} at commit {commit}"
    return None


def fit_summary(points: dict[str, np.ndarray], data_dir: Path = DATA_DIR) -> dict[str, dict[str, float]]:
    """|model − reference| (dB) of the 10% and 1% points and of the 90%→10% width over every reference
    curve that brackets them; `points` as in bler_reference_points.csv, model = ``phy.BlerCurves`` built
    from the files in `data_dir` at the reference's own level (`5g-lena`)."""
    ids = np.stack([points[c] for c in ("qm", "rate_x1024", "base_graph", "cbs_bits")], axis=1)
    keys, curve_of = np.unique(ids, axis=0, return_inverse=True)
    curves = BlerCurves.for_rows(keys[:, 0], keys[:, 1] / 1024.0, reference=load_reference(data_dir), level="5g-lena")
    rows = np.arange(len(keys))
    targets = (0.1, 0.9, 0.01)
    model = {t: curves.sinr_db_at(t, rows, keys[:, 3]) for t in targets}
    ref = {t: np.empty(len(keys)) for t in targets}
    for i in rows:
        on = curve_of.ravel() == i
        for t in targets:
            ref[t][i] = crossing_db(points["sinr_db"][on], points["bler"][on], t)
    errors = {"x10": model[0.1] - ref[0.1], "x01": model[0.01] - ref[0.01],
              "width": (model[0.1] - model[0.9]) - (ref[0.1] - ref[0.9])}
    out = {}
    for name, e in errors.items():
        e = e[np.isfinite(e)]
        out[name] = {"curves": int(e.size), "median_abs": float(np.median(np.abs(e))),
                     "p90_abs": float(np.percentile(np.abs(e), 90)), "max_abs": float(np.max(np.abs(e))),
                     "mean": float(np.mean(e))}
    return out


@click.command()
@click.option("--source", "source", type=click.Path(exists=True, path_type=Path), multiple=True, required=True,
              help="an nr (5G-LENA) checkout, its model/ folder, or the nr-eesm-t1.cc / nr-eesm-t2.cc files")
@click.option("--label", default=None, help="source named in the CSV headers (default: from git, else generic)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DATA_DIR,
              show_default=True)
def main(source: tuple[Path, ...], label: str | None, out_dir: Path) -> None:
    """Fit the 5G-LENA BLER tables and write bler_curves.csv, bler_reference_points.csv, eesm_beta.csv."""
    label = label or _git_label(source) or DEFAULT_LABEL
    fits, points, betas = build_rows(_read_sources(source))
    out_dir.mkdir(parents=True, exist_ok=True)
    origin = [f"Source: {label}.",
              "Link-level LDPC code-block BLER vs AWGN SINR (InterDigital link-level simulator; Lagen et al., "
              "IEEE ICC 2020).",
              "Regenerate: python3 -m ranpd.simulator.calibration.bler_reference --source <nr checkout>"]
    _write_csv(out_dir / "bler_curves.csv", origin + [
        "Per curve: BLER(x) = 1/(1+exp((x - x50_db)/scale_db)), x = SINR in dB, binomial cross-entropy fit;",
        "resid_db = RMS SINR distance of the 0<BLER<1 points from the fit; *_mono_db: non-increasing in",
        "cbs_bits per (table, mcs) (weighted isotonic regression), the values phy.BlerCurves uses."],
        fits, {"table": "d", "mcs": "d", "qm": "d", "rate_x1024": "g", "base_graph": "d", "cbs_bits": "d",
               "n_points": "d", "x50_db": ".4f", "scale_db": ".4f", "resid_db": ".4f", "x50_mono_db": ".4f",
               "scale_mono_db": ".4f"})
    _write_csv(out_dir / "bler_reference_points.csv", origin + [
        "Raw reference points, once per distinct (qm, rate_x1024); rate_x1024 = TS 38.214 R x 1024."],
        points, {"qm": "d", "rate_x1024": "g", "base_graph": "d", "cbs_bits": "d", "sinr_db": ".5g",
                 "bler": ".7g"})
    _write_csv(out_dir / "eesm_beta.csv", origin[:1] + [
        "EESM beta per MCS (BetaTable1/BetaTable2), calibrated on TDL-A/TDL-D (Lagen et al., ICC 2020).",
        origin[2]], betas, {"table": "d", "mcs": "d", "qm": "d", "rate_x1024": "g", "beta": "g"})
    click.echo(f"{len(fits)} curves, {len(points)} reference points, {len(betas)} beta rows -> {out_dir}")
    points = read_data_csv(out_dir / "bler_reference_points.csv")
    for name, stats in fit_summary(points, out_dir).items():
        click.echo(f"{name:>5}: {stats['curves']} curves, |model - reference| median {stats['median_abs']:.3f} dB, "
                   f"p90 {stats['p90_abs']:.3f}, max {stats['max_abs']:.3f}, mean {stats['mean']:+.3f}")


if __name__ == "__main__":
    main()
