"""``attention.nrrd``: the C2-Net Grad-CAM heat map (high-risk class) on the input CT's grid.

float32, 0..1, 0 outside the classifier's five slices per side. Loads in Slicer as a scalar
volume to show as a foreground/colour overlay on the CT.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from .volume_checks import require_input_grid

ATTENTION_NRRD = "attention.nrrd"
DEFAULT_COMPRESSION_LEVEL = 3


def write_attention_file(attention: sitk.Image, out_dir: Path,
                         reference: sitk.Image | None = None,
                         compression_level: int = DEFAULT_COMPRESSION_LEVEL) -> Path:
    """Write ``attention.nrrd`` (float32 heat map on the input grid) and return its path."""
    require_input_grid(attention, reference, "attention map")
    img = (sitk.Cast(attention, sitk.sitkFloat32)
           if attention.GetPixelID() != sitk.sitkFloat32 else sitk.Image(attention))
    for key in list(img.GetMetaDataKeys()):
        img.EraseMetaData(key)
    img.SetMetaData("c2net_content",
                    "Grad-CAM of the C2-Net high-risk class, 0..1 (Research use only)")
    path = Path(out_dir) / ATTENTION_NRRD
    sitk.WriteImage(img, str(path), True, compression_level)
    return path
