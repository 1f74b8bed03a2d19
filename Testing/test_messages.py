"""Messages say what is true and name only options that exist (issue 12)."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from c2net.cli import COMMANDS, build_parser
from c2net.cli import main as cli_main
from c2net.load import load_ct
from test_load import write_dicom_series

PACKAGE = Path(__file__).resolve().parents[1] / "C2NetPlanner" / "c2net"


def _all_options() -> set:
    opts = {o for a in build_parser()._actions for o in a.option_strings}
    for module_name, _ in COMMANDS.values():
        parser = argparse.ArgumentParser()
        importlib.import_module(module_name).add_arguments(parser)
        opts.update(o for a in parser._actions for o in a.option_strings)
    return opts


def test_every_option_a_message_names_exists():
    known = _all_options()
    wrong = []
    for f in PACKAGE.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        if "argparse.ArgumentParser(" in text and f.name != "cli.py":
            own = set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", text))
        else:
            own = set()
        # whole option names only ("--trajectory-{side}" is built from known names)
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*[a-z0-9])(?![\w{-])", text):
            if opt not in known and opt not in own:
                wrong.append(f"{f.relative_to(PACKAGE)}: {opt}")
    assert not wrong, wrong
    assert not [f for f in PACKAGE.rglob("*.py") if "overwrite=True (--overwrite)" in f.read_text()]


def test_one_missing_slice_is_called_a_missing_slice(tmp_path):
    z = [0.0, 0.625, 1.25, 1.875, 3.125, 3.75, 4.375, 5.0]       # the slice at 2.5 mm is gone
    write_dicom_series(tmp_path / "gap", [np.array([-20.0, -18.0, 5.0 + v]) for v in z])
    loaded = load_ct(tmp_path / "gap")
    text = " ".join(loaded.warnings)
    assert "1 slice(s) missing" in text and "after slice 4" in text and "0.62 mm" in text
    assert "non-uniform" not in text
    assert [c["kind"] for c in loaded.info["corrections"]] == ["missing_slices"]


def test_a_tie_in_slice_counts_is_called_a_tie(tmp_path):
    ipps = [np.array([-20.0, -18.0, 5.0 + 2.0 * k]) for k in range(6)]
    write_dicom_series(tmp_path / "two", ipps, series_uid="1.2.3.1", prefix="A")
    write_dicom_series(tmp_path / "two", ipps, series_uid="1.2.3.2", prefix="B")
    loaded = load_ct(tmp_path / "two")
    text = " ".join(loaded.warnings)
    assert "2 series tie at 6 slices" in text and "--series" in text
    assert "most slices" not in text


def test_evaluate_without_the_eval_extra_names_it(monkeypatch, capsys, tmp_path):
    # as if scikit-learn were not installed: drop it (and what imported it) from the cache
    for name in [m for m in sys.modules if m.startswith(("sklearn.", "c2net.evaluate"))
                 or m == "c2net.commands.evaluate"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    rc = cli_main(["evaluate", "--predictions", str(tmp_path / "p.csv"), "--truth",
                   str(tmp_path / "t.csv"), "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert rc == 2 and "sklearn" in err and "c2netplanner[eval]" in err
    assert "unexpected failure" not in err


def test_assess_quiet_prints_no_stages(tmp_path, capsys):
    rc = cli_main(["assess", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "r"),
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "[1/8]" not in err and "does not exist" in err


@pytest.mark.parametrize("p, text", [(0.0, "< 0.001"), (1e-5, "< 0.001"), (0.2744, "0.274"),
                                     (0.99995, "> 0.999"), (1.0, "> 0.999"), (None, "n/a")])
def test_probabilities_print_with_sensible_precision(p, text):
    from c2net.results import format_probability

    assert format_probability(p) == text


def test_screw_fit_means_what_the_report_says():
    from c2net.verdict import DecisionSettings, screw_fit

    big = screw_fit(6.45, 4.0, 0.2, DecisionSettings(screw_mm=6.5))   # the 6.5 in 6.45
    assert big["fit"] == "does_not_fit" and big["validated"] is False
    ok = screw_fit(5.6, 4.3, 0.2, DecisionSettings())                 # 3.5 mm: the cutoff itself
    assert ok["fit"] == "fits" and ok["required_margin_mm"] == 1.28 and ok["validated"] is True
    assert screw_fit(4.8, 2.0, 0.2, DecisionSettings())["fit"] == "borderline"
    solid = screw_fit(6.0, 0.0, 0.2, DecisionSettings(), no_medullary_canal=True)
    assert solid["fit"] == "does_not_fit" and solid["inner_clearance_mm"] == -3.5


def test_loading_dicom_keeps_the_process_locale(tmp_path):
    """GDCM sets the C locale; after it Python would read report.json as ASCII and batch
    would crash on the first non-ASCII character (the disclaimer's dash)."""
    import locale

    before = locale.setlocale(locale.LC_CTYPE)
    write_dicom_series(tmp_path / "s", [np.array([-20.0, -18.0, 5.0 + 2.0 * k]) for k in range(4)])
    locale.setlocale(locale.LC_CTYPE, before)      # the test's own writer used GDCM too
    load_ct(tmp_path / "s")
    assert locale.setlocale(locale.LC_CTYPE) == before


def test_coarse_scan_message_gives_the_true_voxel_size():
    """OpenKBP-like 5.08 x 5.08 x 2.5 mm: its slices are 2.5 mm apart, not 5.08 mm."""
    import SimpleITK as sitk
    from c2net.errors import GeometryError
    from c2net.locate.volume import check_resolution

    img = sitk.Image(64, 64, 64, sitk.sitkInt16)
    img.SetSpacing((5.078, 5.078, 2.5))
    with pytest.raises(GeometryError) as err:
        check_resolution(img)
    assert "5.08 x 5.08 x 2.50 mm" in err.value.message
    assert "5.08 mm between slices" not in err.value.message
