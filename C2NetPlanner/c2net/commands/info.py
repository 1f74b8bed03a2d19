"""``c2net info CT [--series UID] [--json FILE]``: load a CT and print what was found.

Checks an input before an assessment: format, matrix size, voxel spacing, orientation,
the DICOM series chosen (and the others present), geometry corrections (gantry tilt,
irregular slice spacing), intensity range and warnings. Refusals exit with code 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

from .. import DISCLAIMER, __version__
from ..errors import OutputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct", help="DICOM folder, .zip/.tgz/.tar.gz of DICOM, NIfTI, NRRD or "
                                   "MHA/MHD file")
    parser.add_argument("--series", metavar="UID", default=None,
                        help="DICOM Series Instance UID to load when the input holds several "
                             "(default: the CT series with the most slices)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the description as JSON to FILE")


def _fmt(values, digits: int = 3) -> str:
    return " x ".join(f"{v:.{digits}f}".rstrip("0").rstrip(".") for v in values)


def summary_lines(info: dict, warnings: List[str]) -> List[str]:
    """Human-readable description of a loaded CT (one item per line)."""
    lines = [f"C2NetPlanner {__version__} - input check. {DISCLAIMER}",
             f"input:        {info['path']}",
             f"format:       {info['format']}"
             + (f" (modality {info['modality']})" if info.get("modality") else "")]
    if info.get("series_instance_uid"):
        desc = info.get("series_description")
        lines.append(f"series:       {info['series_instance_uid']}"
                     + (f" '{desc}'" if desc else "")
                     + f" ({info.get('n_source_slices')} slices; {info['n_series_found']} "
                       "series found)")
        for other in info.get("other_series", []):
            lines.append(f"  other:      {other['series_instance_uid']} "
                         f"({other.get('modality') or '?'}, {other['n_slices']} slices"
                         + (f", '{other['series_description']}'"
                            if other.get("series_description") else "") + ")")
    lines += [
        f"size:         {_fmt(info['size'], 0)} voxels (i x j x k)",
        f"spacing:      {_fmt(info['spacing_mm'])} mm",
        f"extent:       {_fmt(info['physical_extent_mm'], 1)} mm",
        f"origin (LPS): {_fmt(info['origin_lps_mm'], 2)} mm",
        f"orientation:  {info['orientation_code']} (index axes point towards these patient "
        f"directions), obliquity {info['obliquity_deg']:.1f} deg",
    ]
    if info.get("slice_thickness_mm") is not None:
        lines.append(f"slice thickness: {info['slice_thickness_mm']:g} mm")
    hu = info.get("intensity_hu") or {}
    if hu:
        lines.append(f"intensity:    {hu['min']:.0f} .. {hu['max']:.0f} HU "
                     f"(1st/50th/99th percentile {hu['p1']:.0f} / {hu['median']:.0f} / "
                     f"{hu['p99']:.0f})")
    corrections = info.get("corrections") or []
    lines.append("corrections:  " + ("none" if not corrections else corrections[0]["description"]))
    for c in corrections[1:]:
        lines.append(f"              {c['description']}")
    lines.append("warnings:     " + ("none" if not warnings else warnings[0]))
    for w in warnings[1:]:
        lines.append(f"              {w}")
    lines.append(DISCLAIMER)
    return lines


def run(args: argparse.Namespace) -> int:
    from ..load import load_ct

    loaded = load_ct(args.ct, series_uid=args.series)
    for line in summary_lines(loaded.info, loaded.warnings):
        print(line)
    if args.json:
        out = Path(args.json)
        payload = {"disclaimer": DISCLAIMER, "c2net_version": __version__,
                   "info": loaded.info, "warnings": loaded.warnings}
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".part")
            tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
            tmp.replace(out)
        except OSError as exc:
            raise OutputError(f"{out} cannot be written: {exc}",
                              "Choose a writable location for --json.") from exc
        print(f"description written to {out}")
    return 0
