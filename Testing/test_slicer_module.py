"""The Slicer module checked without Slicer (no fake ``slicer`` module: source, .ui and CMake).

* every script and resource the module uses is listed in its CMakeLists (the core's files by a
  glob that this test evaluates with CMake itself);
* the .ui parses, has every widget the code looks up, and every ``SlicerParameterName`` names a
  parameter of the ``@parameterNodeWrapper`` class with a widget type Slicer can bind to it;
* the module compiles under Python 3.9 and 3.12;
* the core never imports Slicer, Qt, VTK or CTK;
* the Logic opens no dialogs; thresholds shown come from the core, not from literals.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from c2net import slicer_process
from c2net.verdict import CUTOFF_SOURCES, DEFAULT_NETWORK_THRESHOLD, DEFAULT_SCREW_MM

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "C2NetPlanner"
MODULE_PY = MODULE_DIR / "C2NetPlanner.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "C2NetPlanner.ui"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
TOP_CMAKE = ROOT / "CMakeLists.txt"
REQUIREMENTS = MODULE_DIR / "Resources" / "requirements.txt"
CORE_DIR = MODULE_DIR / "c2net"

SOURCE = MODULE_PY.read_text(encoding="utf-8")
TREE = ast.parse(SOURCE)


# --------------------------------------------------------------------------- helpers
def _cmake_list(text: str, name: str) -> list:
    m = re.search(r"set\(\s*" + name + r"\s+(.*?)\)", text, re.S)
    assert m, f"no set({name} ...) in CMakeLists"
    return m.group(1).split()


def _core_files_on_disk() -> set:
    out = set()
    for p in CORE_DIR.rglob("*"):
        rel = p.relative_to(MODULE_DIR).as_posix()
        if p.is_dir() or "__pycache__" in p.parts or p.suffix in (".pyc", ".pyo", ".pyd"):
            continue
        if any(part.startswith(".") for part in p.relative_to(MODULE_DIR).parts):
            continue
        out.add(rel)
    return out


def _glob_with_cmake(tmp_dir: Path) -> tuple:
    """Run the CMakeLists' core-file block with ``cmake -P`` in the module folder."""
    text = MODULE_CMAKE.read_text(encoding="utf-8")
    block = text[text.index("# BEGIN c2net file list"):text.index("# END c2net file list")]
    # CONFIGURE_DEPENDS is a project-mode flag (re-glob at build time); script mode refuses it.
    block = block.replace("CONFIGURE_DEPENDS", "")
    script = block + ('\nmessage("SCRIPTS=${C2NET_PYTHON_SCRIPTS}")'
                      '\nmessage("RESOURCES=${C2NET_PYTHON_RESOURCES}")\n')
    script_file = tmp_dir / "c2net_files.cmake"
    script_file.write_text(script, encoding="utf-8")
    res = subprocess.run(["cmake", "-P", str(script_file)], capture_output=True,
                         text=True, cwd=MODULE_DIR, timeout=60)
    assert res.returncode == 0, res.stderr
    values = dict(line.split("=", 1) for line in res.stderr.splitlines() if "=" in line)
    return (set(filter(None, values["SCRIPTS"].split(";"))),
            set(filter(None, values["RESOURCES"].split(";"))))


def _class(name: str) -> ast.ClassDef:
    for node in TREE.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} not found in C2NetPlanner.py")


def _parameter_class() -> ast.ClassDef:
    found = [n for n in TREE.body if isinstance(n, ast.ClassDef)
             and any(ast.unparse(d) == "parameterNodeWrapper" for d in n.decorator_list)]
    assert len(found) == 1, "exactly one @parameterNodeWrapper class expected"
    return found[0]


def _parameters() -> dict:
    """name -> annotation source of the parameter class."""
    return {n.target.id: ast.unparse(n.annotation) for n in _parameter_class().body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def _enum_names() -> set:
    names = set()
    for node in TREE.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func) in ("enum.Enum", "Enum"):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.ClassDef) and any("Enum" in ast.unparse(b) for b in node.bases):
            names.add(node.name)
    return names


def _ui_widgets() -> dict:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def _ui_property(widget, name):
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            child = list(prop)[0]
            return child.text if child.tag != "stringlist" else [s.text for s in child]
    return None


# --------------------------------------------------------------------------- CMake lists
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_every_core_file_ships_with_the_module(tmp_path):
    scripts, resources = _glob_with_cmake(tmp_path)
    on_disk = _core_files_on_disk()
    assert scripts | resources == on_disk
    assert all(s.endswith(".py") for s in scripts)
    assert not any(r.endswith(".py") for r in resources)
    assert "c2net/slicer_process.py" in scripts and "c2net/__init__.py" in scripts
    if (CORE_DIR / "schemas" / "report.schema.json").exists():
        assert "c2net/schemas/report.schema.json" in resources


def test_explicit_module_files_are_listed_and_exist():
    text = MODULE_CMAKE.read_text(encoding="utf-8")
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES")
    explicit = [s.replace("${MODULE_NAME}", "C2NetPlanner") for s in scripts + resources
                if not s.startswith("${C2NET")]
    for rel in explicit:
        assert (MODULE_DIR / rel).is_file(), rel
    assert "C2NetPlanner.py" in explicit
    # every resource the module code opens is listed
    used = set(re.findall(r'resourcePath\("([^"]+)"\)', SOURCE))
    used |= {"requirements.txt"} if '"Resources", "requirements.txt"' in SOURCE else set()
    for rel in used:
        assert f"Resources/{rel}" in explicit, rel
    for rel in ("Resources/Icons/C2NetPlanner.png", "Resources/UI/C2NetPlanner.ui",
                "Resources/requirements.txt"):
        assert rel in explicit
    assert "WITH_GENERIC_TESTS" in text
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py", text)
    assert "add_subdirectory(Testing)" in text
    testing = (MODULE_DIR / "Testing" / "Python" / "CMakeLists.txt").read_text(encoding="utf-8")
    for script in re.findall(r"SCRIPT\s+\$\{CMAKE_CURRENT_SOURCE_DIR\}/(\S+)", testing):
        assert (MODULE_DIR / "Testing" / "Python" / script).is_file(), script


def test_extension_cmake_metadata_and_model_install():
    text = TOP_CMAKE.read_text(encoding="utf-8")
    assert re.search(r"project\(C2NetPlanner\)", text)
    for var in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(r"set\(" + var + r'\s+"[^"]+"', text), var
    assert 'set(EXTENSION_CATEGORY "Planning")' in text
    assert 'set(EXTENSION_DEPENDS "NA")' in text
    assert "add_subdirectory(C2NetPlanner)" in text
    assert "models/" in text and re.search(r"install\(FILES \$\{C2NET_MODEL_FILES\}", text)
    # the install destination is where c2net.models.default_model_dir() looks when installed
    assert 'C2NET_MODELS_SUBDIR "c2net/_models"' in text
    models_src = (CORE_DIR / "models.py").read_text(encoding="utf-8")
    assert '"_models"' in models_src
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


# --------------------------------------------------------------------------- .ui and bindings
def test_ui_has_every_widget_the_code_uses():
    widgets = _ui_widgets()
    used = set(re.findall(r"self\.ui\.([A-Za-z_]\w*)", SOURCE))
    assert used, "the module looks up no widget?"
    missing = sorted(used - set(widgets))
    assert not missing, f"widgets used in code but missing from the .ui: {missing}"
    root = ET.parse(UI_FILE).getroot()
    assert root.find("widget").get("class") == "qMRMLWidget"
    declared = {c.find("class").text for c in root.iter("customwidget")}
    standard = {"QLabel", "QPushButton", "QToolButton", "QComboBox", "QDoubleSpinBox", "QSpinBox",
                "QLineEdit", "QCheckBox", "QListWidget", "QProgressBar"}
    for w in widgets.values():
        assert w.get("class") in declared | standard, w.get("class")


# widget class -> predicate on the parameter annotation, after slicer's guiConnectors.py
def _binding_ok(widget_class: str, annotation: str, enums: set) -> bool:
    base = re.sub(r"^Annotated\[(\w+).*\]$", r"\1", annotation)
    if widget_class == "qMRMLNodeComboBox":
        return base.startswith("vtkMRML")
    if widget_class in ("QDoubleSpinBox", "ctkSliderWidget"):
        return base == "float"
    if widget_class in ("QSpinBox", "QSlider"):
        return base == "int"
    if widget_class in ("QCheckBox", "QPushButton"):
        return base == "bool"
    if widget_class in ("QLineEdit", "QTextEdit"):
        return base == "str"
    if widget_class == "QComboBox":
        return base in enums or "Choice(" in annotation
    if widget_class in ("ctkPathLineEdit", "ctkDirectoryButton"):
        return base in ("Path", "pathlib.Path")
    return False


def test_every_slicer_parameter_name_is_a_parameter_with_a_bindable_widget():
    params = _parameters()
    enums = _enum_names()
    bound = {}
    for name, widget in _ui_widgets().items():
        pname = _ui_property(widget, "SlicerParameterName")
        if pname is None:
            continue
        assert pname in params, f"{name}: SlicerParameterName {pname!r} is not a parameter"
        assert _binding_ok(widget.get("class"), params[pname], enums), \
            f"{name} ({widget.get('class')}) cannot represent {pname}: {params[pname]}"
        if widget.get("class") in ("ctkSliderWidget", "QSlider"):
            assert "WithinRange(" in params[pname], f"{pname}: a slider needs a bounded parameter"
        if widget.get("class") == "qMRMLNodeComboBox":
            types = _ui_property(widget, "nodeTypes")
            assert types and params[pname] in types, (name, types)
        assert pname not in bound, f"{pname} bound twice"
        bound[pname] = name
    for expected in ("inputVolume", "seedPoint", "cutoffPreset", "customCutoffMm",
                     "screwDiameterMm", "modelFolder", "heatmapOpacity", "outputSegmentation"):
        assert expected in bound, expected


def test_parameter_class_holds_inputs_settings_and_results():
    params = _parameters()
    for name in ("inputVolume", "seedPoint", "vertebraSegmentation", "vertebraSegmentId",
                 "cutoffPreset", "customCutoffMm", "screwDiameterMm", "modelFolder",
                 "heatmapOpacity", "outputSegmentation", "outputHeatmap", "outputTable",
                 "leftIsthmusLine", "rightIsthmusLine", "reportFolder", "reportJson"):
        assert name in params, name
    reserved = {"allParameters", "default", "isCached", "dataType", "getValue", "setValue",
                "connectGui", "connectParametersToGui", "disconnectGui", "StartModify",
                "EndModify", "AddObserver", "RemoveObserver", "Modified", "parameterNode"}
    assert not reserved & set(params)
    # the numeric ranges must be those the core's DecisionSettings accepts
    assert params["customCutoffMm"] == "Annotated[float, WithinRange(0.5, 20.0)]"
    assert params["screwDiameterMm"] == "Annotated[float, WithinRange(1.0, 10.0)]"


# --------------------------------------------------------------------------- Python versions
@pytest.mark.parametrize("version", ["3.9.18", "3.12.1"])
def test_module_compiles_under_slicer_python_versions(version, tmp_path):
    exe = Path(f"/root/.pyenv/versions/{version}/bin/python3")
    if not exe.exists():
        pytest.skip(f"Python {version} not installed here")
    for path in (MODULE_PY, MODULE_DIR / "Testing" / "Python" / "C2NetPlannerChildProcessTest.py",
                 CORE_DIR / "slicer_process.py", CORE_DIR / "slicer_geometry.py"):
        res = subprocess.run([str(exe), "-c", "import py_compile,sys; py_compile.compile(sys.argv[1], "
                              "cfile=sys.argv[2], doraise=True)", str(path), str(tmp_path / "x.pyc")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr


def test_module_parses_with_python_3_9_grammar():
    ast.parse(SOURCE, feature_version=(3, 9))
    for path in (CORE_DIR / "slicer_process.py", CORE_DIR / "slicer_geometry.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))


# --------------------------------------------------------------------------- structure
def test_module_has_the_template_classes():
    assert "ScriptedLoadableModule" in ast.unparse(_class("C2NetPlanner").bases[0])
    assert "ScriptedLoadableModuleWidget" in [ast.unparse(b) for b in _class("C2NetPlannerWidget").bases]
    assert "ScriptedLoadableModuleLogic" in [ast.unparse(b) for b in _class("C2NetPlannerLogic").bases]
    assert "ScriptedLoadableModuleTest" in [ast.unparse(b) for b in _class("C2NetPlannerTest").bases]
    logic_methods = {n.name for n in _class("C2NetPlannerLogic").body if isinstance(n, ast.FunctionDef)}
    for method in ("getParameterNode", "assess", "loadResults", "recomputeFromSegmentation",
                   "exportReport", "jumpToIsthmus", "missingRequirements"):
        assert method in logic_methods, method
    test_methods = {n.name for n in _class("C2NetPlannerTest").body if isinstance(n, ast.FunctionDef)}
    assert {"setUp", "runTest"} <= test_methods and any(m.startswith("test_") for m in test_methods)


def test_help_text_cites_the_paper_and_disclaims():
    init = ast.unparse(_class("C2NetPlanner"))
    assert "Bao et al." in init and "PLoS One 2026" in init
    assert "Preoperative evaluation of C2 pedicle screw placement using" in init
    assert "DISCLAIMER" in init and "acknowledgementText" in init
    assert "'Planning'" in init or '"Planning"' in init


def test_logic_opens_no_dialogs():
    dialog = re.compile(r"(errorDisplay|warningDisplay|infoDisplay|confirm\w*Display|QMessageBox|"
                        r"QFileDialog|QInputDialog|delayDisplay)")
    for name in ("C2NetPlannerLogic", "C2NetAssessmentRun"):
        src = ast.unparse(_class(name))
        assert not dialog.search(src), f"{name} opens a dialog: {dialog.search(src).group(0)}"


def test_dependencies_are_installed_on_demand_not_at_import():
    top_level_imports = set()
    for node in TREE.body:
        if isinstance(node, ast.Import):
            top_level_imports |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top_level_imports.add(node.module.split(".")[0])
    assert not top_level_imports & {"numpy", "SimpleITK", "onnxruntime", "matplotlib", "nrrd", "slicerio"}
    assert "pip_install(" not in ast.unparse(_class("C2NetPlannerLogic"))
    widget = ast.unparse(_class("C2NetPlannerWidget"))
    assert "ensureDependencies" in widget and "tryWithErrorDisplay" in widget
    assert "pip_ensure" in SOURCE and "slicer.util.pip_install" in SOURCE


def test_thresholds_shown_come_from_the_core():
    literals = {n.value for n in ast.walk(TREE) if isinstance(n, ast.Constant)
                and isinstance(n.value, float)}
    for value in list(CUTOFF_SOURCES) + [DEFAULT_SCREW_MM]:
        assert value not in literals, f"threshold {value} duplicated in the module"
    shown = " ".join(e.text or "" for e in ET.parse(UI_FILE).getroot().iter("string"))
    for value in list(CUTOFF_SOURCES) + [DEFAULT_NETWORK_THRESHOLD, DEFAULT_SCREW_MM]:
        for text in (f"{value:.2f}", f"{value:.1f} mm"):
            assert text not in shown, f"{value} written into the .ui text"
    assert "DEFAULT_NETWORK_THRESHOLD" in SOURCE and "cutoff_source(" in SOURCE


def test_seed_and_lines_cross_the_ras_lps_boundary():
    logic = ast.unparse(_class("C2NetPlannerLogic"))
    assert "ras_to_lps_points" in logic  # seed point: Slicer RAS -> core LPS
    assert "line_endpoints_lps_to_ras" in logic and "lps_to_ras_points" in logic
    assert "sitk_geometry_from_ijk_to_ras" in logic  # volume -> array via IJKToRAS


# --------------------------------------------------------------------------- core purity
FORBIDDEN = {"slicer", "qt", "vtk", "ctk", "PythonQt", "__main__", "mrml", "vtkmodules", "sitkUtils"}


def test_core_imports_no_slicer_qt_vtk():
    offenders = []
    for path in CORE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("__import__", "importlib.import_module") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]
            for n in names:
                if n.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {n}")
    assert not offenders, offenders


def test_core_adapters_import_without_slicer_in_a_fresh_interpreter():
    code = ("import sys; import c2net.slicer_process, c2net.slicer_geometry; "
            "bad = [m for m in ('slicer', 'qt', 'vtk', 'ctk') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(MODULE_DIR)})
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------- requirements, icon
def test_requirements_lower_bounds_only_and_nothing_slicer_ships():
    specs = slicer_process.parse_requirements(REQUIREMENTS.read_text(encoding="utf-8"))
    from packaging.requirements import Requirement

    reqs = [Requirement(s) for s in specs]
    names = {r.name.lower() for r in reqs}
    assert "onnxruntime" in names
    assert not names & {"numpy", "simpleitk", "vtk", "scipy", "pillow", "torch"}
    for r in reqs:
        assert r.specifier, f"{r.name} needs a lower bound"
        assert all(s.operator == ">=" for s in r.specifier), f"{r}: lower bound only"


def test_missing_requirements_check():
    versions = {"onnxruntime": "1.15.0", "slicerio": "1.2.0"}

    def version_of(name):
        if name not in versions:
            raise LookupError(name)
        return versions[name]

    missing = slicer_process.missing_requirements(
        ["onnxruntime>=1.16", "slicerio>=1.0", "pynrrd>=1.0", "pywin32>=300; sys_platform == 'nt-never'"],
        version_of=version_of)
    assert missing == ["onnxruntime>=1.16", "pynrrd>=1.0"]
    assert slicer_process.parse_requirements("# c\n\n-r other.txt\nfoo>=1 # why\n") == ["foo>=1"]


def test_icons_are_128_pixel_pngs():
    for path in (MODULE_DIR / "Resources" / "Icons" / "C2NetPlanner.png",
                 ROOT / "Resources" / "Icons" / "C2NetPlanner.png"):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (128, 128)
