"""The paper's networks: a five-level 2D U-Net and the C3D classifier with Grad-CAM.

Both follow Bao et al. (PLoS One 2026):

* :class:`UNet2D` - five resolution levels, two 3x3 convolutions + ReLU per level, encoder
  channels 64-128-256-512-512 (``widths``), 2x2 max-pool down, bilinear 2x upsampling +
  concatenation with the skip connection up, 1x1 convolution to three classes
  (0 background, 1 patient-left C2 pedicle, 2 patient-right C2 pedicle).
  Input ``(B, 3, H, W)`` with H and W multiples of 16.
* :class:`C3D` - four 3D conv blocks of 16, 32, 64, 128 channels (3x3x3, padding 1, ReLU,
  max-pool), fully connected 4096 -> 1024 -> 2 with dropout 0.5. Input ``(B, 3, 5, 64, 64)``.
  Pools (1,2,2), (2,2,2), (2,2,2), (1,2,2) take the depth 5 -> 5 -> 2 -> 1 -> 1.

:class:`C3DWithCam` wraps a trained C3D so that one forward pass returns the logits *and* the
Grad-CAM maps of both classes computed with forward operations only (no autograd), which
exports to ONNX. See :meth:`C3D.forward_with_cam` for the derivation.

``width`` parameters exist so that tests can build tiny networks; the shipped models use the
paper's widths.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

UNET_PAPER_WIDTHS = (64, 128, 256, 512, 512)
C3D_PAPER_WIDTHS = (16, 32, 64, 128)
C3D_PAPER_FC = (4096, 1024)
C3D_POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """Five-level 2D U-Net (paper widths 64-128-256-512-512 by default).

    Returns raw logits ``(B, n_classes, H, W)``; H and W must be multiples of 16.
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 3,
                 widths: Sequence[int] = UNET_PAPER_WIDTHS):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 5:
            raise ValueError("the paper's U-Net has five levels: give five widths")
        self.widths = widths
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList()
        for level in range(3, -1, -1):  # decoder levels 4..1 (0-based 3..0)
            self.up.append(_double_conv(cin + widths[level], widths[level]))
            cin = widths[level]
        self.head = nn.Conv2d(cin, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck is not a skip
        for block in self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


class C3D(nn.Module):
    """The paper's C3D: 4 conv blocks (16/32/64/128), FC 4096 -> 1024 -> 2, dropout 0.5.

    ``input_shape`` is (depth, height, width) of one item, (5, 64, 64) for the paper's five
    1 mm isthmus slices; it fixes the size of the first fully connected layer.
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 2,
                 widths: Sequence[int] = C3D_PAPER_WIDTHS, fc: Sequence[int] = C3D_PAPER_FC,
                 input_shape: Sequence[int] = (5, 64, 64), dropout: float = 0.5):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        fc = tuple(int(f) for f in fc)
        if len(widths) != 4 or len(fc) != 2:
            raise ValueError("the paper's C3D has four conv blocks and two hidden FC layers")
        self.widths, self.fc_sizes = widths, fc
        self.in_channels, self.n_classes = in_channels, n_classes
        self.input_shape = tuple(int(s) for s in input_shape)
        self.convs = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.convs.append(nn.Conv3d(cin, w, 3, padding=1))
            cin = w
        d, h, w_ = self.input_shape
        for pd, ph, pw in C3D_POOLS[:-1]:
            d, h, w_ = d // pd, h // ph, w_ // pw
        #: spatial shape (D, H, W) of the last conv block's activation (before its pool)
        self.cam_shape = (d, h, w_)
        pd, ph, pw = C3D_POOLS[-1]
        self.pooled_shape = (d // pd, h // ph, w_ // pw)
        if min(self.pooled_shape) < 1:
            raise ValueError(f"input {self.input_shape} is too small for four poolings")
        if any(s % p for s, p in zip(self.cam_shape, C3D_POOLS[-1])):
            raise ValueError("the last block's activation must divide evenly by its pool "
                             f"(got {self.cam_shape}); use a multiple of 16 in-plane")
        flat = widths[-1] * self.pooled_shape[0] * self.pooled_shape[1] * self.pooled_shape[2]
        self.fc1 = nn.Linear(flat, fc[0])
        self.fc2 = nn.Linear(fc[0], fc[1])
        self.fc3 = nn.Linear(fc[1], n_classes)
        self.dropout = nn.Dropout(dropout)

    def features(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(post-ReLU activation of the last conv block, its max-pooled version)."""
        act = x
        for i, conv in enumerate(self.convs):
            act = F.relu(conv(x))
            x = F.max_pool3d(act, C3D_POOLS[i])
        return act, x

    def head(self, pooled: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits and the two hidden pre-activations of the fully connected head."""
        f = pooled.flatten(1)
        a1 = self.fc1(f)
        a2 = self.fc2(self.dropout(F.relu(a1)))
        z = self.fc3(self.dropout(F.relu(a2)))
        return z, a1, a2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, pooled = self.features(x)
        return self.head(pooled)[0]

    def forward_with_cam(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)`` and Grad-CAM ``(B, C, D, H, W)`` of every class, 0..1.

        Grad-CAM of class c uses the gradient of the *logit* z_c with respect to the post-ReLU
        activation A of the last conv block (evaluate in eval mode: dropout is then identity).
        Through the head Linear-ReLU-Linear-ReLU-Linear the gradient with respect to the
        flattened pooled features is ``((W3[c] * 1[a2>0]) @ W2 * 1[a1>0]) @ W1`` - computed for
        all classes at once as batched matrix products. The last max-pool does not overlap,
        so each pooled gradient flows to exactly one position of A and the channel weight
        ``alpha_k = mean over A_k's positions of dz/dA`` equals ``sum(g_pooled_k) / |A_k|``
        without routing. CAM = ReLU(sum_k alpha_k A_k), trilinearly upsampled to the input
        size and divided by its maximum (``clamp_min(1e-6)`` keeps an all-zero map at 0).
        """
        act, pooled = self.features(x)
        z, a1, a2 = self.head(pooled)
        b = x.shape[0]
        w3 = self.fc3.weight.unsqueeze(0).expand(b, -1, -1)           # (B, C, F2)
        g = w3 * (a2 > 0).to(x.dtype).unsqueeze(1)                     # (B, C, F2)
        g = torch.matmul(g, self.fc2.weight)                           # (B, C, F1)
        g = g * (a1 > 0).to(x.dtype).unsqueeze(1)
        g = torch.matmul(g, self.fc1.weight)                           # (B, C, K*d*h*w)
        k = act.shape[1]
        n_pos = float(self.cam_shape[0] * self.cam_shape[1] * self.cam_shape[2])
        alpha = g.reshape(b, g.shape[1], k, -1).sum(dim=3) / n_pos     # (B, C, K)
        cam = torch.einsum("bck,bkdhw->bcdhw", alpha, act)
        cam = F.relu(cam)
        cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)
        peak = cam.flatten(2).amax(dim=2).clamp_min(1e-6)
        return z, cam / peak[:, :, None, None, None]


class C3DWithCam(nn.Module):
    """Export wrapper: ``forward(x) -> (logits, cam)`` (see :meth:`C3D.forward_with_cam`)."""

    def __init__(self, net: C3D):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_with_cam(x)


def autograd_gradcam(net: C3D, x: torch.Tensor, cls: int) -> torch.Tensor:
    """Reference Grad-CAM with torch autograd (for tests): logit ``cls``, eval mode assumed.

    Same definition as :meth:`C3D.forward_with_cam`: post-ReLU last conv block, channel
    weights = spatial mean of the gradient, ReLU, trilinear upsampling, divide by the maximum.
    """
    act, pooled = net.features(x)
    act.retain_grad()
    z, _, _ = net.head(pooled)
    net.zero_grad()
    z[:, cls].sum().backward()
    alpha = act.grad.flatten(2).mean(dim=2)                             # (B, K)
    cam = F.relu((alpha[:, :, None, None, None] * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear", align_corners=False)
    peak = cam.flatten(2).amax(dim=2).clamp_min(1e-6)
    return (cam / peak[:, :, None, None, None])[:, 0].detach()


def build_net(kind: str, arch: dict) -> nn.Module:
    """Rebuild a network from the ``arch`` dict stored in checkpoints."""
    if kind == "segmentation":
        return UNet2D(**arch)
    if kind == "classifier":
        return C3D(**arch)
    raise ValueError(f"unknown network kind {kind!r}")


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
