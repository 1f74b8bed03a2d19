"""``isthmus_left.gif`` / ``isthmus_right.gif``: the classifier's five slices, animated.

Each frame is one 1 mm axial slice of :class:`c2net.results.IsthmusSlices` (wide -> narrow
along the pedicle) in the bone window, with the pedicle outline in the side's colour, the
Grad-CAM of the high-risk class as a colour overlay, the calibrated probability and the patient
orientation on the edges (radiological convention: patient right on the image's left, anterior
at the top).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import DISCLAIMER
from ..results import SideAssessment
from .style import SIDE_COLORS, verdict_text, window_to_unit

GIF_NAMES = {"left": "isthmus_left.gif", "right": "isthmus_right.gif"}
SCALE = 4            # 64 px (1 mm) -> 256 px
HEADER_PX = 40
FOOTER_PX = 38
FRAME_MS = 700
CAM_MIN = 0.15       # below this the heat map is not drawn


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:          # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _jet_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D boolean mask (4-neighbourhood)."""
    m = mask.astype(bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def render_frames(side: SideAssessment) -> List[Image.Image]:
    """The GIF frames (RGB PIL images) of one side; needs ``side.slices``."""
    slices = side.slices
    if slices is None:
        raise ValueError(f"no isthmus slices for the {side.side} side")
    hu = np.asarray(slices.hu, dtype=np.float32)
    n, h, w = hu.shape
    cam = None
    p = None
    if side.prediction is not None:
        cam = np.clip(np.nan_to_num(np.asarray(side.prediction.cam_high_risk, np.float32)), 0, 1)
        if cam.shape != hu.shape:
            cam = None
        p = float(side.prediction.p_high_risk)
    lut = _jet_lut()
    colour = np.array(SIDE_COLORS[side.side], np.float32) * 255
    big_font, font, small = _font(15), _font(13), _font(10)
    W, H = w * SCALE, h * SCALE
    frames = []
    for s in range(n):
        grey = window_to_unit(hu[s])[..., None].repeat(3, axis=2) * 255.0
        rgb = grey
        if cam is not None:
            a = np.where(cam[s] >= CAM_MIN, 0.45 * cam[s], 0.0)[..., None]
            heat = lut[(cam[s] * 255).astype(np.uint8)]
            rgb = rgb * (1 - a) + heat * a
        img = np.repeat(np.repeat(rgb, SCALE, axis=0), SCALE, axis=1)
        if slices.mask is not None:
            m = np.repeat(np.repeat(np.asarray(slices.mask[s]) > 0, SCALE, 0), SCALE, 1)
            img[_outline(m)] = colour
        canvas = Image.new("RGB", (W, H + HEADER_PX + FOOTER_PX), (0, 0, 0))
        canvas.paste(Image.fromarray(img.clip(0, 255).astype(np.uint8)), (0, HEADER_PX))
        d = ImageDraw.Draw(canvas)
        d.text((6, 3), f"{side.side.upper()} C2 pedicle", fill=tuple(int(c) for c in colour),
               font=big_font)
        d.text((6, 21), f"slice {s + 1}/{n} (wide -> narrow), 1 mm", fill=(230, 230, 230),
               font=font)
        prob = "p(high risk) = n/a" if p is None else (
            f"p(high risk) = {p:.2f}  -> {verdict_text(side.verdict_network)}")
        d.text((6, H + HEADER_PX + 3), prob, fill=(255, 255, 255), font=font)
        d.text((6, H + HEADER_PX + 22), DISCLAIMER.replace("\u2014", "-"), fill=(255, 120, 120),
               font=small)
        _orientation(d, W, H, HEADER_PX, font)
        frames.append(canvas)
    return frames


def _orientation(d: ImageDraw.ImageDraw, W: int, H: int, top: int, font) -> None:
    """Patient directions on the image edges: R left, L right, A top, P bottom."""
    box = dict(fill=(255, 255, 0), font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    d.text((4, top + H // 2 - 8), "R", **box)
    d.text((W - 14, top + H // 2 - 8), "L", **box)
    d.text((W // 2 - 4, top + 2), "A", **box)
    d.text((W // 2 - 4, top + H - 18), "P", **box)


def write_gif(side: SideAssessment, out_dir: Path, name: Optional[str] = None) -> Path:
    """Write the side's animated GIF (looping) into ``out_dir`` and return its path."""
    frames = render_frames(side)
    path = Path(out_dir) / (name or GIF_NAMES[side.side])
    pal = [f.convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for f in frames]
    pal[0].save(path, save_all=True, append_images=pal[1:], duration=FRAME_MS, loop=0,
                optimize=False, disposal=1)
    return path
