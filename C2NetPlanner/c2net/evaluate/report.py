"""Files written by ``c2net evaluate``: metrics.json, metrics.csv and summary.html.

``metrics.json`` holds every number (and the ROC points, and the per-side inputs);
``metrics.csv`` is a long table with one row per (analysis, subject, metric, CI method):
columns analysis (``primary``, ``cutoff_4.3mm``, ``calibration``, ``cross_validation``,
``mpd_agreement``, ``segmentation``), subject (rater, pair or fold), metric, value, ci_low,
ci_high, ci_method (``wilson``, ``clopper_pearson``, ``delong``, ``bootstrap_patients``...),
p_value (on a rater's row: its test against the model, exact McNemar for accuracy /
sensitivity / specificity, DeLong for AUC; empty for the model and for PPV/NPV) and n;
``summary.html`` lays the results out like
the paper's table (rows: model, measured-MPD rule, each reader; columns: accuracy, sensitivity,
specificity and AUC with 95 % CIs and p-values against the model).
"""

from __future__ import annotations

import csv
import html
import json
from typing import Dict, Iterable, List, Optional

from .. import DISCLAIMER
from ..results import jsonable

CSV_COLUMNS = ("analysis", "subject", "metric", "value", "ci_low", "ci_high", "ci_method",
               "p_value", "n")
PROPORTION_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")
RATER_TITLES = {"model": "C2-Net model", "mpd_rule": "Measured MPD rule"}


def write_json(result: Dict[str, object], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(jsonable(result), handle, indent=1, allow_nan=False)
        handle.write("\n")


def _row(analysis, subject, metric, value, ci=None, method="", p=None, n=None) -> Dict:
    ci = ci or [None, None]
    return {"analysis": analysis, "subject": subject, "metric": metric, "value": value,
            "ci_low": ci[0], "ci_high": ci[1], "ci_method": method, "p_value": p, "n": n}


def _analysis_rows(tag: str, res: Dict[str, object]) -> Iterable[Dict]:
    for name, r in res["raters"].items():
        vs = r.get("vs_model", {})
        for m in PROPORTION_METRICS:
            p = vs.get(m, {}).get("p_value") if m in vs else None
            yield _row(tag, name, m, r[m]["value"], r[m]["ci_wilson"], "wilson", p,
                       r[m]["trials"])
            yield _row(tag, name, m, r[m]["value"], r[m]["ci_clopper_pearson"],
                       "clopper_pearson", p, r[m]["trials"])
        auc = r["auc"]
        p_auc = vs.get("auc", {}).get("p_value") if vs else None
        yield _row(tag, name, "auc", auc["value"], auc["ci_delong"], "delong", p_auc, r["n"])
        yield _row(tag, name, "auc", auc["value"], auc.get("ci_bootstrap"),
                   "bootstrap_patients", p_auc, r["n"])
        if "youden" in r:
            y = r["youden"]
            yield _row(tag, name, "youden_threshold", y.get("threshold", y.get("threshold_mm")),
                       n=r["n"])
    for pair in res["reader_pairs"]:
        subject = f"{pair['a']} vs {pair['b']}"
        for m in ("accuracy", "sensitivity", "specificity"):
            t = pair["tests"][m]
            yield _row(tag, subject, f"{m}_mcnemar_exact", None, p=t["p_value"], n=t["n"])
        t = pair["tests"]["auc"]
        yield _row(tag, subject, "auc_difference", t["difference"], t["ci_difference"], "delong",
                   t["p_value"])
    for k in res["kappa"]["cohen_pairwise"]:
        yield _row(tag, f"{k['a']} vs {k['b']}", "cohen_kappa", k["cohen_kappa"], n=res["n_sides"])
    yield _row(tag, "readers", "fleiss_kappa", res["kappa"]["fleiss_readers"],
               n=res["n_sides"])


def csv_rows(result: Dict[str, object]) -> List[Dict]:
    rows: List[Dict] = []
    rows.extend(_analysis_rows("primary", result["primary"]))
    sens = result.get("sensitivity_analysis")
    if sens and "raters" in sens:
        rows.extend(_analysis_rows(f"cutoff_{sens['cutoff_mm']:g}mm", sens))
    cal = result.get("calibration")
    if cal:
        rows.append(_row("calibration", "model", "brier", cal["brier"]))
        rows.append(_row("calibration", "model", f"ece_{cal['ece_bins']}bins", cal["ece"]))
    cv = result.get("cross_validation")
    if cv:
        for f in cv["folds"]:
            for m in ("accuracy", "sensitivity", "specificity", "ppv", "npv", "auc"):
                rows.append(_row("cross_validation", f"fold {f['fold']}", m, f[m],
                                 n=f["n_sides"]))
        for m, s in cv["summary"].items():
            if s:
                for stat in ("mean", "sd", "min", "max"):
                    rows.append(_row("cross_validation", "all folds", f"{m}_{stat}", s[stat],
                                     n=s["n_folds"]))
    agr = result.get("mpd_agreement")
    if agr:
        ba, icc = agr["bland_altman"], agr["icc"]
        rows.append(_row("mpd_agreement", "automatic vs reference", "bias_mm", ba["bias"],
                         ba["bias_ci"], "t", n=ba["n"]))
        rows.append(_row("mpd_agreement", "automatic vs reference", "loa_lower_mm",
                         ba["loa_lower"], ba["loa_lower_ci"], "bland_altman_1986", n=ba["n"]))
        rows.append(_row("mpd_agreement", "automatic vs reference", "loa_upper_mm",
                         ba["loa_upper"], ba["loa_upper_ci"], "bland_altman_1986", n=ba["n"]))
        rows.append(_row("mpd_agreement", "automatic vs reference", "icc_2_1", icc["icc"],
                         icc["ci"], "F (McGraw-Wong)", icc["p_value"], icc["n_subjects"]))
    seg = result.get("segmentation")
    if seg:
        for c in seg["cases"]:
            for m in ("dice", "hd95_mm", "surface_dice"):
                rows.append(_row("segmentation", f"{c['case']} label {c['label']}", m, c[m]))
    return rows


def write_csv(result: Dict[str, object], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in csv_rows(result):
            writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float)
                                                          else v)) for k, v in row.items()})


# ----------------------------------------------------------------------------- HTML

def _pct(entry: Dict, ci_key: str = "ci_wilson") -> str:
    v = entry.get("value")
    if v is None:
        return "n/a"
    lo, hi = entry[ci_key]
    return (f"{100 * v:.1f}% ({100 * lo:.1f}&ndash;{100 * hi:.1f})"
            f"<br><small>{entry['successes']}/{entry['trials']}</small>")


def _auc(entry: Dict) -> str:
    lo, hi = entry["ci_delong"]
    ci = f" ({lo:.3f}&ndash;{hi:.3f})" if lo is not None else ""
    b = entry.get("ci_bootstrap") or [None, None]
    boot = (f"<br><small>bootstrap {b[0]:.3f}&ndash;{b[1]:.3f}</small>"
            if b[0] is not None else "")
    return f"{entry['value']:.3f}{ci}{boot}"


def _p(value: Optional[float]) -> str:
    if value is None:
        return "&mdash;"
    return "&lt;0.001" if value < 0.001 else f"{value:.3f}"


def _esc(text) -> str:
    return html.escape(str(text))


def _main_table(res: Dict[str, object]) -> str:
    head = ("<tr><th>Rater</th><th>Experience</th><th>Accuracy (95% CI)</th><th>P</th>"
            "<th>Sensitivity (95% CI)</th><th>P</th><th>Specificity (95% CI)</th><th>P</th>"
            "<th>AUC (95% CI)</th><th>P</th></tr>")
    body = []
    for name, r in res["raters"].items():
        vs = r.get("vs_model")
        cells = [f"<td class='name'>{_esc(RATER_TITLES.get(r['kind'], name))}</td>",
                 f"<td>{_esc(r.get('experience') or '')}</td>"]
        for m in ("accuracy", "sensitivity", "specificity"):
            cells.append(f"<td>{_pct(r[m])}</td>")
            cells.append(f"<td>{_p(vs[m]['p_value']) if vs else 'ref.'}</td>")
        cells.append(f"<td>{_auc(r['auc'])}</td>")
        cells.append(f"<td>{_p(vs['auc']['p_value']) if vs else 'ref.'}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _detail_table(res: Dict[str, object]) -> str:
    head = ("<tr><th>Rater</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th>"
            "<th>PPV (95% CI)</th><th>NPV (95% CI)</th>"
            "<th>Accuracy, Clopper&ndash;Pearson</th><th>Sensitivity, Clopper&ndash;Pearson</th>"
            "<th>Specificity, Clopper&ndash;Pearson</th><th>Youden threshold</th></tr>")
    body = []
    for name, r in res["raters"].items():
        c = r["confusion"]
        y = r.get("youden")
        if y and "threshold_mm" in y:
            yt = f"MPD &le; {y['threshold_mm']:.2f} mm (J {y['youden_j']:.3f})"
        elif y:
            yt = f"p &ge; {y['threshold']:.3f} (J {y['youden_j']:.3f})"
        else:
            yt = "&mdash;"
        body.append(
            f"<tr><td class='name'>{_esc(RATER_TITLES.get(r['kind'], name))}</td>"
            f"<td>{c['tp']}</td><td>{c['fp']}</td><td>{c['tn']}</td><td>{c['fn']}</td>"
            f"<td>{_pct(r['ppv'])}</td><td>{_pct(r['npv'])}</td>"
            f"<td>{_pct(r['accuracy'], 'ci_clopper_pearson')}</td>"
            f"<td>{_pct(r['sensitivity'], 'ci_clopper_pearson')}</td>"
            f"<td>{_pct(r['specificity'], 'ci_clopper_pearson')}</td><td>{yt}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _pairs_table(res: Dict[str, object]) -> str:
    if not res["reader_pairs"] and not res["kappa"]["cohen_pairwise"]:
        return ""
    kappas = {(k["a"], k["b"]): k for k in res["kappa"]["cohen_pairwise"]}
    rows = []
    for pair in res["reader_pairs"]:
        t = pair["tests"]
        k = kappas.get((pair["a"], pair["b"]), {})
        kv = k.get("cohen_kappa")
        rows.append(
            f"<tr><td class='name'>{_esc(pair['a'])} vs {_esc(pair['b'])}</td>"
            f"<td>{_p(t['accuracy']['p_value'])}</td><td>{_p(t['sensitivity']['p_value'])}</td>"
            f"<td>{_p(t['specificity']['p_value'])}</td>"
            f"<td>{t['auc']['difference']:+.3f} (P {_p(t['auc']['p_value'])})</td>"
            f"<td>{'n/a' if kv is None else f'{kv:.3f}'}</td></tr>")
    for (a, b), k in kappas.items():
        if a == "model":
            kv = k["cohen_kappa"]
            rows.append(f"<tr><td class='name'>model vs {_esc(b)}</td><td colspan='4'>"
                        "(tests in the table above)</td>"
                        f"<td>{'n/a' if kv is None else f'{kv:.3f}'}</td></tr>")
    fl = res["kappa"]["fleiss_readers"]
    fleiss = (f"<p>Fleiss' kappa across {res['kappa']['fleiss_readers_n']} readers: "
              f"{fl:.3f}</p>" if fl is not None else "")
    return ("<h3>Between raters</h3><table><tr><th>Pair</th><th>Accuracy P</th>"
            "<th>Sensitivity P</th><th>Specificity P</th><th>AUC difference (DeLong)</th>"
            "<th>Cohen's kappa</th></tr>" + "".join(rows) + "</table>" + fleiss)


def _cv_table(cv: Dict[str, object]) -> str:
    rows = []
    for m, s in cv["summary"].items():
        if s is None:
            continue
        scale, unit = (1.0, "") if m == "auc" else (100.0, "%")
        rows.append(f"<tr><td class='name'>{m.upper() if m in ('auc', 'ppv', 'npv') else m}</td>"
                    f"<td>{scale * s['mean']:.{3 if m == 'auc' else 1}f}{unit} &plusmn; "
                    f"{scale * s['sd']:.{3 if m == 'auc' else 1}f}</td>"
                    f"<td>{scale * s['min']:.{3 if m == 'auc' else 1}f}&ndash;"
                    f"{scale * s['max']:.{3 if m == 'auc' else 1}f}{unit}</td>"
                    f"<td>{s['n_folds']}</td></tr>")
    return ("<table><tr><th>Metric</th><th>Mean &plusmn; SD</th><th>Range</th><th>Folds</th>"
            "</tr>" + "".join(rows) + "</table>")


CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px} h2{font-size:17px;margin-top:28px} h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:13px}
th,td{border-top:1px solid #999;border-bottom:1px solid #999;padding:4px 8px;text-align:center}
th{background:#f0f0f0} td.name{text-align:left;font-weight:bold}
.disclaimer{background:#fff3cd;border:1px solid #e0c060;padding:8px;font-weight:bold}
.note{color:#555;font-size:12px} img{max-width:100%;border:1px solid #ddd;margin:4px}
"""


def write_html(result: Dict[str, object], path: str, images: Dict[str, str]) -> None:
    s = result["settings"]
    prim = result["primary"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>C2NetPlanner evaluation"
             f"</title><style>{CSS}</style></head><body>",
             f"<p class='disclaimer'>{_esc(DISCLAIMER)}</p>",
             "<h1>C2NetPlanner evaluation: C2 pedicle screw risk (high risk = positive)</h1>",
             f"<p>{prim['n_sides']} pedicles of {prim['n_patients']} patients: "
             f"{prim['n_high_risk']} high risk, {prim['n_low_risk']} low risk. Labels: "
             f"{_esc(result['labels']['description'])}. Model calls: p(high risk) &ge; "
             f"{s['threshold']:g}.</p>",
             "<h2>Diagnostic performance</h2>", _main_table(prim),
             "<p class='note'>Proportions with Wilson 95% CIs; AUC with DeLong 95% CI and the "
             f"patient-clustered bootstrap percentile CI ({s['n_bootstrap']} resamples, seed "
             f"{s['seed']}). P: exact McNemar test (accuracy on all sides, sensitivity on "
             "high-risk sides, specificity on low-risk sides) and DeLong test (AUC) against the "
             "model; readers' binary calls are their scores. The measured MPD rule calls high "
             f"risk when MPD &lt; {s['cutoff_mm']:g} mm.</p>",
             "<h3>Details</h3>", _detail_table(prim), _pairs_table(prim)]
    sens = result.get("sensitivity_analysis")
    if sens and "raters" in sens:
        parts += [f"<h2>Sensitivity analysis: labels at MPD &lt; {sens['cutoff_mm']:g} mm</h2>",
                  f"<p>{sens['n_high_risk']} high risk, {sens['n_low_risk']} low risk.</p>",
                  _main_table(sens)]
    elif sens:
        parts.append(f"<h2>Sensitivity analysis</h2><p>{_esc(sens.get('skipped'))}</p>")
    cv = result.get("cross_validation")
    if cv:
        parts += [f"<h2>Cross-validation ({cv['n_folds']} folds)</h2>", _cv_table(cv)]
    cal = result.get("calibration")
    if cal:
        parts.append(f"<h2>Calibration</h2><p>Brier score {cal['brier']:.4f} (prevalence-only "
                     f"reference {cal['brier_reference_prevalence']:.4f}); expected calibration "
                     f"error {cal['ece']:.4f} ({cal['ece_bins']} equal-width bins).</p>")
    agr = result.get("mpd_agreement")
    if agr:
        ba, icc = agr["bland_altman"], agr["icc"]
        ci = icc["ci"]
        icc_ci = f" (95% CI {ci[0]:.3f}&ndash;{ci[1]:.3f})" if ci[0] is not None else ""
        parts.append(
            f"<h2>MPD agreement (automatic &minus; reference, n = {ba['n']})</h2>"
            f"<p>Bias {ba['bias']:+.3f} mm (95% CI {ba['bias_ci'][0]:+.3f} to "
            f"{ba['bias_ci'][1]:+.3f}); limits of agreement {ba['loa_lower']:+.3f} to "
            f"{ba['loa_upper']:+.3f} mm; ICC(2,1) {icc['icc']:.3f}{icc_ci}.</p>")
    seg = result.get("segmentation")
    if seg:
        rows = []
        for label, summ in seg["summary_by_label"].items():
            cells = []
            for key, fmt in (("dice", ".3f"), ("hd95_mm", ".2f"), ("surface_dice", ".3f")):
                v = summ.get(key)
                cells.append("n/a" if not v else
                             f"{v['mean']:{fmt}} &plusmn; {v['sd']:{fmt}} (n {v['n']})")
            rows.append(f"<tr><td class='name'>label {label}</td><td>{cells[0]}</td>"
                        f"<td>{cells[1]}</td><td>{cells[2]}</td></tr>")
        parts.append("<h2>Segmentation</h2><table><tr><th>Label</th><th>Dice</th>"
                     "<th>HD95 (mm)</th><th>Surface Dice "
                     f"(&le; {seg['tolerance_mm']:g} mm)</th></tr>" + "".join(rows) + "</table>")
    if images:
        parts.append("<h2>Figures</h2>")
        parts += [f"<img src='{_esc(f)}' alt='{_esc(t)}' title='{_esc(t)}'>"
                  for t, f in images.items()]
    if result.get("notes"):
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>"
                                                     for n in result["notes"]) + "</ul>")
    parts.append(f"<p class='note'>c2net {_esc(result['software']['c2net'])}; inputs: "
                 + ", ".join(_esc(i['path']) for i in result['inputs'])
                 + f".</p><p class='disclaimer'>{_esc(DISCLAIMER)}</p></body></html>")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(parts))
