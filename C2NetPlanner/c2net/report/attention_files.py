"""``attention.nrrd``: the C2-Net Grad-CAM heat map (high-risk class) on the input CT's voxels.

float32, 0..1, 0 outside the classifier's five slices per side, written over the C2 region
only (a part of the CT's grid: same spacing, direction and voxel positions; the NRRD space
origin places it, and ``c2net_reference_extent_offset`` / ``c2net_reference_size`` say where it
lies in the CT's grid): an input-sized float map of a 512 x 512 x 300 scan is 300 MB of
zeros. Loads in Slicer as a scalar volume to show as a foreground/colour overlay on the CT.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..geometry import offset_in
from .volume_checks import require_input_grid

ATTENTION_NRRD = "attention.nrrd"
DEFAULT_COMPRESSION_LEVEL = 3


def write_attention_file(attention: sitk.Image, out_dir: Path,
                         reference: sitk.Image | None = None,
                         compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> Path:
    """Write ``attention.nrrd`` (float32 heat map on the input grid or a part of it) and
    return its path."""
    require_input_grid(attention, reference, "attention map")
    img = (sitk.Cast(attention, sitk.sitkFloat32)
           if attention.GetPixelID() != sitk.sitkFloat32 else sitk.Image(attention))
    for key in list(img.GetMetaDataKeys()):
        img.EraseMetaData(key)
    img.SetMetaData("c2net_content",
                    "Grad-CAM of the C2-Net high-risk class, 0..1 (Research use only)")
    offset = None if reference is None else offset_in(img, reference)
    if offset is not None:
        img.SetMetaData("c2net_reference_extent_offset", " ".join(str(int(v)) for v in offset))
        img.SetMetaData("c2net_reference_size", " ".join(str(int(v)) for v in reference.GetSize()))
    path = Path(out_dir) / ATTENTION_NRRD
    sitk.WriteImage(img, str(path), True, compression_level)
    return path
