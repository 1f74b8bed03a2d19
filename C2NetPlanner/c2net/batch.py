"""Cohort runs: one report folder per case, a cohort ``summary.csv``, failures isolated.

Execution engine: **Dask distributed**. ``workers=1`` without a scheduler runs in this process;
``workers=N`` starts a local cluster of N worker *processes* (one thread each); ``scheduler=
"tcp://host:8786"`` sends the cases to an existing Dask cluster spanning several machines (each
worker needs ``pip install c2netplanner`` and read access to the inputs and the output folder).

A case that fails (bad input, C2 not found, a crash) gets its own ``report.json`` with status
"error" where possible and a row in ``summary.csv``/``failures.csv``; the other cases go on.

The cohort folder follows the one output-folder rule (:mod:`c2net.output_folder`): a folder
that already holds files is used only with ``resume`` or ``overwrite``. ``resume=True`` skips
only the cases that *finished* before (``report.json`` with status "ok") and runs every other
case again, failed ones included (a fixed input is re-assessed); ``overwrite=True`` runs every
given case again. Either way only the files this program writes are replaced (a user's file in
a case folder stays), and ``summary.csv`` keeps the rows of earlier cases that are not part of
this run.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from . import DISCLAIMER
from .errors import C2NetError, InputError, OutputError
from .output_folder import check_not_input, check_output_folder, replace_file
from .results import SIDES

#: Exit code of ``c2net batch`` when the cohort ran but at least one case failed.
EXIT_CASES_FAILED = 4

SUMMARY_COLUMNS = [
    "case_id", "input", "status", "error_code", "error_message", "side", "mpd_mm",
    "mpd_uncertainty_mm", "inner_width_mm", "height_mm", "medial_angle_deg",
    "cranial_angle_deg", "verdict_mpd", "p_high_risk", "verdict_network", "agreement",
    "total_s", "report", "disclaimer",
]


@dataclass
class Case:
    case_id: str
    input: str
    series_uid: Optional[str] = None
    vertebra_mask: Optional[str] = None
    c2_label: Optional[int] = None
    seed_lps_mm: Optional[List[float]] = None


@dataclass
class BatchOptions:
    cutoff_mm: float = 4.78
    screw_mm: float = 3.5
    verdict_measure: str = "mpd"
    model_dir: Optional[str] = None
    segmentation_model: Optional[str] = None
    classifier_model: Optional[str] = None
    threads: Optional[int] = 1
    extra: Dict[str, Any] = field(default_factory=dict)


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _case_id(text: str) -> str:
    return _SAFE.sub("_", text).strip("._") or "case"


def cases_from_inputs(inputs: Sequence[str]) -> List[Case]:
    """One case per input path; ids from the file/folder names, made unique."""
    seen: Dict[str, int] = {}
    cases = []
    for raw in inputs:
        p = Path(raw)
        name = p.name
        for suffix in (".nii.gz", ".tar.gz", ".seg.nrrd"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        else:
            name = p.stem if p.suffix else p.name
        if name.lower() in ("ct", "image", "dicom"):
            name = f"{p.parent.name}_{name}"
        cid = _case_id(name)
        n = seen.get(cid, 0)
        seen[cid] = n + 1
        cases.append(Case(case_id=cid if n == 0 else f"{cid}_{n + 1}", input=str(p)))
    return cases


def read_manifest(path: str) -> List[Case]:
    """Cases from a CSV manifest.

    Columns: ``input`` (or ``ct``) required; ``case_id`` (or ``patient_id``) optional;
    optional ``series_uid``, ``vertebra_mask``, ``c2_label``, ``seed_x``/``seed_y``/``seed_z``
    (LPS mm). Relative paths are relative to the manifest's folder.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Manifest not found: {p}", hint="Give the path of a CSV file.")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise InputError(f"The manifest {p} has no rows.", hint="Add one row per case.")
    cols = set(rows[0].keys())
    in_col = "input" if "input" in cols else "ct" if "ct" in cols else None
    if in_col is None:
        raise InputError(f"The manifest {p} has no 'input' (or 'ct') column; it has: {sorted(cols)}.",
                         hint="Name the column with the CT paths 'input'.")
    id_col = "case_id" if "case_id" in cols else "patient_id" if "patient_id" in cols else None
    base = cases_from_inputs([r[in_col] for r in rows])
    cases, ids = [], set()
    for i, (r, b) in enumerate(zip(rows, base), start=2):
        src = Path(r[in_col])
        if not src.is_absolute():
            src = p.parent / src
        cid = _case_id(r[id_col]) if id_col and r.get(id_col) else b.case_id
        if cid in ids:
            raise InputError(f"Duplicate case id {cid!r} in {p} (line {i}).",
                             hint="Make the case_id column unique.")
        ids.add(cid)
        seed = None
        if r.get("seed_x") not in (None, ""):
            try:
                seed = [float(r["seed_x"]), float(r["seed_y"]), float(r["seed_z"])]
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"Bad seed point in {p} line {i}: {exc}",
                                 hint="seed_x, seed_y, seed_z must be numbers (LPS mm).") from exc
        mask = r.get("vertebra_mask") or None
        if mask and not Path(mask).is_absolute():
            mask = str(p.parent / mask)
        label = r.get("c2_label")
        cases.append(Case(case_id=cid, input=str(src), series_uid=r.get("series_uid") or None,
                          vertebra_mask=mask, c2_label=int(label) if label not in (None, "") else None,
                          seed_lps_mm=seed))
    return cases


def rows_from_report(case: Case, report_json: Path) -> List[Dict[str, Any]]:
    """summary.csv rows (one per side; one for a failed case) from a case's report.json."""
    rep = json.loads(report_json.read_text(encoding="utf-8"))
    base = {"case_id": case.case_id, "input": case.input, "status": rep.get("status"),
            "report": str(report_json), "disclaimer": DISCLAIMER,
            "total_s": (rep.get("timings_s") or {}).get("total")}
    if rep.get("status") != "ok":
        err = rep.get("error") or {}
        return [dict(base, error_code=err.get("code"), error_message=err.get("message"))]
    rows = []
    for side in SIDES:
        s = (rep.get("sides") or {}).get(side, {})
        row = dict(base, side=side)
        for k in ("mpd_mm", "mpd_uncertainty_mm", "inner_width_mm", "height_mm", "medial_angle_deg",
                  "cranial_angle_deg", "verdict_mpd", "p_high_risk", "verdict_network", "agreement"):
            row[k] = s.get(k)
        if s.get("error"):
            row["error_code"] = s["error"].get("code")
            row["error_message"] = s["error"].get("message")
        rows.append(row)
    return rows


def run_case(case: Case, out_root: str, options: BatchOptions) -> List[Dict[str, Any]]:
    """Assess one case into ``out_root/case_id``; never raises (failures become rows)."""
    from .assess import assess

    out = Path(out_root) / case.case_id
    try:
        assess(case.input, out, series_uid=case.series_uid, seed_lps_mm=case.seed_lps_mm,
               vertebra_mask=case.vertebra_mask, c2_label=case.c2_label,
               cutoff_mm=options.cutoff_mm, screw_mm=options.screw_mm,
               verdict_measure=options.verdict_measure, model_dir=options.model_dir,
               segmentation_model=options.segmentation_model,
               classifier_model=options.classifier_model, threads=options.threads, overwrite=True)
    except C2NetError as exc:
        if not (out / "report.json").is_file():   # e.g. the case folder itself was refused
            return [{"case_id": case.case_id, "input": case.input, "status": "error",
                     "error_code": exc.code, "error_message": exc.message,
                     "disclaimer": DISCLAIMER}]
        # else: report.json with status "error" was written by assess
    except Exception as exc:  # noqa: BLE001 - isolate the failure, keep the cohort going
        return [{"case_id": case.case_id, "input": case.input, "status": "crash",
                 "error_code": type(exc).__name__, "error_message": str(exc)[:500],
                 "disclaimer": DISCLAIMER}]
    report = out / "report.json"
    if not report.is_file():
        return [{"case_id": case.case_id, "input": case.input, "status": "error",
                 "error_code": "no_report", "error_message": "no report was written",
                 "disclaimer": DISCLAIMER}]
    return rows_from_report(case, report)


def _finished(case: Case, out_root: Path) -> Optional[List[Dict[str, Any]]]:
    """The summary rows of a case that finished before (status "ok"), else None (run it)."""
    report = out_root / case.case_id / "report.json"
    if report.is_file():
        try:
            rows = rows_from_report(case, report)
        except (json.JSONDecodeError, OSError):
            return None
        return rows if rows and rows[0].get("status") == "ok" else None
    return None


def _progress_bar(done: int, total: int, failed: int, t0: float, stream=sys.stderr) -> None:
    width = 30
    fill = int(width * done / max(total, 1))
    rate = (time.time() - t0) / max(done, 1)
    eta = rate * (total - done)
    stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total}  failed {failed}  "
                 f"eta {eta:5.0f} s")
    stream.flush()
    if done == total:
        stream.write("\n")


def _write_csv_atomic(path: Path, rows: Iterable[Dict[str, Any]], columns: Sequence[str]) -> None:
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    replace_file(path, text.getvalue())


def _earlier_rows(root: Path, keep_out: set) -> List[Dict[str, Any]]:
    """Rows of an earlier summary.csv for cases that are not part of this run."""
    path = root / "summary.csv"
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [r for r in csv.DictReader(fh) if r.get("case_id") not in keep_out]
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise OutputError(f"The earlier cohort summary {path} cannot be read ({exc}).",
                          "Move it aside (its rows would be lost otherwise) and run again.") from None


def check_cohort_folder(cases: Sequence[Case], out_root: str, resume: bool = False,
                        overwrite: bool = False) -> Path:
    """Refuse, before any work, a cohort folder that would lose or mix results.

    * a non-empty folder without ``resume`` or ``overwrite`` (exit 2, says which to add);
    * a case folder that is, contains or lies inside an input (any case's);
    * a folder that cannot be written.
    """
    out = Path(out_root).expanduser()
    if not (resume or overwrite) and out.is_dir() and any(out.iterdir()):
        earlier = "an earlier run's summary.csv" if (out / "summary.csv").is_file() else "files"
        raise OutputError(
            f"The cohort folder {out} already holds {earlier}; running into it again would "
            "replace case folders and results.",
            "Add --resume to finish that run (finished cases are kept, failed and missing ones "
            "are run), or --overwrite to run these cases again (only this program's files are "
            "replaced; earlier cases stay in summary.csv), or choose a new folder.")
    root = check_output_folder(out_root, overwrite or resume)
    inputs = [x for c in cases for x in (c.input, c.vertebra_mask)]
    for c in cases:
        check_not_input(root / c.case_id, inputs)
    return root


def run_batch(cases: Sequence[Case], out_root: str, options: Optional[BatchOptions] = None,
              workers: int = 1, scheduler: Optional[str] = None, resume: bool = False,
              show_progress: bool = True, overwrite: bool = False) -> List[Dict[str, Any]]:
    """Assess every case; write ``summary.csv`` and ``failures.csv``; return this run's rows.

    See the module docstring for ``resume`` and ``overwrite``. ``summary.csv`` holds this run's
    cases after the earlier cases that were not part of it; ``failures.csv`` the failed rows of
    the whole summary.
    """
    options = options or BatchOptions()
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise InputError("Two cases have the same case id.", hint="Make the case ids unique.")
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other.",
                         hint="--resume keeps finished cases; --overwrite re-runs every case.")
    root = check_cohort_folder(cases, out_root, resume, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    earlier = _earlier_rows(root, set(ids))
    results: Dict[str, List[Dict[str, Any]]] = {}
    pending = []
    for c in cases:
        prev = _finished(c, root) if resume else None
        if prev is not None:
            results[c.case_id] = prev
        else:
            pending.append(c)
    total, t0 = len(cases), time.time()

    def failed_count() -> int:
        return sum(1 for rows in results.values() if rows and rows[0].get("status") != "ok")

    def record(case: Case, rows) -> None:
        results[case.case_id] = rows
        if show_progress:
            _progress_bar(len(results), total, failed_count(), t0)

    if show_progress and results:
        print(f"resume: {len(results)} finished case(s) kept, {len(pending)} to run "
              "(failed ones are run again)", file=sys.stderr)
    if pending and (workers > 1 or scheduler):
        _run_dask(pending, root, options, workers, scheduler, record)
    else:
        for c in pending:
            record(c, run_case(c, str(root), options))
    rows = [r for c in cases for r in results.get(c.case_id, [])]
    summary = earlier + rows
    _write_csv_atomic(root / "summary.csv", summary, SUMMARY_COLUMNS)
    failures = [r for r in summary if r.get("status") != "ok"]
    _write_csv_atomic(root / "failures.csv", failures, SUMMARY_COLUMNS)
    replace_file(root / "batch.json", json.dumps({
        "cases": len(cases), "failed": len({r["case_id"] for r in rows if r.get("status") != "ok"}),
        "cases_in_summary": len({r.get("case_id") for r in summary}),
        "options": asdict(options), "engine": "dask" if (workers > 1 or scheduler) else "in-process",
        "workers": workers, "scheduler": scheduler, "disclaimer": DISCLAIMER}, indent=2))
    return rows


def _run_dask(pending, root: Path, options, workers, scheduler, record) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise InputError("Parallel batch runs need Dask distributed, which is not installed.",
                         hint="pip install 'c2netplanner[batch]' (or dask[distributed]), or use --workers 1.") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = {client.submit(run_case, c, str(root), options, pure=False): c for c in pending}
        for fut in as_completed(futures):
            case = futures[fut]
            try:
                rows = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: isolate it
                rows = [{"case_id": case.case_id, "input": case.input, "status": "crash",
                         "error_code": type(exc).__name__, "error_message": str(exc)[:500],
                         "disclaimer": DISCLAIMER}]
            record(case, rows)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
