"""``report.json``: the machine-readable record of one assessment.

The content is :meth:`c2net.results.Assessment.to_dict` (schema ``c2netplanner-report``,
``c2net/schemas/report.schema.json``) plus ``files``: the sha256 of every other file written
into the report folder, so a copy of the folder can be checked for completeness and integrity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping

from ..errors import C2NetError
from ..models import sha256_file  # noqa: F401 - re-exported for the report package
from ..results import Assessment, jsonable
from .schema_check import validation_errors

REPORT_JSON = "report.json"


def report_dict(assessment: Assessment, files: Mapping[str, str]) -> Dict[str, Any]:
    """The ``report.json`` content: ``assessment.to_dict()`` + ``files`` (name -> sha256)."""
    d = jsonable(assessment.to_dict())
    d["files"] = dict(sorted(files.items()))
    return d


def write_json_report(assessment: Assessment, out_dir: Path, files: Mapping[str, str]) -> Path:
    """Write ``report.json`` into ``out_dir`` after checking it against the schema.

    A report that does not match its own schema is a programming error upstream; it is refused
    (``C2NetError`` code ``report_schema``) rather than written, so consumers can trust it.
    """
    d = report_dict(assessment, files)
    errors = validation_errors(d)
    if errors:
        raise C2NetError(
            "The assessment does not fit the report schema: " + "; ".join(errors[:5]),
            "This is a bug in C2NetPlanner; please report it with the input's description.",
            code="report_schema",
        )
    path = Path(out_dir) / REPORT_JSON
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return path
