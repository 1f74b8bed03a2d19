"""``c2net evaluate`` end to end on the example CSVs, segmentation metrics, and input errors."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("statsmodels")

import SimpleITK as sitk  # noqa: E402
from c2net import DISCLAIMER  # noqa: E402
from c2net.cli import main  # noqa: E402
from c2net.errors import InputError, OutputError  # noqa: E402
from c2net.evaluate import evaluate, plots  # noqa: E402
from c2net.evaluate.segmentation import folder_metrics, mask_pair_metrics  # noqa: E402
from PIL import Image  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "evaluate")


def d(name: str) -> str:
    return os.path.join(DATA, name)


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


# --------------------------------------------------------------------------- end to end

def test_cli_writes_every_output_for_the_example_study(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--predictions", d("predictions.csv"), "--truth", d("truth.csv"),
               "--readers", d("junior.csv"), d("senior.csv"),
               "--mpd-reference", d("mpd_reference.csv"), "--bootstrap", "500",
               "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert DISCLAIMER in printed.out
    expected = {"metrics.json", "metrics.csv", "summary.html", "roc.png", "confusion_model.png",
                "confusion_mpd_rule.png", "confusion_junior.png", "confusion_senior.png",
                "reliability.png", "bland_altman.png"}
    assert set(os.listdir(out)) == expected
    for name in expected - {"metrics.json", "metrics.csv", "summary.html"}:
        with Image.open(out / name) as im:
            assert im.size[0] > 300 and im.size[1] > 300
    result = json.loads((out / "metrics.json").read_text())
    prim = result["primary"]
    assert (prim["n_sides"], prim["n_patients"]) == (80, 40)
    assert prim["n_high_risk"] + prim["n_low_risk"] == 80
    assert list(prim["raters"]) == ["model", "mpd_rule", "junior", "senior"]
    model = prim["raters"]["model"]
    # the example labels come from MPD < 4.78 mm, counted independently here
    with open(d("truth.csv")) as f:
        truth = list(csv.DictReader(f))
    assert prim["n_high_risk"] == sum(float(r["mpd_mm"]) < 4.78 for r in truth)
    acc = model["accuracy"]
    assert acc["value"] == pytest.approx(acc["successes"] / acc["trials"])
    assert acc["ci_wilson"][0] < acc["value"] < acc["ci_wilson"][1]
    auc = model["auc"]
    assert auc["ci_delong"][0] <= auc["value"] <= auc["ci_delong"][1]
    assert auc["ci_bootstrap"][0] <= auc["value"] <= auc["ci_bootstrap"][1]
    assert auc["n_clusters"] == 40
    junior = prim["raters"]["junior"]
    assert junior["experience"] == "junior (3 years)"
    assert set(junior["vs_model"]) == {"accuracy", "sensitivity", "specificity", "auc"}
    assert prim["reader_pairs"][0]["a"] == "junior"
    assert prim["kappa"]["fleiss_readers"] is not None
    sens = result["sensitivity_analysis"]
    assert sens["cutoff_mm"] == 4.30
    assert sens["n_high_risk"] == sum(float(r["mpd_mm"]) < 4.30 for r in truth)
    assert result["calibration"]["ece_bins"] == 10
    agr = result["mpd_agreement"]
    assert agr["n_pairs"] == 80 and 0.5 < agr["icc"]["icc"] <= 1
    assert result["disclaimer"] == DISCLAIMER
    assert len(result["per_side"]) == 80
    html = (out / "summary.html").read_text()
    assert DISCLAIMER in html
    for text in ("C2-Net model", "Measured MPD rule", "junior", "senior", "Accuracy (95% CI)",
                 "AUC (95% CI)", "Sensitivity analysis", "roc.png", "bland_altman.png"):
        assert text in html
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    auc_rows = [r for r in rows if r["analysis"] == "primary" and r["subject"] == "junior"
                and r["metric"] == "auc" and r["ci_method"] == "delong"]
    assert float(auc_rows[0]["p_value"]) == pytest.approx(junior["vs_model"]["auc"]["p_value"],
                                                          rel=1e-4)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".c2net-evaluate-")]


def test_cross_validated_predictions_give_fold_summary(tmp_path):
    result = evaluate(d("predictions_cv.csv"), d("truth.csv"), [d("junior.csv")],
                      out_dir=str(tmp_path / "cv"), n_bootstrap=200)
    cv = result["cross_validation"]
    assert cv["n_folds"] == 10
    aucs = [f["auc"] for f in cv["folds"] if f["auc"] is not None]
    assert cv["summary"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert cv["summary"]["auc"]["sd"] == pytest.approx(np.std(aucs, ddof=1))
    assert cv["summary"]["auc"]["min"] == pytest.approx(min(aucs))
    assert len(cv["mean_roc"]["fpr"]) == 101
    # the pooled analysis counts each side once, with its mean probability over folds
    with open(d("predictions_cv.csv")) as f:
        rows = list(csv.DictReader(f))
    keys = {(r["patient_id"], r["side"]) for r in rows}
    assert result["primary"]["n_sides"] == len(keys)
    pid, side = sorted(keys)[0]
    mean_p = np.mean([float(r["p_high_risk"]) for r in rows
                      if (r["patient_id"], r["side"]) == (pid, side)])
    per_side = {(r["patient_id"], r["side"]): r for r in result["per_side"]}
    assert per_side[(pid, side)]["p_high_risk"] == pytest.approx(mean_p)
    assert os.path.isfile(tmp_path / "cv" / "roc.png")


def test_labels_derived_from_mpd_when_no_label_column(tmp_path):
    rows = [(f"P{i}", s, 3.0 + 0.25 * i + (0.1 if s == "left" else 0)) for i in range(12)
            for s in ("left", "right")]
    truth = _write(tmp_path / "t.csv", ["patient_id", "side", "mpd_mm"], rows)
    preds = _write(tmp_path / "p.csv", ["patient_id", "side", "p_high_risk"],
                   [(p, s, 0.9 if m < 4.9 else 0.2) for p, s, m in rows])
    result = evaluate(preds, truth, n_bootstrap=100, cutoff_mm=4.78, alt_cutoff_mm=4.30)
    n_high = sum(m < 4.78 for _, _, m in rows)
    assert result["primary"]["n_high_risk"] == n_high
    assert result["labels"]["from_mpd_mm"] == 24
    model = result["primary"]["raters"]["model"]
    assert model["sensitivity"]["value"] == 1.0
    # sides with 4.78 <= mpd < 4.9 are false positives
    fp = sum(4.78 <= m < 4.9 for _, _, m in rows)
    assert model["confusion"]["fp"] == fp
    assert result["sensitivity_analysis"]["n_high_risk"] == sum(m < 4.30 for _, _, m in rows)


# --------------------------------------------------------------------------- segmentation

def _box(shift_xyz=(0, 0, 0), label=1, spacing=(0.5, 1.0, 2.0)):
    a = np.zeros((20, 20, 30), np.uint8)
    x, y, z = shift_xyz
    a[5 + z:15 + z, 5 + y:15 + y, 10 + x:20 + x] = label
    img = sitk.GetImageFromArray(a)
    img.SetSpacing(spacing)
    return img


def test_segmentation_metrics_respect_anisotropic_spacing():
    truth = _box()
    same = mask_pair_metrics(truth, truth)[0]
    assert (same["dice"], same["hd95_mm"], same["surface_dice"]) == (1.0, 0.0, 1.0)
    along_x = mask_pair_metrics(_box((2, 0, 0)), truth)[0]   # 2 voxels x 0.5 mm
    assert along_x["dice"] == pytest.approx(0.8)
    assert along_x["hd95_mm"] == pytest.approx(1.0)
    assert along_x["surface_dice"] == pytest.approx(1.0)     # every surface voxel within 1 mm
    along_z = mask_pair_metrics(_box((0, 0, 2)), truth)[0]   # 2 voxels x 2 mm
    assert along_z["dice"] == pytest.approx(0.8)
    assert along_z["hd95_mm"] == pytest.approx(4.0)
    assert along_z["surface_dice"] < 1.0


def test_segmentation_missing_label_and_grid_mismatch():
    truth = _box(label=1)
    pred = _box(label=2)
    rows = {r["label"]: r for r in mask_pair_metrics(pred, truth)}
    assert rows[1]["dice"] == 0.0 and rows[1]["hd95_mm"] is None
    with pytest.raises(InputError, match="different grids"):
        mask_pair_metrics(_box(spacing=(1.0, 1.0, 1.0)), truth)


def test_cli_segmentation_folders(tmp_path):
    pred_dir, truth_dir = tmp_path / "pred", tmp_path / "truth"
    pred_dir.mkdir()
    truth_dir.mkdir()
    sitk.WriteImage(_box((2, 0, 0)), str(pred_dir / "case01.nii.gz"))
    sitk.WriteImage(_box(), str(truth_dir / "case01.nii.gz"))
    sitk.WriteImage(_box(), str(truth_dir / "case02.nii.gz"))
    seg = folder_metrics(str(pred_dir), str(truth_dir))
    assert seg["unmatched_truth"] == ["case02"]
    assert seg["summary_by_label"]["1"]["dice"]["mean"] == pytest.approx(0.8)
    rc = main(["evaluate", "--predictions", d("predictions.csv"), "--truth", d("truth.csv"),
               "--masks-pred", str(pred_dir), "--masks-truth", str(truth_dir),
               "--bootstrap", "100", "--out", str(tmp_path / "o")])
    assert rc == 0
    result = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert result["segmentation"]["cases"][0]["hd95_mm"] == pytest.approx(1.0)
    assert "Segmentation" in (tmp_path / "o" / "summary.html").read_text()


# --------------------------------------------------------------------------- errors

def _run_bad(tmp_path, capsys, preds=None, truth=None, readers=(), out=None):
    argv = ["evaluate", "--predictions", preds or d("predictions.csv"),
            "--truth", truth or d("truth.csv"), "--bootstrap", "100",
            "--out", str(out or tmp_path / "out")]
    if readers:
        argv += ["--readers", *readers]
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_bad_probability_names_file_row_and_column(tmp_path, capsys):
    lines = open(d("predictions.csv")).read().splitlines()
    parts = lines[3].split(",")
    parts[2] = "1.3"
    lines[3] = ",".join(parts)
    bad = tmp_path / "preds_bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    rc, err = _run_bad(tmp_path, capsys, preds=str(bad))
    assert rc == 2
    assert "preds_bad.csv" in err and "row 4" in err and "'p_high_risk'" in err and "1.3" in err
    assert "hint:" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("header,rows,message", [
    (["patient_id", "side", "probability"], [("P1", "left", 0.2)], "missing column(s) p_high_risk"),
    (["patient_id", "side", "p_high_risk"], [("P1", "up", 0.2)], "side must be 'left' or 'right'"),
    (["patient_id", "side", "p_high_risk"], [("P1", "left", 0.2), ("P1", "left", 0.3)],
     "appears twice"),
    (["patient_id", "side", "p_high_risk"], [("", "left", 0.2)], "empty value"),
    (["patient_id", "side", "p_high_risk"], [], "no data rows"),
])
def test_malformed_predictions_are_refused(tmp_path, capsys, header, rows, message):
    bad = _write(tmp_path / "p.csv", header, rows)
    rc, err = _run_bad(tmp_path, capsys, preds=bad)
    assert rc == 2 and message in err, err


def test_truth_label_errors(tmp_path, capsys):
    bad = _write(tmp_path / "t.csv", ["patient_id", "side", "label"], [("P001", "left", "maybe")])
    rc, err = _run_bad(tmp_path, capsys, truth=bad)
    assert rc == 2 and "t.csv, row 2, column 'label'" in err and "maybe" in err
    partial = _write(tmp_path / "t2.csv", ["patient_id", "side", "label"],
                     [("P001", "left", 1), ("P001", "right", 0)])
    rc, err = _run_bad(tmp_path, capsys, truth=partial)
    assert rc == 2 and "has no row for patient 'P002' left side" in err


def test_reader_missing_a_side_is_refused(tmp_path, capsys):
    lines = open(d("junior.csv")).read().splitlines()
    short = tmp_path / "junior.csv"
    short.write_text("\n".join(lines[:-1]) + "\n")
    rc, err = _run_bad(tmp_path, capsys, readers=[str(short)])
    assert rc == 2 and "reader 'junior' has no call for patient 'P040' right side" in err


def test_single_class_truth_is_refused(tmp_path):
    truth = _write(tmp_path / "t.csv", ["patient_id", "side", "label"],
                   [("P1", "left", "low_risk"), ("P1", "right", "low_risk")])
    preds = _write(tmp_path / "p.csv", ["patient_id", "side", "p_high_risk"],
                   [("P1", "left", 0.1), ("P1", "right", 0.2)])
    with pytest.raises(InputError, match="both classes"):
        evaluate(preds, truth)


def test_non_empty_output_folder_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    rc, err = _run_bad(tmp_path, capsys, out=out)
    assert rc == 2 and "not empty" in err and "hint:" in err
    assert os.listdir(out) == ["old.txt"]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "reliability_figure", boom)
    with pytest.raises(RuntimeError):
        evaluate(d("predictions.csv"), d("truth.csv"), out_dir=str(tmp_path / "o"),
                 n_bootstrap=100)
    assert os.listdir(tmp_path) == []


def test_output_error_type_for_non_empty_folder(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(OutputError):
        evaluate(d("predictions.csv"), d("truth.csv"), out_dir=str(tmp_path))


def test_examples_are_reproducible_by_their_generator(tmp_path):
    """The checked-in example CSVs are exactly what make_examples.py writes."""
    import importlib.util

    copy = tmp_path / "make_examples.py"
    shutil.copy(d("make_examples.py"), copy)
    spec = importlib.util.spec_from_file_location("make_examples", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    for name in ("truth.csv", "predictions.csv", "predictions_cv.csv", "junior.csv",
                 "senior.csv", "mpd_reference.csv"):
        assert (tmp_path / name).read_text() == open(d(name)).read(), name


def test_one_reader_file_with_reader_column_and_no_truth_mpd(tmp_path):
    rng = np.random.default_rng(3)
    keys = [(f"P{i}", s) for i in range(15) for s in ("left", "right")]
    y = rng.integers(0, 2, len(keys))
    y[:2] = [0, 1]
    truth = _write(tmp_path / "t.csv", ["patient_id", "side", "label"],
                   [(p, s, int(v)) for (p, s), v in zip(keys, y)])
    preds = _write(tmp_path / "p.csv", ["patient_id", "side", "p_high_risk"],
                   [(p, s, float(np.clip(0.3 + 0.4 * v + rng.normal(0, 0.2), 0, 1)))
                    for (p, s), v in zip(keys, y)])
    rows = []
    for name, flip in (("A", 0.1), ("B", 0.2), ("C", 0.3)):
        calls = np.where(rng.random(len(keys)) < flip, 1 - y, y)
        rows += [(name, "resident" if name == "A" else "attending", p, s, int(c))
                 for (p, s), c in zip(keys, calls)]
    readers = _write(tmp_path / "panel.csv",
                     ["reader", "experience", "patient_id", "side", "call"], rows)
    result = evaluate(preds, truth, [readers], n_bootstrap=100)
    prim = result["primary"]
    assert list(prim["raters"]) == ["model", "A", "B", "C"]
    assert prim["raters"]["A"]["experience"] == "resident"
    assert [(p["a"], p["b"]) for p in prim["reader_pairs"]] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert prim["kappa"]["fleiss_readers_n"] == 3
    assert len(prim["kappa"]["cohen_pairwise"]) == 6       # model + 3 readers
    assert "skipped" in result["sensitivity_analysis"]       # no truth mpd_mm
    assert any("sensitivity analysis" in n for n in result["notes"])
