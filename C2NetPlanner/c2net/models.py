"""Run-time model loading: ONNX Runtime only, sha256-verified against ``models.json``.

A model folder holds ``models.json`` (an index: one entry per model with ``id``, ``kind``,
``file``, ``sha256``, ``size_bytes``, ``version``, inputs/outputs, calibration temperature,
metrics, training data) and the ONNX files. :func:`load_model` picks the entry of the
requested kind, checks the file's sha256 (a mismatch is a :class:`~c2net.errors.ModelError`
with a hint) and opens an ONNX Runtime session on the CPU.

A user-given model (offline sites, retrained models) is accepted with ``path=``: a folder
with its own ``models.json``, or a single ``.onnx`` file exported by ``c2net export`` (its
kind and normalisation come from its metadata; if a ``models.json`` beside it lists the file,
the sha256 is verified too).

Where the default folder is: ``$C2NET_MODEL_DIR``, else ``<repository>/models`` (next to the
``C2NetPlanner`` folder), else ``c2net/_models`` (for installed wheels).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .errors import ModelError

KINDS = ("segmentation", "classifier")
INDEX_NAME = "models.json"
META_PREFIX = "c2net."

_CACHE: Dict[Tuple[str, int, int, int], OnnxModel] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class OnnxModel:
    """An ONNX Runtime session plus the model's identity and metadata.

    ``metadata`` holds the ``c2net.*`` metadata_props decoded from JSON with the prefix
    removed (``kind``, ``input``, ``window``, ``normalisation``, ``labels``, ``outputs``,
    ``temperature``, ``training_data``, ...).
    """

    kind: str
    session: Any
    metadata: Dict[str, Any]
    id: str
    version: str
    sha256: str
    path: Path
    entry: Optional[Dict[str, Any]] = None   # the models.json entry (None for a bare file)
    verified: bool = False                   # sha256 checked against a models.json entry
    threads: int = 1
    warnings: list = field(default_factory=list)

    @property
    def window(self) -> Tuple[float, float]:
        """(level_hu, width_hu)."""
        w = self.metadata.get("window", {})
        return float(w.get("level_hu", 800.0)), float(w.get("width_hu", 2000.0))

    @property
    def mean_std(self) -> Tuple[float, float]:
        n = self.metadata["normalisation"]
        return float(n["mean"]), float(n["std"])

    @property
    def temperature(self) -> float:
        if self.entry and self.entry.get("temperature") is not None:
            return float(self.entry["temperature"])
        return float(self.metadata.get("temperature", 1.0))

    def describe(self) -> Dict[str, Any]:
        """The identity block that reports carry (id, version, sha256, file, verified)."""
        return {"id": self.id, "kind": self.kind, "version": self.version, "sha256": self.sha256,
                "file": str(self.path), "verified_against_index": self.verified,
                "precision": self.metadata.get("precision"), "threads": self.threads,
                "basis": (self.entry or {}).get("basis")
                or "training data: " + str(self.metadata.get("training_data") or "not recorded")}

    def run(self, inputs: Dict[str, Any], outputs=None):
        return self.session.run(outputs, inputs)


def default_model_dir() -> Path:
    """``$C2NET_MODEL_DIR``, else ``<repo>/models``, else ``c2net/_models``."""
    env = os.environ.get("C2NET_MODEL_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    repo_models = here.parents[2] / "models"
    if (repo_models / INDEX_NAME).is_file():
        return repo_models
    return here.parent / "_models"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_index(model_dir: Path) -> Dict[str, Any]:
    """The parsed ``models.json`` of a folder (ModelError when missing or malformed)."""
    f = Path(model_dir) / INDEX_NAME
    if not f.is_file():
        raise ModelError(f"no {INDEX_NAME} in the model folder {model_dir}",
                         "Point --model-dir (or $C2NET_MODEL_DIR) at a folder with models.json "
                         "and the ONNX files, or give a model file with --seg-model/--cls-model.")
    try:
        with open(f, encoding="utf-8") as fh:
            index = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{f} cannot be read: {exc}",
                         "Restore models.json from the repository (git checkout models/).") from exc
    if not isinstance(index.get("models"), list):
        raise ModelError(f"{f} has no 'models' list", "Restore models.json from the repository.")
    return index


def onnx_metadata(session) -> Dict[str, Any]:
    """Decode the ``c2net.*`` metadata_props of a session (JSON values decoded)."""
    props = session.get_modelmeta().custom_metadata_map
    out: Dict[str, Any] = {}
    for k, v in props.items():
        if not k.startswith(META_PREFIX):
            continue
        key = k[len(META_PREFIX):]
        try:
            out[key] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[key] = v
    return out


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def session_options(threads: int):
    """ONNX Runtime options of every c2net session: ``threads`` intra-op threads, one inter-op
    thread, and no spin-waiting between operators. Spinning keeps the pool's threads busy
    after each parallel section; in this pipeline other work (the anatomical finder, the
    measurement's workers, a second batch worker) runs beside the networks on the same few
    cores, and the spinning threads take those cores from it (the U-Net's 16-slice call on a
    busy two-core machine: 0.33 -> 0.27 s wall, CPU 0.165 -> 0.135 s)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


def _session(path: Path, threads: int):
    import onnxruntime as ort

    so = session_options(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
        raise ModelError(f"ONNX Runtime cannot open {path}: {exc}",
                         "The file is corrupt or not an ONNX model; restore it (git checkout "
                         "models/) or re-export it with 'c2net export'.") from exc


def _open(path: Path, kind: str, threads: int, entry: Optional[dict], expected_sha: Optional[str]
          ) -> OnnxModel:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist",
                         "Restore the models folder (git checkout models/; large files may need "
                         "'git lfs pull') or give a model file explicitly.")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, int(threads))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None and cached.kind == kind and (expected_sha is None or cached.sha256 == expected_sha):
        return cached
    digest = sha256_file(path)
    if expected_sha is not None and digest.lower() != str(expected_sha).lower():
        raise ModelError(
            f"model file {path.name} does not match its recorded sha256 (expected "
            f"{str(expected_sha)[:12]}..., found {digest[:12]}...)",
            "The file was changed or corrupted. Restore it (git checkout models/ or 'git lfs "
            "pull'), or, if you retrained it on purpose, load it as a user-given model file "
            "(--seg-model/--cls-model) or update models.json with 'c2net export --register'.")
    sess = _session(path, threads)
    meta = onnx_metadata(sess)
    mkind = meta.get("kind")
    if mkind is not None and mkind != kind:
        raise ModelError(f"{path.name} is a {mkind} model, not a {kind} model",
                         "Give the segmentation model for segmentation and the classifier "
                         "for classification.")
    if "normalisation" not in meta:
        raise ModelError(f"{path.name} lacks the c2net metadata (normalisation, window, labels)",
                         "Export models with 'c2net export', which writes the metadata.")
    model = OnnxModel(kind=kind, session=sess, metadata=meta,
                      id=str((entry or {}).get("id") or meta.get("id") or path.stem),
                      version=str((entry or {}).get("version") or meta.get("version") or "unknown"),
                      sha256=digest, path=path, entry=entry, verified=expected_sha is not None,
                      threads=int(threads))
    with _CACHE_LOCK:
        _CACHE[key] = model
    return model


def _from_folder(kind: str, folder: Path, threads: int) -> OnnxModel:
    index = read_index(folder)
    entries = [e for e in index["models"] if e.get("kind") == kind]
    if not entries:
        raise ModelError(f"{folder / INDEX_NAME} lists no {kind} model",
                         "Add one with 'c2net export CHECKPOINT --register FOLDER'.")
    default = [e for e in entries if e.get("default")]
    entry = (default or entries)[0]
    if not entry.get("sha256") or not entry.get("file"):
        raise ModelError(f"the {kind} entry of {folder / INDEX_NAME} lacks file or sha256",
                         "Re-register the model with 'c2net export --register'.")
    return _open(folder / entry["file"], kind, threads, entry, entry["sha256"])


def load_model(kind: str, model_dir: Optional[Path] = None, path: Optional[Path] = None,
               threads: Optional[int] = None) -> OnnxModel:
    """Open the ``kind`` model ("segmentation" or "classifier") with ONNX Runtime on the CPU.

    ``path``: a user-given ``.onnx`` file or model folder (takes precedence). ``model_dir``:
    a folder with ``models.json`` (default :func:`default_model_dir`). ``threads``: ORT intra-op
    threads (default min(4, CPU count)). Sessions are cached per file, mtime and threads.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    threads = int(threads) if threads else _default_threads()
    if path is not None:
        path = Path(path)
        if path.is_dir():
            return _from_folder(kind, path, threads)
        entry, expected = None, None
        sibling = path.parent / INDEX_NAME
        if sibling.is_file():
            try:
                for e in read_index(path.parent)["models"]:
                    if e.get("file") == path.name:
                        entry, expected = e, e.get("sha256")
            except ModelError:
                entry, expected = None, None
        return _open(path, kind, threads, entry, expected)
    return _from_folder(kind, Path(model_dir) if model_dir else default_model_dir(), threads)


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def register_model(model_dir: Path, onnx_path: Path, extra: Optional[Dict[str, Any]] = None,
                   default: bool = True) -> Dict[str, Any]:
    """Add or replace ``onnx_path``'s entry in ``model_dir/models.json`` (sha256, size, spec).

    ``onnx_path`` must lie in ``model_dir``. ``extra`` (metrics, training data, notes) is
    merged into the entry. With ``default`` the entry becomes its kind's default.
    """
    model_dir, onnx_path = Path(model_dir), Path(onnx_path)
    if onnx_path.resolve().parent != model_dir.resolve():
        raise ModelError(f"{onnx_path} is not inside {model_dir}", "Export into the model folder.")
    sess = _session(onnx_path, 1)
    meta = onnx_metadata(sess)
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ModelError(f"{onnx_path.name} has no c2net kind metadata", "Export with 'c2net export'.")
    entry = {
        "id": meta.get("id", onnx_path.stem), "kind": kind, "version": meta.get("version"),
        "file": onnx_path.name, "sha256": sha256_file(onnx_path),
        "size_bytes": onnx_path.stat().st_size, "precision": meta.get("precision"),
        "inputs": [meta.get("input")], "outputs": meta.get("outputs"),
        "labels": meta.get("labels"), "window": meta.get("window"),
        "normalisation": meta.get("normalisation"), "temperature": meta.get("temperature", 1.0),
        "training_data": meta.get("training_data"), "default": bool(default),
    }
    entry.update(extra or {})
    f = model_dir / INDEX_NAME
    if f.is_file():
        index = read_index(model_dir)
    else:
        from . import DISCLAIMER

        index = {"schema": "c2netplanner-models", "schema_version": "1.0",
                 "disclaimer": DISCLAIMER, "models": []}
    models = [e for e in index["models"] if e.get("file") != onnx_path.name]
    if default:
        for e in models:
            if e.get("kind") == kind:
                e["default"] = False
    models.append(entry)
    index["models"] = sorted(models, key=lambda e: (e.get("kind", ""), e.get("id", "")))
    tmp = f.with_suffix(".json.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=2, default=float)
        fh.write("\n")
    os.replace(tmp, f)
    return entry
