"""Typed errors with a clinician-readable message and an actionable hint.

Every refusal in the pipeline raises a subclass of :class:`C2NetError`. The command line turns
it into ``error: <message>`` / ``hint: <hint>`` on stderr and the exit code of the class; the
Slicer module shows the same two lines. ``code`` is a stable machine-readable identifier that
``report.json`` carries.
"""

from __future__ import annotations


class C2NetError(Exception):
    """Base class: something the user can act on (bad input, missing model, ...)."""

    code = "error"
    exit_code = 2
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InputError(C2NetError):
    """The input file or folder cannot be used (unreadable, empty, corrupt)."""

    code = "input_unreadable"


class NotCTError(InputError):
    """The input is an image but not a 3D CT (MR, 2D, RGB, constant, NaN, not HU)."""

    code = "not_ct"


class GeometryError(InputError):
    """The input geometry cannot be measured safely (tilt, irregular spacing, too coarse)."""

    code = "geometry"


class LocalisationError(C2NetError):
    """C2 could not be found (not in the field of view, only partly in it, too coarse)."""

    code = "c2_not_found"
    default_hint = (
        "Check that the scan covers C2 completely, or give a seed point on C2 (--seed X Y Z) "
        "or a vertebra label map (--vertebra-mask FILE --c2-label N)."
    )


class SegmentationError(C2NetError):
    """The pedicle segmentation is empty or implausible."""

    code = "segmentation_failed"


class MeasurementError(C2NetError):
    """A pedicle mask cannot be measured (no elongated pedicle, touches the volume edge...)."""

    code = "measurement_failed"


class ModelError(C2NetError):
    """A model file is missing, corrupt or does not match its recorded sha256."""

    code = "model_error"
    exit_code = 3


class OutputError(C2NetError):
    """The output folder cannot be written (exists and is not empty, no permission...)."""

    code = "output_error"
