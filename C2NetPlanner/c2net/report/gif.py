"""``isthmus_left.gif`` / ``isthmus_right.gif``: the classifier's five slices, animated.

Each frame is one 1 mm axial slice of :class:`c2net.results.IsthmusSlices` (wide -> narrow
along the pedicle) in the bone window, with the pedicle outline in the side's colour, the
Grad-CAM of the high-risk class as a colour overlay, the calibrated probability and the patient
orientation on the edges (radiological convention: patient right on the image's left, anterior
at the top). Drawn by :func:`c2net.report.figures.render_slice`, like the report's strip.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image, ImageDraw

from .. import DISCLAIMER
from ..results import SideAssessment
from .figures import font, render_slice
from .style import SIDE_COLORS, verdict_text

GIF_NAMES = {"left": "isthmus_left.gif", "right": "isthmus_right.gif"}
SCALE = 4            # 64 px (1 mm) -> 256 px
HEADER_PX = 42
FOOTER_PX = 40
FRAME_MS = 700
_FASTOCTREE = getattr(Image, "Quantize", Image).FASTOCTREE   # Pillow >= 9.1 / older


def _fitting_font(d: ImageDraw.ImageDraw, text: str, width_px: int, size: int):
    """The largest font up to ``size`` px in which ``text`` fits ``width_px``."""
    while size > 7 and d.textlength(text, font=font(size)) > width_px:
        size -= 1
    return font(size)


def render_frames(side: SideAssessment) -> List[Image.Image]:
    """The GIF frames (RGB PIL images) of one side; needs ``side.slices``."""
    if side.slices is None:
        raise ValueError(f"no isthmus slices for the {side.side} side")
    n = np.asarray(side.slices.hu).shape[0]
    p = None if side.prediction is None else float(side.prediction.p_high_risk)
    colour = tuple(int(255 * c) for c in SIDE_COLORS[side.side])
    prob = "p(high risk) = n/a" if p is None else (
        f"p(high risk) = {p:.2f} -> {verdict_text(side.verdict_network)}")
    frames = []
    for s in range(n):
        tile = render_slice(side, s, scale=SCALE, letters_px=16)
        W, H = tile.size
        canvas = Image.new("RGB", (W, H + HEADER_PX + FOOTER_PX), (0, 0, 0))
        canvas.paste(tile, (0, HEADER_PX))
        d = ImageDraw.Draw(canvas)
        d.text((6, 2), f"{side.side.upper()} C2 pedicle", fill=colour, font=font(16, True))
        d.text((6, 22), f"slice {s + 1}/{n} (wide -> narrow), 1 mm", fill=(230, 230, 230),
               font=font(13))
        d.text((6, H + HEADER_PX + 3), prob, fill=(255, 255, 255), font=font(14, True))
        d.text((6, H + HEADER_PX + 22), DISCLAIMER, fill=(255, 130, 130),
               font=_fitting_font(d, DISCLAIMER, W - 10, 12))
        frames.append(canvas)
    return frames


def write_gif(side: SideAssessment, out_dir: Path, name: Optional[str] = None) -> Path:
    """Write the side's animated GIF (looping) into ``out_dir`` and return its path."""
    frames = render_frames(side)
    path = Path(out_dir) / (name or GIF_NAMES[side.side])
    pal = [f.quantize(colors=255, method=_FASTOCTREE) for f in frames]
    pal[0].save(path, save_all=True, append_images=pal[1:], duration=FRAME_MS, loop=0,
                optimize=False, disposal=1)
    return path
