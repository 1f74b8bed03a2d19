"""C2NetPlanner: "Assess C2" - C2 pedicle screw planning in 3D Slicer.

A thin adapter over the Slicer-free core package ``c2net`` (in this folder): the Widget
collects inputs and shows results, the Logic moves data between MRML and the core, and every
decision (localisation, segmentation, measurement, classification, verdicts) is the core's.
The core runs in a child ``PythonSlicer`` process so that Slicer never freezes; the protocol
between the two lives in ``c2net.slicer_process`` and the RAS <-> LPS conversions in
``c2net.slicer_geometry`` (both tested without Slicer).

Research use only - not a medical device.
"""

import enum
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Annotated, Callable, Dict, List, Optional

import qt
import slicer
import vtk

# The core's light, pure-Python parts only: numpy, SimpleITK and onnxruntime are imported
# where they are needed, after the dependency check (never at module import).
from c2net import DISCLAIMER, slicer_geometry, slicer_process
from c2net import __version__ as C2NET_VERSION
from c2net.progress import STAGES
from c2net.verdict import (
    CUTOFF_SOURCES,
    DEFAULT_CUTOFF_MM,
    DEFAULT_NETWORK_THRESHOLD,
    DEFAULT_SCREW_MM,
    DecisionSettings,
    cutoff_source,
)
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsLineNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

SIDES = ("left", "right")
SEGMENT_NAMES = {"left": "C2 pedicle left", "right": "C2 pedicle right"}
SEGMENT_COLORS = {"left": (0.20, 0.60, 1.00), "right": (1.00, 0.55, 0.15)}
#: DICOM/SNOMED terminology: C2 vertebra (SCT 39976000) with laterality; Slicer's default
#: anatomy lists have no code for the pedicle itself.
SEGMENT_TERMINOLOGY = {
    side: ("Segmentation category and type - DICOM master list"
           "~SCT^123037004^Anatomical Structure"
           "~SCT^39976000^C2 vertebra"
           f"~SCT^{code}^{meaning}"
           "~Anatomic codes - DICOM master list~^^~^^|")
    for side, code, meaning in (("left", "7771000", "Left"), ("right", "24028007", "Right"))
}
HEATMAP_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"
#: Grad-CAM maps are shown above 0.5 (maps are normalised to 0..1), the paper's threshold. When
#: the core states its own value in report["settings"]["cam_threshold"], that one is used.
HEATMAP_DISPLAY_THRESHOLD = 0.5
VERDICT_WORDS = {"low_risk": "low risk", "high_risk": "HIGH RISK", "borderline": "borderline",
                 None: "n/a"}
#: Which segmenter produced a side's mask (report.json "segmenter").
SEGMENTER_WORDS = {"unet": "U-Net", "anatomical_finder": "anatomical finder", None: "given"}


#
# C2NetPlanner
#


class C2NetPlanner(ScriptedLoadableModule):
    """Module description (title, category, help, acknowledgement)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("C2NetPlanner")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Planning")]
        self.parent.dependencies = []
        self.parent.contributors = ["C2NetPlanner contributors"]
        self.parent.helpText = _(
            "<p><b>Assess C2</b>: from a cervical CT, is there room for a {screw:.1f} mm screw in each "
            "C2 pedicle? The module finds C2, segments both pedicles, measures the narrowest "
            "isthmus (minimum pedicle diameter, MPD) and runs the C2-Net classifier, then shows "
            "the segmentation, a line across each isthmus, an attention (Grad-CAM) heat map and "
            "a table with both verdicts side by side.</p>"
            "<p>Select the CT, optionally a seed point on C2 or a vertebra segmentation, and "
            "click <i>Assess C2</i>. Click a table row to centre the views on that isthmus. After "
            "editing the pedicle segments, <i>Recompute from edited segmentation</i> re-runs only "
            "the measurement and classification.</p>"
            "<p>Method: Bao et al., \"Preoperative evaluation of C2 pedicle screw placement using "
            "a deep learning model\", PLoS One 2026. Default MPD cutoff {cutoff:.2f} mm: "
            "{cutoffSource}</p>"
            "<p><b>{disclaimer}</b> The verdicts support, and never replace, the surgeon's own "
            "reading of the CT.</p>"
            "<p>Documentation: <a href=\"https://github.com/c2netplanner/C2NetPlanner\">"
            "github.com/c2netplanner/C2NetPlanner</a>. Core version {version}.</p>"
        ).format(disclaimer=DISCLAIMER, version=C2NET_VERSION, cutoff=DEFAULT_CUTOFF_MM, screw=DEFAULT_SCREW_MM,
                 cutoffSource=cutoff_source(DEFAULT_CUTOFF_MM))
        self.parent.acknowledgementText = _(
            "C2NetPlanner reimplements C2-Net (Bao et al., PLoS One 2026) as an open-source 3D "
            "Slicer extension. It builds on 3D Slicer, SimpleITK and ONNX Runtime. Real-anatomy "
            "development data: U.S. National Library of Medicine Visible Human Project."
        )


#
# Parameters
#


def _cutoffPresetMembers():
    """Enum members from the core's cutoff table (largest first) plus a custom entry."""
    members = [(f"MM_{int(round(value * 100)):03d}", value)
               for value in sorted(CUTOFF_SOURCES, reverse=True)]
    members.append(("CUSTOM", -1.0))
    return members


CutoffPreset = enum.Enum("CutoffPreset", _cutoffPresetMembers())


def _cutoffPresetLabel(preset) -> str:
    """Combo-box text, e.g. ``4.78 mm - Wu et al. 2023``."""
    if preset.value < 0:
        return _("Custom…")
    source = CUTOFF_SOURCES[preset.value]
    short = source.split(":")[0].split(",")[0].strip().rstrip(".")
    if len(short) > 48:
        short = short[:47] + "…"
    default = _(" (default)") if abs(preset.value - DEFAULT_CUTOFF_MM) < 1e-9 else ""
    return f"{preset.value:.2f} mm \u2014 {short}{default}"


# The GUI connector of the parameter node wrapper names enum entries with ``label(member)``.
CutoffPreset.label = _cutoffPresetLabel
DEFAULT_CUTOFF_PRESET = next(p for p in CutoffPreset if abs(p.value - DEFAULT_CUTOFF_MM) < 1e-9)


@parameterNodeWrapper
class C2NetPlannerParameterNode:
    """Everything the module needs to redo or restore an assessment (saved with the scene).

    inputVolume - the CT.
    seedPoint - optional markups point list; its first point (RAS) marks C2.
    vertebraSegmentation / vertebraSegmentId - optional existing C2 vertebra segment.
    leftTrajectory / rightTrajectory - optional markups lines (entry, then target): that side
        is measured along the surgeon's line instead of its segmented mask.
    cutoffPreset / customCutoffMm - MPD cutoff (mm) of the measured-width verdict.
    screwDiameterMm - planned screw diameter (mm).
    modelFolder - folder with C2-Net models (empty: the models shipped with the extension).
    threads - CPU threads for the child process (0: automatic).
    heatmapOpacity / showHeatmap - display of the attention map.
    outputSegmentation ... rightIsthmusLine - the result nodes.
    reportFolder / reportJson - the core's report of the last assessment.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    seedPoint: vtkMRMLMarkupsFiducialNode
    vertebraSegmentation: vtkMRMLSegmentationNode
    vertebraSegmentId: str = ""
    leftTrajectory: vtkMRMLMarkupsLineNode
    rightTrajectory: vtkMRMLMarkupsLineNode
    cutoffPreset: CutoffPreset = DEFAULT_CUTOFF_PRESET
    customCutoffMm: Annotated[float, WithinRange(0.5, 20.0)] = DEFAULT_CUTOFF_MM
    screwDiameterMm: Annotated[float, WithinRange(1.0, 10.0)] = DEFAULT_SCREW_MM
    modelFolder: str = ""
    threads: Annotated[int, WithinRange(0, 64)] = 0
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    showHeatmap: bool = True
    outputSegmentation: vtkMRMLSegmentationNode
    outputHeatmap: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode
    leftIsthmusLine: vtkMRMLMarkupsLineNode
    rightIsthmusLine: vtkMRMLMarkupsLineNode
    reportFolder: str = ""
    reportJson: str = ""


def cutoffMmFromParameters(parameterNode) -> float:
    """The MPD cutoff (mm) the parameters select."""
    preset = parameterNode.cutoffPreset
    return float(parameterNode.customCutoffMm) if preset.value < 0 else float(preset.value)


#
# C2NetPlannerWidget
#


class C2NetPlannerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs, settings, Assess C2 / Cancel, stage list, results."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._updatingSegmentSelector = False
        self._lastHeatmapState = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/C2NetPlanner.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = C2NetPlannerLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Texts that state what is used; all come from the core.
        self.ui.networkThresholdLabel.text = _(
            "C2-Net: high risk when P(high risk) \u2265 {threshold:.2f}").format(
            threshold=DEFAULT_NETWORK_THRESHOLD)
        self.ui.disclaimerLabel.text = DISCLAIMER
        self.ui.placeSeedWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.placeSeedWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceSingleMarkup
        self._resetStageList()

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.modelFolderBrowseButton.connect("clicked()", self.onBrowseModelFolder)
        self.ui.vertebraSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onVertebraSegmentationChanged)
        self.ui.vertebraSegmentSelector.connect("currentSegmentChanged(QString)", self.onVertebraSegmentChanged)
        self.ui.seedPointSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSeedNodeChanged)
        self.ui.jumpLeftButton.connect("clicked()", lambda: self.onJumpToSide("left"))
        self.ui.jumpRightButton.connect("clicked()", lambda: self.onJumpToSide("right"))
        self.ui.resultsTableView.connect("clicked(QModelIndex)", self.onResultsTableClicked)
        self.ui.recomputeButton.connect("clicked()", self.onRecomputeButton)
        self.ui.exportReportButton.connect("clicked()", self.onExportReportButton)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None:
            self._run.cancel()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        if self._run is not None:
            self._run.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: Optional[C2NetPlannerParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    # -- GUI state -------------------------------------------------------------------
    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self._run is not None
        custom = p.cutoffPreset.value < 0
        self.ui.customCutoffSpinBox.enabled = custom and not running
        self.ui.cutoffSourceLabel.text = cutoff_source(cutoffMmFromParameters(p))
        self.ui.placeSeedWidget.setCurrentNode(p.seedPoint)
        self._updateSegmentSelector()
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the assessment (stops the background process).")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.text = _("Assess C2")
            ready, why = self.logic.inputsReady(p)
            self.ui.applyButton.enabled = ready
            self.ui.applyButton.toolTip = why or _(
                "Find C2, segment and measure both pedicles, classify the screw risk.")
        hasResults = bool(p.reportJson)
        for widget in (self.ui.jumpLeftButton, self.ui.jumpRightButton, self.ui.exportReportButton):
            widget.enabled = hasResults and not running
        self.ui.recomputeButton.enabled = hasResults and not running and p.outputSegmentation is not None
        self.ui.resultsTableView.setMRMLTableNode(p.outputTable)
        self.ui.resultsCollapsibleButton.enabled = hasResults
        self.ui.summaryLabel.text = self.logic.summaryText(p) if hasResults else ""
        heatmapState = (p.outputHeatmap.GetID() if p.outputHeatmap else None,
                        round(float(p.heatmapOpacity), 3), bool(p.showHeatmap))
        if heatmapState != self._lastHeatmapState:
            self._lastHeatmapState = heatmapState
            self.logic.updateHeatmapDisplay(p)

    def _updateSegmentSelector(self) -> None:
        p = self._parameterNode
        self._updatingSegmentSelector = True
        try:
            self.ui.vertebraSegmentSelector.setCurrentNode(p.vertebraSegmentation)
            if p.vertebraSegmentation is not None and p.vertebraSegmentId:
                self.ui.vertebraSegmentSelector.setCurrentSegmentID(p.vertebraSegmentId)
        finally:
            self._updatingSegmentSelector = False

    def onVertebraSegmentationChanged(self, node) -> None:
        if self._updatingSegmentSelector or self._parameterNode is None:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.vertebraSegmentation = node
            self._parameterNode.vertebraSegmentId = self.ui.vertebraSegmentSelector.currentSegmentID() or ""

    def onVertebraSegmentChanged(self, segmentId) -> None:
        if self._updatingSegmentSelector or self._parameterNode is None:
            return
        self._parameterNode.vertebraSegmentId = segmentId or ""

    def onSeedNodeChanged(self, node) -> None:
        self.ui.placeSeedWidget.setCurrentNode(node)

    def onBrowseModelFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Folder with C2-Net models (models.json)"),
            self._parameterNode.modelFolder or "")
        if folder:
            self._parameterNode.modelFolder = folder

    def _resetStageList(self) -> None:
        self.ui.stageListWidget.clear()
        for _name, label in STAGES:
            self.ui.stageListWidget.addItem(slicer_process.StageStatus(_name, label).text())
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = ""

    # -- Assess C2 / Cancel ---------------------------------------------------------------
    def onApplyButton(self) -> None:
        if self._run is not None:
            self.ui.statusLabel.text = _("Cancelling…")
            self._run.cancel()
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the assessment."), waitCursor=True):
            if not self.ensureDependencies():
                return
            self._resetStageList()
            p = self._parameterNode
            self._run = self.logic.assessFromParameters(
                p, waitForCompletion=False,
                progressCallback=self.onAssessmentProgress,
                completedCallback=self.onAssessmentCompleted)
            self.ui.statusLabel.text = _("Running in the background (Slicer stays usable)…")
            self._onParameterNodeModified()

    def ensureDependencies(self) -> bool:
        """Install missing Python packages after the user agreed (never at import time)."""
        missing = self.logic.missingRequirements()
        if not missing:
            return True
        requirementsPath = self.resourcePath("requirements.txt")
        pipEnsure, loadRequirements = _findPipEnsure()
        if pipEnsure is not None:
            requirements = loadRequirements(requirementsPath)
            try:
                pipEnsure(requirements, requester="C2NetPlanner")
            except RuntimeError as exc:  # the user declined
                slicer.util.warningDisplay(
                    _("C2NetPlanner needs these Python packages: {packages}.\n{why}").format(
                        packages=", ".join(missing), why=exc))
                return False
        else:
            text = _("C2NetPlanner needs these Python packages, which are not installed yet:\n\n"
                     "{packages}\n\nInstall them now? This needs an internet connection once "
                     "and may take a few minutes.").format(packages="\n".join(missing))
            if not slicer.util.confirmOkCancelDisplay(text, windowTitle=_("Install dependencies")):
                return False
            with slicer.util.WaitCursor():
                slicer.util.pip_install(" ".join(missing))
        still = self.logic.missingRequirements()
        if still:
            if slicer.app.testingEnabled():
                logging.warning("C2NetPlanner: testing mode, not installing %s", still)
                return True
            raise RuntimeError(_("Still missing after installation: {packages}. Restart Slicer "
                                 "and try again.").format(packages=", ".join(still)))
        return True

    def onAssessmentProgress(self, run) -> None:
        stages = run.reader.stage_list()
        for row, status in enumerate(stages):
            item = self.ui.stageListWidget.item(row)
            if item is not None:
                item.setText(status.text())
        self.ui.progressBar.value = int(round(100 * run.reader.overall_fraction))
        current = run.reader.current_stage
        if current:
            self.ui.statusLabel.text = _("{stage} \u2014 {seconds:.0f} s").format(
                stage=run.reader.stages[current].label, seconds=run.elapsed_s)

    def onAssessmentCompleted(self, run) -> None:
        self._run = None
        self.onAssessmentProgress(run)
        outcome = run.outcome
        if outcome.ok:
            self.ui.progressBar.value = 100
            self.ui.statusLabel.text = _("Done in {seconds:.1f} s.").format(seconds=run.elapsed_s)
        elif outcome.status == slicer_process.CANCELLED:
            self.ui.statusLabel.text = _("Cancelled.")
        else:
            self.ui.statusLabel.text = outcome.message
            slicer.util.errorDisplay(outcome.user_message(), windowTitle=_("Assess C2"),
                                     detailedText="\n".join(outcome.log_tail))
        if run.loadError:
            slicer.util.errorDisplay(_("The assessment finished but its results could not be "
                                       "loaded: {error}").format(error=run.loadError))
        self._onParameterNodeModified()

    # -- results ----------------------------------------------------------------------
    def onJumpToSide(self, side: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot jump to the isthmus."), waitCursor=False):
            self.logic.jumpToIsthmus(self._parameterNode, side)

    def onResultsTableClicked(self, index) -> None:
        table = self._parameterNode.outputTable
        if table is None or not index.isValid():
            return
        row = index.row()
        if 0 <= row < table.GetNumberOfRows():
            side = table.GetCellText(row, 0).strip().lower()
            if side in SIDES:
                self.onJumpToSide(side)

    def onRecomputeButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Recompute failed."), waitCursor=True):
            if not self.ensureDependencies():
                return
            self.logic.recomputeFromSegmentation(self._parameterNode)
            self.ui.statusLabel.text = _("Recomputed from the edited segmentation.")
        self._onParameterNodeModified()

    def onExportReportButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(), _("Export the C2 report to folder"), "")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Report export failed."), waitCursor=True):
            exported = self.logic.exportReport(self._parameterNode, folder)
            slicer.util.infoDisplay(_("Report written to:\n{folder}").format(folder=exported),
                                    windowTitle=_("Export report"))


def _findPipEnsure():
    """``(pip_ensure, load_requirements)`` of this Slicer (>= 5.11), or ``(None, None)``."""
    for moduleName in ("slicer.pydeps", "slicer.packaging"):
        try:
            module = __import__(moduleName, fromlist=["pip_ensure"])
        except ImportError:
            continue
        pipEnsure = getattr(module, "pip_ensure", None)
        if pipEnsure is None:
            continue
        loadRequirements = getattr(module, "load_requirements", None)
        if loadRequirements is None:
            from packaging.requirements import Requirement

            def loadRequirements(path):
                with open(path, encoding="utf-8") as f:
                    return [Requirement(spec) for spec in slicer_process.parse_requirements(f.read())]
        return pipEnsure, loadRequirements
    return None, None


#
# C2NetPlannerLogic
#


class C2NetAssessmentRun:
    """One running "Assess C2": the child process plus where its results go.

    ``progressCallback(run)`` / ``completedCallback(run)`` are called on Slicer's main thread
    (from a QTimer); after completion ``outcome`` says how it ended and ``results`` holds the
    loaded result nodes (``None`` unless the outcome is OK).
    """

    POLL_INTERVAL_MS = 100

    def __init__(self, logic, process, parameterNode, inputVolume, workDir,
                 progressCallback=None, completedCallback=None):
        self.logic = logic
        self.process = process
        self.parameterNode = parameterNode
        self.inputVolume = inputVolume
        self.workDir = workDir
        self.progressCallback = progressCallback
        self.completedCallback = completedCallback
        self.results = None
        self.loadError = ""
        self.timer = None

    @property
    def reader(self):
        return self.process.reader

    @property
    def outcome(self):
        return self.process.outcome

    @property
    def elapsed_s(self) -> float:
        return self.process.elapsed_s

    def startPolling(self) -> None:
        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self.poll)
        self.timer.start()

    def poll(self) -> bool:
        """Drain the child's output; returns True once finished (results loaded)."""
        events = self.process.poll()
        for event in events:
            if event.kind == "log" and event.line.strip():
                logging.info("c2net: %s", event.line)
        if events and self.progressCallback:
            self.progressCallback(self)
        if self.process.outcome is None:
            return False
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if self.process.outcome.ok:
            try:
                self.results = self.logic.loadResults(self.process.outcome.report_path,
                                                      self.inputVolume, self.parameterNode)
            except Exception as exc:  # shown by the widget; the log keeps the traceback
                logging.exception("C2NetPlanner: loading results failed")
                self.loadError = str(exc)
        if self.completedCallback:
            self.completedCallback(self)
        return True

    def cancel(self) -> None:
        self.process.cancel()

    def wait(self, timeoutS: Optional[float] = None) -> None:
        """Block (keeping Slicer's event loop alive) until finished."""
        deadline = None if timeoutS is None else time.monotonic() + timeoutS
        while not self.poll():
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                deadline = None
            slicer.app.processEvents()
            time.sleep(0.05)


class C2NetPlannerLogic(ScriptedLoadableModuleLogic):
    """MRML <-> core. No dialogs: callers get return values, exceptions and callbacks.

    Console use::

        logic = slicer.util.getModuleLogic("C2NetPlanner")
        results = logic.assess(slicer.util.getNode("CT"))
        print(results["report"]["sides"]["left"]["mpd_mm"])
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.moduleDir = os.path.dirname(os.path.abspath(__file__))
        self._activeRuns = []

    def getParameterNode(self):
        return C2NetPlannerParameterNode(super().getParameterNode())

    # -- dependencies -------------------------------------------------------------------
    def requirementsPath(self) -> str:
        return os.path.join(self.moduleDir, "Resources", "requirements.txt")

    def missingRequirements(self) -> List[str]:
        with open(self.requirementsPath(), encoding="utf-8") as f:
            return slicer_process.missing_requirements(slicer_process.parse_requirements(f.read()))

    # -- inputs --------------------------------------------------------------------------
    def inputsReady(self, p) -> "tuple[bool, str]":
        """(ready, reason) for enabling Assess C2."""
        if p.inputVolume is None:
            return False, _("Select the CT volume.")
        if p.inputVolume.GetImageData() is None:
            return False, _("The selected volume has no image data.")
        if p.seedPoint is not None and p.seedPoint.GetNumberOfControlPoints() < 1:
            return False, _("Place the seed point on C2, or clear the seed selection.")
        if p.vertebraSegmentation is not None and not p.vertebraSegmentId:
            return False, _("Select the C2 segment of the vertebra segmentation.")
        for line in (p.leftTrajectory, p.rightTrajectory):
            if line is not None and line.GetNumberOfControlPoints() < 2:
                return False, _("Place both points of the trajectory line (entry, then target), "
                                "or clear the trajectory selection.")
        try:
            DecisionSettings(cutoff_mm=cutoffMmFromParameters(p), screw_mm=float(p.screwDiameterMm))
        except ValueError as exc:
            return False, str(exc)
        return True, ""

    def volumeIjkToRas(self, volumeNode) -> "list":
        """The volume's IJK->world(RAS) 4x4 matrix as nested lists (linear transforms hardened)."""
        import numpy as np

        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        m = np.array([[ijkToRas.GetElement(r, c) for c in range(4)] for r in range(4)])
        transformNode = volumeNode.GetParentTransformNode()
        if transformNode is not None:
            if not transformNode.IsTransformToWorldLinear():
                raise ValueError(_("The volume is under a non-linear transform. Harden the "
                                   "transform first (Data module, right-click > Harden transform)."))
            toWorld = vtk.vtkMatrix4x4()
            transformNode.GetMatrixTransformToWorld(toWorld)
            m = np.array([[toWorld.GetElement(r, c) for c in range(4)] for r in range(4)]) @ m
        return m

    def volumeToSitk(self, volumeNode):
        """A scalar volume node -> SimpleITK image (LPS geometry from its IJKToRAS matrix)."""
        import numpy as np
        import SimpleITK as sitk

        array = slicer.util.arrayFromVolume(volumeNode)  # [k, j, i]
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        spacing, origin, direction = slicer_geometry.sitk_geometry_from_ijk_to_ras(
            self.volumeIjkToRas(volumeNode))
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
        return image

    def writeVolume(self, volumeNode, path: str) -> str:
        """Write a volume for the child process without touching its storage node."""
        import SimpleITK as sitk

        sitk.WriteImage(self.volumeToSitk(volumeNode), path, False)
        return path

    def segmentsToLabelmapSitk(self, segmentationNode, segmentIds: List[str], referenceVolume):
        """Segments -> SimpleITK label map on the reference volume's grid (values 1..N in order)."""
        labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "C2NetPlannerTmp")
        try:
            ids = vtk.vtkStringArray()
            for segmentId in segmentIds:
                ids.InsertNextValue(segmentId)
            if not slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
                    segmentationNode, ids, labelmapNode, referenceVolume):
                raise RuntimeError(_("Could not convert the segments to a label map."))
            return self.volumeToSitk(labelmapNode)
        finally:
            slicer.mrmlScene.RemoveNode(labelmapNode)

    # -- Assess C2 ------------------------------------------------------------------------
    def assessFromParameters(self, p, waitForCompletion: bool = True, progressCallback=None,
                             completedCallback=None, timeoutS: Optional[float] = None):
        return self.assess(
            p.inputVolume, seedNode=p.seedPoint, vertebraSegmentation=p.vertebraSegmentation,
            vertebraSegmentId=p.vertebraSegmentId or None,
            trajectoryNodes={"left": p.leftTrajectory, "right": p.rightTrajectory},
            cutoffMm=cutoffMmFromParameters(p),
            screwMm=float(p.screwDiameterMm), modelDir=p.modelFolder or None,
            threads=int(p.threads) or None, parameterNode=p, waitForCompletion=waitForCompletion,
            progressCallback=progressCallback, completedCallback=completedCallback, timeoutS=timeoutS)

    def assess(self, inputVolume, seedNode=None, vertebraSegmentation=None, vertebraSegmentId=None,
               trajectoryNodes: Optional[dict] = None,
               cutoffMm: float = DEFAULT_CUTOFF_MM, screwMm: float = DEFAULT_SCREW_MM,
               modelDir: Optional[str] = None, threads: Optional[int] = None, parameterNode=None,
               waitForCompletion: bool = True, progressCallback: Optional[Callable] = None,
               completedCallback: Optional[Callable] = None, timeoutS: Optional[float] = None):
        """Assess C2 on ``inputVolume`` in a child process.

        ``trajectoryNodes``: ``{"left"|"right": markups line node}`` (entry, then target): that
        side is measured along the line ("Measure along my trajectory") instead of its mask.
        ``waitForCompletion=True`` (console, tests): returns the results dict (see
        :meth:`loadResults`) or raises ``RuntimeError`` with the core's message and hint.
        ``waitForCompletion=False`` (GUI): returns a :class:`C2NetAssessmentRun` at once;
        the callbacks report progress and completion.
        """
        if inputVolume is None or inputVolume.GetImageData() is None:
            raise ValueError(_("Select a CT volume with image data."))
        DecisionSettings(cutoff_mm=float(cutoffMm), screw_mm=float(screwMm))  # the core's check
        if parameterNode is None:
            parameterNode = self.getParameterNode()
        parameterNode.inputVolume = inputVolume

        workDir = tempfile.mkdtemp(prefix="C2NetPlanner-", dir=slicer.app.temporaryPath)
        inputPath = self.writeVolume(inputVolume, os.path.join(workDir, "input.nrrd"))
        seedLps = None
        if seedNode is not None and seedNode.GetNumberOfControlPoints() > 0:
            ras = [0.0, 0.0, 0.0]
            seedNode.GetNthControlPointPositionWorld(0, ras)
            seedLps = [float(v) for v in slicer_geometry.ras_to_lps_points(ras)]
        trajectories = {}
        for side, line in (trajectoryNodes or {}).items():
            if line is None:
                continue
            if line.GetNumberOfControlPoints() < 2:
                raise ValueError(_("The {side} trajectory line needs two points (entry, then "
                                   "target).").format(side=side))
            ends = []
            for i in range(2):
                ras = [0.0, 0.0, 0.0]
                line.GetNthControlPointPositionWorld(i, ras)
                ends.append(ras)
            trajectories[side] = [list(map(float, q)) for q in slicer_geometry.ras_to_lps_points(ends)]
        maskPath = c2Label = None
        if vertebraSegmentation is not None and vertebraSegmentId:
            import SimpleITK as sitk

            mask = self.segmentsToLabelmapSitk(vertebraSegmentation, [vertebraSegmentId], inputVolume)
            maskPath = os.path.join(workDir, "vertebra_mask.nrrd")
            sitk.WriteImage(mask, maskPath, True)
            c2Label = 1

        command = slicer_process.build_assess_command(
            slicer_process.find_python_slicer(), inputPath, os.path.join(workDir, "result"),
            seed_lps_mm=seedLps, vertebra_mask=maskPath, c2_label=c2Label, cutoff_mm=cutoffMm,
            screw_mm=screwMm, model_dir=modelDir, threads=threads,
            trajectories_lps_mm=trajectories or None)
        logging.info("C2NetPlanner: %s", " ".join(command))
        process = slicer_process.AssessmentProcess(
            command, cwd=self.moduleDir,
            env=slicer_process.child_environment(self.moduleDir, threads=threads)).start()
        run = C2NetAssessmentRun(self, process, parameterNode, inputVolume, workDir,
                                 progressCallback, completedCallback)
        if not waitForCompletion:
            self._activeRuns.append(run)  # keeps the run and its timer alive
            userCallback = run.completedCallback

            def _finished(finishedRun):
                if finishedRun in self._activeRuns:
                    self._activeRuns.remove(finishedRun)
                if userCallback:
                    userCallback(finishedRun)

            run.completedCallback = _finished
            run.startPolling()
            return run
        run.wait(timeoutS)
        if not run.outcome.ok:
            raise RuntimeError(run.outcome.user_message())
        if run.loadError:
            raise RuntimeError(run.loadError)
        return run.results

    # -- results into MRML ------------------------------------------------------------------
    def loadResults(self, reportPath: str, inputVolume, parameterNode=None) -> Dict:
        """Load the core's report folder into MRML and record it in the parameter node.

        Returns ``{"report", "segmentation", "heatmap", "table", "lines"}``.
        """
        p = parameterNode if parameterNode is not None else self.getParameterNode()
        report = slicer_process.read_report(reportPath)
        folder = os.path.dirname(os.path.abspath(reportPath))
        with slicer.util.NodeModify(p.parameterNode):
            segmentation = self._loadSegmentation(os.path.join(folder, "segmentation.seg.nrrd"),
                                                  inputVolume, p.outputSegmentation)
            heatmap = self._loadHeatmap(os.path.join(folder, "attention.nrrd"), inputVolume,
                                        p.outputHeatmap, self.heatmapThreshold(report))
            lines = self._updateIsthmusLines(report, p)
            table = self._updateTable(report, p.outputTable)
            for node in [segmentation, heatmap, table] + list(lines.values()):
                if node is not None:
                    self._placeUnderStudy(node, inputVolume)
            p.outputSegmentation = segmentation
            p.outputHeatmap = heatmap
            p.outputTable = table
            p.leftIsthmusLine = lines.get("left")
            p.rightIsthmusLine = lines.get("right")
            p.reportFolder = folder
            p.reportJson = json.dumps(report)
        self.updateHeatmapDisplay(p)
        return {"report": report, "segmentation": segmentation, "heatmap": heatmap,
                "table": table, "lines": lines}

    def _loadSegmentation(self, path: str, inputVolume, existing):
        loaded = slicer.util.loadSegmentation(path)
        if isinstance(loaded, tuple):  # very old Slicer: (success, node)
            loaded = loaded[1]
        if existing is not None and existing is not loaded:
            target = existing.GetSegmentation()
            target.RemoveAllSegments()
            source = loaded.GetSegmentation()
            for index in range(source.GetNumberOfSegments()):
                target.CopySegmentFromSegmentation(source, source.GetNthSegmentID(index))
            slicer.mrmlScene.RemoveNode(loaded)
            node = existing
        else:
            node = loaded
            node.SetName(slicer.mrmlScene.GenerateUniqueName(f"{inputVolume.GetName()} C2 pedicles"))
        node.SetReferenceImageGeometryParameterFromVolumeNode(inputVolume)
        segmentation = node.GetSegmentation()
        for side in SIDES:
            segmentId = segmentation.GetSegmentIdBySegmentName(SEGMENT_NAMES[side])
            if not segmentId:
                logging.warning("C2NetPlanner: no segment named %r in %s", SEGMENT_NAMES[side], path)
                continue
            segment = segmentation.GetSegment(segmentId)
            segment.SetColor(*SEGMENT_COLORS[side])
            segment.SetTag(segment.GetTerminologyEntryTagName(), SEGMENT_TERMINOLOGY[side])
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        node.CreateClosedSurfaceRepresentation()
        return node

    @staticmethod
    def heatmapThreshold(report: Dict) -> float:
        """The attention threshold to display: the core's if the report states one."""
        value = (report.get("settings") or {}).get("cam_threshold")
        return HEATMAP_DISPLAY_THRESHOLD if value is None else float(value)

    def _loadHeatmap(self, path: str, inputVolume, existing, threshold: float = HEATMAP_DISPLAY_THRESHOLD):
        if existing is not None:
            slicer.mrmlScene.RemoveNode(existing)
        node = slicer.util.loadVolume(path, {"name": slicer.mrmlScene.GenerateUniqueName(
            f"{inputVolume.GetName()} C2-Net attention"), "show": False})
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(HEATMAP_COLOR_NODE_ID)
        display.SetAutoWindowLevel(False)
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.SetAutoThreshold(False)
        display.SetLowerThreshold(threshold)
        display.SetUpperThreshold(1.0)
        display.SetApplyThreshold(True)
        return node

    def _updateIsthmusLines(self, report: Dict, p) -> Dict:
        lines = {}
        for side in SIDES:
            old = p.leftIsthmusLine if side == "left" else p.rightIsthmusLine
            if old is not None:
                slicer.mrmlScene.RemoveNode(old)
            info = report["sides"].get(side) or {}
            ends = info.get("mpd_endpoints_lps_mm")
            if not ends or any(e is None for e in ends):
                continue
            ras = slicer_geometry.line_endpoints_lps_to_ras(ends)
            node = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLMarkupsLineNode", slicer.mrmlScene.GenerateUniqueName(f"C2 {side} isthmus MPD"))
            for point in ras:
                node.AddControlPoint(vtk.vtkVector3d(*[float(v) for v in point]))
            node.SetLocked(True)
            display = node.GetDisplayNode()
            if display is not None:
                display.SetSelectedColor(*SEGMENT_COLORS[side])
                display.SetColor(*SEGMENT_COLORS[side])
            node.SetAttribute("C2NetPlanner.side", side)
            lines[side] = node
        return lines

    def tableRows(self, report: Dict) -> List[List[str]]:
        """One row per side: the strings the results table shows (header in :meth:`tableHeader`)."""
        rows = []
        for side in SIDES:
            info = report["sides"].get(side)
            if info is None:
                continue

            def num(key, digits=2, info=info):
                value = info.get(key)
                return "" if value is None else f"{float(value):.{digits}f}"

            borderline = "borderline" in (info.get("verdict_mpd"), info.get("agreement"))
            rows.append([side, num("mpd_mm"), num("mpd_uncertainty_mm"), num("inner_width_mm"),
                         num("height_mm"), num("p_high_risk", 3),
                         VERDICT_WORDS.get(info.get("verdict_mpd"), str(info.get("verdict_mpd"))),
                         VERDICT_WORDS.get(info.get("verdict_network"), str(info.get("verdict_network"))),
                         str(info.get("agreement") or ""), "yes" if borderline else "no",
                         SEGMENTER_WORDS.get(info.get("segmenter"), str(info.get("segmenter") or "")),
                         "CHECK" if info.get("check_segmentation") else "no"])
        return rows

    def tableHeader(self, report: Dict) -> List[str]:
        settings = report.get("settings") or {}
        cutoff = float(settings.get("cutoff_mm", DEFAULT_CUTOFF_MM))
        threshold = float(settings.get("network_threshold", DEFAULT_NETWORK_THRESHOLD))
        measure = settings.get("verdict_measure", "mpd")
        return ["Side", "MPD (mm)", "MPD \u00b1 (mm)", "Inner width (mm)", "Height (mm)",
                "P(high risk)",
                f"{'MPD' if measure == 'mpd' else 'Inner width'} verdict (\u2265 {cutoff:.2f} mm low risk)",
                f"C2-Net verdict (P \u2265 {threshold:.2f} high risk)", "Agreement", "Borderline",
                "Mask from", "Check segmentation"]

    def _updateTable(self, report: Dict, existing):
        table = existing
        if table is None:
            table = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName("C2 pedicle assessment"))
        with slicer.util.NodeModify(table):
            table.RemoveAllColumns()
            header = self.tableHeader(report)
            rows = self.tableRows(report)
            for column, title in enumerate(header):
                array = vtk.vtkStringArray()
                array.SetName(title)
                for row in rows:
                    array.InsertNextValue(row[column])
                table.AddColumn(array)
            table.SetUseColumnNameAsColumnHeader(True)
            table.SetLocked(True)
        return table

    def _placeUnderStudy(self, node, inputVolume) -> None:
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        inputItem = shNode.GetItemByDataNode(inputVolume)
        parentItem = shNode.GetItemParent(inputItem) if inputItem else shNode.GetSceneItemID()
        nodeItem = shNode.GetItemByDataNode(node)
        if nodeItem and parentItem:
            shNode.SetItemParent(nodeItem, parentItem)

    def updateHeatmapDisplay(self, p) -> None:
        """Heat map as the foreground layer of the slice views at the chosen opacity."""
        heatmap = p.outputHeatmap
        if heatmap is None or slicer.app.layoutManager() is None:
            return
        if p.showHeatmap:
            slicer.util.setSliceViewerLayers(background=p.inputVolume, foreground=heatmap,
                                             foregroundOpacity=float(p.heatmapOpacity))
        else:
            slicer.util.setSliceViewerLayers(foregroundOpacity=0.0)

    def summaryText(self, p) -> str:
        try:
            report = json.loads(p.reportJson)
        except ValueError:
            return ""
        parts = []
        for row in self.tableRows(report):
            parts.append(_("{side}: MPD {mpd} mm, P(high risk) {p} \u2014 {v1} / {v2}").format(
                side=row[0], mpd=row[1] or "?", p=row[5] or "?", v1=row[6], v2=row[7]))
        settings = report.get("settings") or {}
        parts.append(_("Screw {screw:.1f} mm; cutoff: {source}").format(
            screw=float(settings.get("screw_mm", DEFAULT_SCREW_MM)),
            source=settings.get("cutoff_source", "")))
        parts.append(DISCLAIMER)
        return "\n".join(parts)

    # -- navigation -------------------------------------------------------------------------
    def isthmusCenterRas(self, p, side: str):
        report = json.loads(p.reportJson) if p.reportJson else {}
        info = (report.get("sides") or {}).get(side) or {}
        center = info.get("isthmus_center_lps_mm")
        if center is None:
            ends = info.get("mpd_endpoints_lps_mm")
            if not ends:
                raise ValueError(_("No {side} isthmus in this assessment.").format(side=side))
            center = [(a + b) / 2.0 for a, b in zip(*ends)]
        return [float(v) for v in slicer_geometry.lps_to_ras_points(center)]

    def jumpToIsthmus(self, p, side: str) -> None:
        x, y, z = self.isthmusCenterRas(p, side)
        slicer.modules.markups.logic().JumpSlicesToLocation(x, y, z, True)

    # -- recompute -------------------------------------------------------------------------
    def recomputeFromSegmentation(self, p) -> Dict:
        """Re-run measurement and classification on the (edited) pedicle segments, in-process."""
        from c2net.assess import remeasure

        segmentationNode = p.outputSegmentation
        if segmentationNode is None or p.inputVolume is None:
            raise ValueError(_("Run Assess C2 first."))
        segmentation = segmentationNode.GetSegmentation()
        ids = []
        for side in SIDES:
            segmentId = segmentation.GetSegmentIdBySegmentName(SEGMENT_NAMES[side])
            if not segmentId:
                raise ValueError(_("The segmentation has no segment named '{name}'.").format(
                    name=SEGMENT_NAMES[side]))
            ids.append(segmentId)
        ct = self.volumeToSitk(p.inputVolume)
        labels = self.segmentsToLabelmapSitk(segmentationNode, ids, p.inputVolume)  # 1 left, 2 right
        folder = tempfile.mkdtemp(prefix="C2NetPlanner-recompute-", dir=slicer.app.temporaryPath)
        assessment = remeasure(ct, labels, folder, cutoff_mm=cutoffMmFromParameters(p),
                               screw_mm=float(p.screwDiameterMm), model_dir=p.modelFolder or None,
                               threads=int(p.threads) or None, overwrite=True)
        report = slicer_process.read_report(os.path.join(folder, "report.json"))
        with slicer.util.NodeModify(p.parameterNode):
            lines = self._updateIsthmusLines(report, p)
            table = self._updateTable(report, p.outputTable)
            for node in [table] + list(lines.values()):
                self._placeUnderStudy(node, p.inputVolume)
            p.outputTable = table
            p.leftIsthmusLine = lines.get("left")
            p.rightIsthmusLine = lines.get("right")
            if assessment.attention is not None and p.outputHeatmap is not None:
                # voxels and geometry: the map covers the C2 region only (a part of the CT's grid)
                import SimpleITK as sitk

                att = assessment.attention
                slicer.util.updateVolumeFromArray(p.outputHeatmap, sitk.GetArrayFromImage(att))
                p.outputHeatmap.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(
                    slicer_geometry.ijk_to_ras_from_sitk_geometry(
                        att.GetSpacing(), att.GetOrigin(), att.GetDirection())))
            p.reportFolder = folder
            p.reportJson = json.dumps(report)
        return report

    # -- export ----------------------------------------------------------------------------
    def exportReport(self, p, destinationFolder: str, screenshots: bool = True) -> str:
        """Copy the core's report folder and add slice-view screenshots of both isthmi."""
        if not p.reportFolder or not os.path.isdir(p.reportFolder):
            raise ValueError(_("The report folder of this assessment is gone (temporary files "
                               "are removed when Slicer exits). Run Assess C2 again."))
        name = "C2NetPlanner-" + time.strftime("%Y%m%d-%H%M%S")
        target = os.path.join(destinationFolder, name)
        shutil.copytree(p.reportFolder, target)
        if screenshots:
            self.captureIsthmusScreenshots(p, os.path.join(target, "screenshots"))
        return target

    def captureIsthmusScreenshots(self, p, folder: str) -> List[str]:
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:
            logging.warning("C2NetPlanner: no views to capture (no main window)")
            return []
        import ScreenCapture

        os.makedirs(folder, exist_ok=True)
        capture = ScreenCapture.ScreenCaptureLogic()
        written = []
        for side in SIDES:
            try:
                self.jumpToIsthmus(p, side)
            except ValueError:
                continue
            slicer.app.processEvents()
            for viewName in layoutManager.sliceViewNames():
                sliceWidget = layoutManager.sliceWidget(viewName)
                if sliceWidget is None or not sliceWidget.isVisible():
                    continue
                path = os.path.join(folder, f"isthmus_{side}_{viewName.lower()}.png")
                capture.captureImageFromView(sliceWidget.sliceView(), path)
                written.append(path)
        return written


#
# C2NetPlannerTest
#


class C2NetPlannerTest(ScriptedLoadableModuleTest):
    """Offline self-test on a small synthetic phantom from the core (seconds, no download)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_AssessPhantom()

    def _loadPhantom(self):
        import SimpleITK as sitk
        from c2net.phantom import make_phantom

        # small, fast and deterministic: 1 mm axial, C1-C4 field of view
        phantom = make_phantom(seed=3, spacing_mm=1.0, fov="c1_c4", direction=None)
        folder = tempfile.mkdtemp(prefix="C2NetPlannerTest-", dir=slicer.app.temporaryPath)
        path = os.path.join(folder, "phantom_ct.nrrd")
        sitk.WriteImage(phantom.ct, path, True)
        return slicer.util.loadVolume(path), phantom

    def test_AssessPhantom(self):
        self.delayDisplay("Loading a synthetic C2 phantom")
        volumeNode, _phantom = self._loadPhantom()
        logic = C2NetPlannerLogic()
        missing = logic.missingRequirements()
        if missing:
            self.skipTest("Python packages missing: " + ", ".join(missing))
        p = logic.getParameterNode()
        p.inputVolume = volumeNode

        self.delayDisplay("Assess C2 through the Logic")
        t0 = time.monotonic()
        results = logic.assessFromParameters(p, waitForCompletion=True, timeoutS=600)
        logging.info("C2NetPlannerTest: assessment took %.1f s", time.monotonic() - t0)
        report = results["report"]

        # Segmentation: both sides, names, terminology, reference geometry of the input
        segNode = p.outputSegmentation
        self.assertIsNotNone(segNode)
        segmentation = segNode.GetSegmentation()
        for side in SIDES:
            segmentId = segmentation.GetSegmentIdBySegmentName(SEGMENT_NAMES[side])
            self.assertTrue(segmentId, SEGMENT_NAMES[side])
            tag = vtk.mutable("")
            segmentation.GetSegment(segmentId).GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
            self.assertIn("39976000", str(tag))
        geometryName = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        expected = slicer.vtkSegmentationConverter.SerializeImageGeometry(
            slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volumeNode))
        self.assertEqual(segmentation.GetConversionParameter(geometryName), expected)
        shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
        self.assertEqual(shNode.GetItemParent(shNode.GetItemByDataNode(segNode)),
                         shNode.GetItemParent(shNode.GetItemByDataNode(volumeNode)))

        # Markups lines: length = the report's MPD
        for side, line in (("left", p.leftIsthmusLine), ("right", p.rightIsthmusLine)):
            mpd = report["sides"][side]["mpd_mm"]
            self.assertIsNotNone(line, side)
            self.assertAlmostEqual(line.GetLineLengthWorld(), mpd, delta=0.01)

        # Table: one row per side with the report's numbers
        table = p.outputTable
        self.assertEqual(table.GetNumberOfRows(), 2)
        for row in range(2):
            side = table.GetCellText(row, 0)
            self.assertAlmostEqual(float(table.GetCellText(row, 1)), report["sides"][side]["mpd_mm"], delta=0.006)
        self.assertIn(f"{report['settings']['cutoff_mm']:.2f}", table.GetColumnName(6))

        # Heat map display
        display = p.outputHeatmap.GetDisplayNode()
        self.assertEqual(display.GetColorNodeID(), HEATMAP_COLOR_NODE_ID)
        self.assertAlmostEqual(display.GetWindowLevelMin(), 0.0)
        self.assertAlmostEqual(display.GetWindowLevelMax(), 1.0)
        self.assertTrue(display.GetApplyThreshold())
        self.assertAlmostEqual(display.GetLowerThreshold(), logic.heatmapThreshold(report))

        # Saving and reloading the scene keeps the parameter node
        self.delayDisplay("Save and reload the scene")
        sceneFile = os.path.join(tempfile.mkdtemp(dir=slicer.app.temporaryPath), "c2.mrb")
        self.assertTrue(slicer.util.saveScene(sceneFile))
        slicer.mrmlScene.Clear()
        slicer.util.loadScene(sceneFile)
        restored = C2NetPlannerLogic().getParameterNode()
        self.assertIsNotNone(restored.inputVolume)
        self.assertIsNotNone(restored.outputSegmentation)
        self.assertEqual(restored.outputSegmentation.GetSegmentation().GetNumberOfSegments(), 2)
        self.assertEqual(restored.cutoffPreset, DEFAULT_CUTOFF_PRESET)
        self.assertEqual(json.loads(restored.reportJson)["sides"]["left"]["mpd_mm"],
                         report["sides"]["left"]["mpd_mm"])
        self.assertAlmostEqual(restored.leftIsthmusLine.GetLineLengthWorld(),
                               report["sides"]["left"]["mpd_mm"], delta=0.01)
        self.delayDisplay("Test passed")
