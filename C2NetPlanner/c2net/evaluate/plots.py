"""PNG figures of ``c2net evaluate`` (matplotlib, Agg canvas; no pyplot global state).

Every figure carries the research-use disclaimer in its footer.
"""

from __future__ import annotations

import re
from typing import Dict, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import DISCLAIMER

DPI = 120
COLOURS = ["#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def slug(name: str) -> str:
    """File-name-safe version of a rater name."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return s or "reader"


def _save(fig: Figure, path: str) -> None:
    fig.text(0.01, 0.005, DISCLAIMER, fontsize=7, color="#555555", ha="left", va="bottom")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)


def _ci_text(ci) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" ({ci[0]:.3f}-{ci[1]:.3f})"


def _roc_axes(ax, title: str) -> None:
    """Chance diagonal, unit square, axis labels, title, legend and grid of a ROC panel."""
    ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=7.5)
    ax.grid(alpha=0.3)


def roc_figure(primary: Dict[str, object], cv: Optional[Dict[str, object]], path: str,
               title: str = "ROC: high risk vs low risk") -> None:
    """Test-set ROC of the model and the MPD rule with reader operating points; with folds a
    second panel shows each fold's ROC and the mean ROC +/- 1 SD."""
    panels = 2 if cv and cv.get("mean_roc") else 1
    fig = Figure(figsize=(6.2 * panels, 6.0))
    ax = fig.add_subplot(1, panels, 1)
    raters = primary["raters"]
    colour_i = 0
    for name, r in raters.items():
        auc = r["auc"]
        label_auc = f"AUC {auc['value']:.3f}{_ci_text(auc['ci_delong'])}"
        if r["kind"] == "model":
            ax.plot(r["roc"]["fpr"], r["roc"]["tpr"], color="#1f77b4", lw=2.2,
                    label=f"model: {label_auc}")
            sens, spec = r["sensitivity"]["value"], r["specificity"]["value"]
            ax.plot([1 - spec], [sens], "o", color="#1f77b4", ms=7, mfc="white", mew=2,
                    label=f"model at p >= {r['threshold']:g}")
        elif r["kind"] == "mpd_rule":
            ax.plot(r["roc"]["fpr"], r["roc"]["tpr"], color="#ff7f0e", lw=1.8,
                    ls="--", label=f"measured MPD: {label_auc}")
        else:
            c = COLOURS[colour_i % len(COLOURS)]
            colour_i += 1
            sens, spec = r["sensitivity"]["value"], r["specificity"]["value"]
            exp = f" [{r['experience']}]" if r.get("experience") else ""
            ax.plot([1 - spec], [sens], "s", color=c, ms=8,
                    label=f"{name}{exp}: sens {sens:.2f}, spec {spec:.2f}")
    _roc_axes(ax, f"{title}\n{primary['n_sides']} sides, {primary['n_patients']} patients")
    if panels == 2:
        ax2 = fig.add_subplot(1, 2, 2)
        for f in cv["folds"]:
            if f.get("roc"):
                ax2.plot(f["roc"]["fpr"], f["roc"]["tpr"], color="#888888",
                         lw=0.8, alpha=0.6)
        mr = cv["mean_roc"]
        fpr, mean, sd = (np.asarray(mr[k]) for k in ("fpr", "tpr_mean", "tpr_sd"))
        s = cv["summary"]["auc"]
        ax2.plot(fpr, mean, color="#1f77b4", lw=2.2,
                 label=f"mean ROC; fold AUC {s['mean']:.3f} +/- {s['sd']:.3f} "
                       f"(range {s['min']:.3f}-{s['max']:.3f})")
        ax2.fill_between(fpr, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1),
                         color="#1f77b4", alpha=0.15, label="+/- 1 SD")
        ax2.plot([], [], color="#888888", lw=0.8, label=f"{cv['n_folds']} folds")
        _roc_axes(ax2, "Cross-validation: ROC per fold and mean ROC")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _save(fig, path)


def confusion_figure(name: str, entry: Dict[str, object], path: str) -> None:
    """2x2 confusion matrix (rows: truth, columns: call; high risk first)."""
    c = entry["confusion"]
    table = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(table, cmap="Blues", vmin=0, vmax=max(int(table.max()), 1))
    row_tot = table.sum(axis=1, keepdims=True).clip(min=1)
    for i in range(2):
        for j in range(2):
            dark = table[i, j] > table.max() * 0.6
            ax.text(j, i, f"{table[i, j]}\n({100 * table[i, j] / row_tot[i, 0]:.0f}% of row)",
                    ha="center", va="center", fontsize=11,
                    color="white" if dark else "black")
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["high risk", "low risk"])
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["high risk", "low risk"])
    ax.set_xlabel("call")
    ax.set_ylabel("truth")
    acc = entry["accuracy"]["value"]
    exp = f" [{entry['experience']}]" if entry.get("experience") else ""
    ax.set_title(f"{name}{exp}\naccuracy {acc:.3f}, sens {entry['sensitivity']['value']:.3f}, "
                 f"spec {entry['specificity']['value']:.3f}", fontsize=9.5)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _save(fig, path)


def reliability_figure(cal: Dict[str, object], p_high_risk: np.ndarray, path: str) -> None:
    """Reliability diagram (observed vs mean predicted per bin, Wilson CIs) + histogram."""
    fig = Figure(figsize=(5.6, 6.4))
    ax = fig.add_axes((0.13, 0.36, 0.82, 0.56))
    rows = [r for r in cal["reliability"] if r["count"]]
    x = np.array([r["mean_predicted"] for r in rows])
    y = np.array([r["observed_fraction"] for r in rows])
    lo = np.array([r["observed_ci_wilson"][0] for r in rows])
    hi = np.array([r["observed_ci_wilson"][1] for r in rows])
    ax.plot([0, 1], [0, 1], color="#999999", ls=":", lw=1, label="perfect calibration")
    ax.errorbar(x, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)], fmt="o-", color="#1f77b4", capsize=3,
                label="observed (Wilson 95% CI)")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed fraction high risk")
    ax.set_title(f"Reliability: Brier {cal['brier']:.3f}, ECE {cal['ece']:.3f} "
                 f"({cal['ece_bins']} equal-width bins)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_xticklabels([])
    ax2 = fig.add_axes((0.13, 0.09, 0.82, 0.22))
    ax2.hist(p_high_risk, bins=np.linspace(0, 1, cal["ece_bins"] + 1), color="#1f77b4",
             alpha=0.7, edgecolor="white")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("predicted probability of high risk")
    ax2.set_ylabel("sides")
    _save(fig, path)


def bland_altman_figure(agr: Dict[str, object], path: str) -> None:
    """Bland-Altman plot: difference (automatic - reference) against the mean, with LoA."""
    ba = agr["bland_altman"]
    icc = agr["icc"]
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    means, diffs = np.asarray(ba["means"]), np.asarray(ba["differences"])
    ax.scatter(means, diffs, s=18, color="#1f77b4", alpha=0.8)
    xr = (means.min() - 0.2, means.max() + 0.2)
    for key, label, style in (("bias", "bias", "-"), ("loa_upper", "upper LoA", "--"),
                              ("loa_lower", "lower LoA", "--")):
        ci = ba["bias_ci"] if key == "bias" else ba[f"{key}_ci"]
        ax.axhline(ba[key], color="#d62728", ls=style, lw=1.4)
        ax.axhspan(ci[0], ci[1], color="#d62728", alpha=0.10)
        ax.text(xr[1], ba[key], f" {label} {ba[key]:+.2f} mm", va="center", fontsize=8,
                color="#d62728")
    ax.axhline(0, color="#999999", lw=0.8, ls=":")
    ax.set_xlim(*xr)
    ax.set_xlabel("mean of automatic and reference MPD (mm)")
    ax.set_ylabel("automatic - reference MPD (mm)")
    ci = icc["ci"]
    ci_txt = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci[0] is not None else ""
    ax.set_title(f"MPD agreement (n = {ba['n']}): bias {ba['bias']:+.2f} mm, "
                 f"LoA {ba['loa_lower']:+.2f} to {ba['loa_upper']:+.2f} mm\n"
                 f"ICC(2,1) {icc['icc']:.3f}{ci_txt}; shaded: 95% CIs", fontsize=9.5)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.04, 0.88, 1))
    _save(fig, path)
