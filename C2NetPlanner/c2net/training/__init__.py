"""Training, calibration and ONNX export of the C2-Net networks (needs torch: the ``[train]`` extra).

Research use only - not a medical device.

Nothing in the run-time pipeline imports this package: at run time the models are loaded
from ONNX files with ONNX Runtime only (:mod:`c2net.models`).

Modules
-------
* :mod:`.nets`      - the paper's 2D U-Net and C3D (with Grad-CAM as forward operations)
* :mod:`.data`      - manifest readers and preprocessing (canonical 1 mm crops, windowing, caches)
* :mod:`.splits`    - patient-level 8:2 splits repeated ten times
* :mod:`.train`     - the training loops (Adam, cosine annealing, early stopping, checkpoints)
* :mod:`.calibrate` - temperature scaling on validation logits
* :mod:`.export`    - ONNX export with metadata (input spec, window, normalisation, labels)
* :mod:`.heldout`   - metrics of exported models on a held-out phantom cohort
"""
