"""Write the files of one "Assess C2" run (the report a surgeon files).

    from c2net.report import write_report
    paths = write_report(assessment, "out/case001")          # -> {"json": Path, ...}

Files (written all or nothing under the one output-folder rule, :mod:`c2net.output_folder`):

=====================  =====================================================================
``report.json``        schema-versioned record (``c2net/schemas/report.schema.json``) + ``files``
                       (sha256 of every other file)
``report.csv``         one row per side, same numbers as the JSON
``report.html``        self-contained case report (inline PNG images)
``report.pdf``         the same on A4 pages, disclaimer in every footer
``segmentation.seg.nrrd``  Slicer segmentation: "C2 pedicle left"/"C2 pedicle right", input grid
``segmentation.nii.gz``    the same labels (1 left, 2 right) as NIfTI
``attention.nrrd``     Grad-CAM heat map, float32 0..1, input grid
``isthmus_left.gif`` / ``isthmus_right.gif``   the classifier's five slices, animated
=====================  =====================================================================

A failed run (``assessment.status == "error"``) gets ``report.json`` and ``report.html`` (with
the error message and hint) only.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from PIL import Image

from ..errors import C2NetError
from ..output_folder import output_folder
from ..results import SIDES, Assessment
from .attention_files import ATTENTION_NRRD, write_attention_file
from .csv_report import REPORT_CSV, write_csv_report
from .figures import all_side_views, render_strip, render_views
from .gif import GIF_NAMES, write_gif
from .html_report import REPORT_HTML, write_html_report
from .json_report import REPORT_JSON, report_dict, sha256_file, write_json_report
from .pdf_canvas import FlateImage
from .pdf_report import REPORT_PDF, write_pdf_report
from .segmentation_files import SEG_NIFTI, SEG_NRRD, write_segmentation_files

__all__ = ["write_report", "FILE_KEYS"]

#: Keys of the dict that :func:`write_report` returns -> file names.
FILE_KEYS: Dict[str, str] = {
    "json": REPORT_JSON, "csv": REPORT_CSV, "html": REPORT_HTML, "pdf": REPORT_PDF,
    "segmentation_nrrd": SEG_NRRD, "segmentation_nifti": SEG_NIFTI,
    "attention": ATTENTION_NRRD, "gif_left": GIF_NAMES["left"], "gif_right": GIF_NAMES["right"],
}


def write_report(assessment: Assessment, out_dir: str | os.PathLike[str],
                 overwrite: bool = False, inputs: Sequence[object] = ()) -> Dict[str, Path]:
    """Write every report file of ``assessment`` into ``out_dir``, all or nothing.

    ``out_dir`` is created if missing; a non-empty ``out_dir`` is refused
    (:class:`c2net.errors.OutputError`) unless ``overwrite``, and then only the report's own
    files (:data:`FILE_KEYS`) are replaced; any other file there is kept. An ``out_dir`` that
    is, contains or lies inside one of ``inputs`` is refused. On any failure nothing partial is
    left behind and an existing ``out_dir`` is unchanged. Returns ``{key: final path}`` with the
    keys of :data:`FILE_KEYS` for the files written.
    """
    out = Path(out_dir).expanduser().absolute()
    with output_folder(out, FILE_KEYS.values(), overwrite, inputs) as tmp:
        names = _write_all(assessment, tmp)
    by_name = {v: k for k, v in FILE_KEYS.items()}
    return {by_name[n]: out / n for n in names}


def _write_all(assessment: Assessment, tmp: Path) -> List[str]:
    """Write the files into ``tmp``; return their names (report.json last)."""
    report = report_dict(assessment, {})
    if assessment.status != "ok":
        write_html_report(report, tmp)
        write_json_report(assessment, tmp, {REPORT_HTML: sha256_file(tmp / REPORT_HTML)})
        return [REPORT_HTML, REPORT_JSON]
    if assessment.segmentation is None:
        raise C2NetError("The assessment has status 'ok' but no segmentation image.",
                         "This is a bug in C2NetPlanner; please report it.", code="report_input")

    # The two big volumes are compressed by SimpleITK in worker threads while the pictures are
    # drawn here (matplotlib stays on this thread). Leaving the `with` waits for the workers,
    # so nothing writes into tmp once an exception propagates to the atomic folder.
    volume_jobs: List[Tuple[str, Callable[[], object]]] = [
        ("segmentation", lambda: write_segmentation_files(assessment.segmentation, tmp,
                                                          assessment.ct))]
    if assessment.attention is not None:
        volume_jobs.append(("attention", lambda: write_attention_file(assessment.attention, tmp,
                                                                      assessment.ct)))
    with ThreadPoolExecutor(max_workers=len(volume_jobs),
                            thread_name_prefix="c2net-report") as pool:
        futures = [pool.submit(job) for _, job in volume_jobs]
        names = _write_pictures_and_documents(assessment, report, tmp)
        for f in futures:
            f.result()
    names += [SEG_NRRD, SEG_NIFTI] + ([ATTENTION_NRRD] if assessment.attention is not None else [])
    files = {n: sha256_file(tmp / n) for n in names}
    write_json_report(assessment, tmp, files)
    return names + [REPORT_JSON]


def _write_pictures_and_documents(assessment: Assessment, report: dict, tmp: Path) -> List[str]:
    names: List[str] = []
    threshold = (report.get("settings") or {}).get("network_threshold")
    pictures: Dict[str, Dict[str, Image.Image]] = {}
    for side, views in all_side_views(assessment):
        sa = assessment.sides[side]
        pictures[side] = {}
        if views is not None:
            pictures[side]["views"] = render_views(views)
        if sa.slices is not None:
            pictures[side]["strip"] = render_strip(sa, threshold)
            write_gif(sa, tmp)
            names.append(GIF_NAMES[side])
    classifier_ids = {s: assessment.sides[s].prediction.model_id for s in SIDES
                      if s in assessment.sides and assessment.sides[s].prediction is not None}
    write_csv_report(report, tmp, classifier_ids)
    # each picture compressed once: the same data is the HTML's PNG and the PDF's image
    flate = {side: {k: FlateImage(img) for k, img in d.items()} for side, d in pictures.items()}
    pngs = {side: {k: f.png() for k, f in d.items()} for side, d in flate.items()}
    write_html_report(report, tmp, pngs)
    write_pdf_report(report, tmp, flate)
    return names + [REPORT_CSV, REPORT_HTML, REPORT_PDF]
