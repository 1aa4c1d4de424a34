"""The source registry: one descriptor per kind feeds specs, checks, --help, README, settings and the panel."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from milmer_app import cli as app_cli
from milmer_app.sources import registry
from milmer_app.sources.registry import format_spec, parse_eeg_spec, parse_spec, parse_video_spec, spec_from_options
from models.errors import SourceError

ROOT = Path(__file__).resolve().parents[1]


def test_readme_lists_exactly_the_registered_kinds():
    readme = (ROOT / "README.md").read_text()
    assert registry.with_reference(readme) == readme, \
        "README's source list is out of date: run python -m milmer_app.sources README.md"
    for role in registry.ROLES:
        for kind in registry.kinds(role):
            assert f"- `{kind.usage}`" in readme


def test_help_lists_every_kind_and_option():
    text = app_cli.build_parser().format_help()
    for role in registry.ROLES:
        for kind in registry.kinds(role):
            assert kind.usage in text, kind.name
            for f in registry.own_fields_first(kind.options):
                if f.name != kind.head and kind.split is None:
                    assert f"{f.name}=" in text, (kind.name, f.name)
    for needed in ("  demo", "map=label|position", "min_channels=FRACTION", "timeout=S", "unit=uV|mV|V|nV",
                   "montage=biosemi32|biosemi64", "pick=first"):
        assert needed in text


def test_parsing_a_spec_imports_no_device_library():
    code = ("import sys; from milmer_app.cli import build_parser; build_parser().format_help(); "
            "from milmer_app.specs import parse_eeg_spec, parse_video_spec; "
            "parse_eeg_spec('lsl:type=EEG,timeout=2'); parse_eeg_spec('brainflow:synthetic'); "
            "parse_video_spec('webcam:0,width=640'); parse_video_spec('file:x.avi'); "
            "heavy = ('torch', 'pylsl', 'cv2', 'mne', 'PySide6', 'brainflow', 'pyxdf'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("spec, message", [
    ("lsl:type=EEG,timeout=-1", "timeout must be above 0, got -1"),
    ("lsl:type=EEG,timeout=0", "timeout must be above 0, got 0"),
    ("lsl:type=EEG,timeout=nan", "timeout must be a finite number, got nan"),
    ("lsl:type=EEG,timeout=inf", "timeout must be a finite number, got inf"),
    ("lsl:type=EEG,timeout=", "timeout is empty"),
    ("lsl:type=EEG,min_channels=0", "min_channels must be above 0"),
    ("lsl:type=EEG,min_channels=1.5", "min_channels must be at most 1"),
    ("lsl:type=EEG,map=positon", "unknown map 'positon' (did you mean 'position'?)"),
    ("lsl:type=EEG,unit=furlongs", "unknown unit 'furlongs'"),
    ("lsl:type=EEG,montage=biosemi128", "unknown montage 'biosemi128'"),
    ("lsl:type=EEG,tpye=EEG", "unknown option 'tpye' (did you mean 'type'?)"),
    ("lsl:map=position", "needs name=, type= or source_id="),
    ("lls:type=EEG", "unknown EEG source 'lls:type=EEG' (did you mean 'lsl'?)"),
    ("brainflow:synthetic,ip_port=70000", "ip_port must be at most 65535"),
    ("brainflow:synthetic,timeout=1.5", "timeout must be a whole number, got '1.5'"),
    ("brainflow:synthetic,serial_prot=/dev/ttyUSB0", "did you mean 'serial_port'?"),
    ("deap:/data:0:1", "subject must be at least 1, got 0"),
    ("file:/data/x.edf,loop=yes", "loop must be true or false, got 'yes'"),   # help says true|false
    ("file:/data/x.edf,loop=1", "loop must be true or false, got '1'"),
    ("deap:/data:1", "expects deap:DIR:SUBJECT:TRIAL"),
    ("recording:", "recording needs path"),
])
def test_bad_eeg_options_are_named(spec, message):
    with pytest.raises(SourceError) as error:
        parse_eeg_spec(spec)
    assert message in str(error.value)
    assert spec in str(error.value)


@pytest.mark.parametrize("spec, message", [
    ("webcam:0,width=0", "width must be above 0, got 0"),
    ("webcam:0,width=-640", "width must be above 0, got -640"),
    ("webcam:0,width=64.5", "width must be a whole number"),
    ("webcam:0,height=99999", "height must be at most 16384"),
    ("webcam:0,fps=nan", "fps must be a finite number"),
    ("webcam:0,fps=0", "fps must be above 0"),
    ("webcam:-1", "index must be at least 0"),
    ("webcam:0,widht=640", "did you mean 'width'?"),
    ("webcma:0", "did you mean 'webcam'?"),
    ("file:", "file needs path"),
])
def test_bad_video_options_are_named(spec, message):
    with pytest.raises(SourceError) as error:
        parse_video_spec(spec)
    assert message in str(error.value)


@pytest.mark.parametrize("role, text", [
    ("eeg", "lsl:type=EEG,map=position,min_channels=0.1,timeout=2.5,unit=mV,montage=biosemi64,pick=first"),
    ("eeg", "brainflow:synthetic,min_channels=0.3"),
    ("eeg", "brainflow:board=0,serial_port=/dev/ttyUSB0,ip_port=6677"),
    ("eeg", "deap:/data/my:deap:2:7"),
    ("eeg", "recording:/tmp/rec, with comma"),
    ("eeg", "demo"),
    ("video", "webcam:1,width=640,height=480,fps=30"),
    ("video", "file:/tmp/face.avi"),
    ("video", "deap"),
])
def test_specs_round_trip_through_typed_options(role, text):
    spec = parse_spec(role, text)
    assert parse_spec(role, format_spec(role, spec.kind, spec.options)) == spec
    assert spec_from_options(role, spec.kind, spec.options) == spec
    assert spec == text and hash(spec) == hash(parse_spec(role, str(spec)))


def test_typed_options_check_values_built_directly():
    from milmer_app.sources.kinds.lsl import LslOptions
    from milmer_app.sources.kinds.webcam import WebcamOptions

    assert LslOptions(type="EEG", timeout=3).timeout == 3.0
    for bad in (dict(type="EEG", timeout=-1.0), dict(type="EEG", timeout=math.inf), dict(name=None)):
        with pytest.raises(registry.OptionError):
            LslOptions(**bad)
    with pytest.raises(registry.OptionError, match="width must be above 0"):
        WebcamOptions(width=0)


# -- a toy kind, written by the recipe in its own module, loaded by this test only ----------------------
@pytest.fixture
def toy_kind():
    """tests/toy_kind.py imported (it registers itself) and unregistered afterwards."""
    location = Path(__file__).with_name("toy_kind.py")
    module_spec = importlib.util.spec_from_file_location("toy_kind", location)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module      # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    yield module
    registry.unregister("eeg", "toy")
    del sys.modules[module_spec.name]


def test_every_built_in_kind_registers_itself_from_its_own_module():
    folder = ROOT / "milmer_app" / "sources" / "kinds"
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__"}
    registered = {}
    for role in registry.ROLES:
        for kind in registry.kinds(role):
            registered.setdefault(kind.builder().__module__, []).append(kind.name)
    assert {f"milmer_app.sources.kinds.{name}" for name in modules} == set(registered)
    assert all(registered[f"milmer_app.sources.kinds.{name}"] for name in modules)
    # The registry imports none of its users.
    imported = [line for line in (ROOT / "milmer_app/sources/registry.py").read_text().splitlines()
                if line.lstrip().startswith(("import ", "from ")) and "milmer_app" in line]
    assert imported == []


def test_a_registered_kind_works_from_the_command_line(toy_kind, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "toy.jsonl"
    assert "toy[:seconds=S,amplitude=UV]" in app_cli.build_parser().format_help()
    assert "- `toy[:seconds=S,amplitude=UV]`: a sine on every channel" in registry.markdown_reference()
    code = app_cli.main(["--headless", "--eeg", "toy:seconds=30", "--checkpoint", str(tiny_checkpoint),
                         "--device", "cpu", "--hop", "0.5", "--duration", "5", "--predictions", str(out)])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["eeg_channels_used"] == 32 for r in records)
    assert app_cli.main(["--headless", "--eeg", "toy:second=3", "--checkpoint", str(tiny_checkpoint)]) == 2
    # The kind's own check runs before anything heavy, like the built-in kinds' path checks.
    missing = tmp_path / "no-model"
    assert app_cli.main(["--headless", "--eeg", "toy:amplitude=5000", "--checkpoint", str(missing)]) == 2
    assert "5000 uV is no EEG" in capsys.readouterr().err


@pytest.mark.gui
def test_a_registered_kind_shows_in_the_sources_panel(toy_kind, qtbot):
    pytest.importorskip("PySide6")
    from milmer_app.gui.selection import SourceSelection
    from milmer_app.gui.source_pages import OptionsForm
    from milmer_app.gui.sources_panel import SourcesPanel

    panel = SourcesPanel()
    qtbot.addWidget(panel)
    index = panel.eeg_kind.findData("toy")
    assert index >= 0 and panel.eeg_kind.itemText(index) == "Toy sine"
    panel.eeg_kind.setCurrentIndex(index)
    page = panel.page("eeg", "toy")
    assert isinstance(page, OptionsForm) and panel.eeg_pages.currentWidget() is page
    assert set(page.editors) == {"seconds", "amplitude"}
    page.editors["seconds"].setText("2.5")
    selection = panel.selection()
    assert selection.eeg.kind == "toy" and selection.eeg.options == toy_kind.ToyOptions(seconds=2.5)
    assert selection.eeg == "toy:seconds=2.5"
    panel.set_selection(SourceSelection("toy:amplitude=5", "none", demo=False))
    assert (page.editors["seconds"].text(), page.editors["amplitude"].text()) == ("", "5")


@pytest.mark.gui
def test_settings_store_the_typed_options(settings):
    from milmer_app.gui.selection import SourceSelection
    from milmer_app.gui.settings import load_selection, save_selection

    chosen = SourceSelection("lsl:type=EEG,timeout=2.5,map=position", "webcam:1,width=640", "m.safetensors", demo=False)
    save_selection(settings, chosen)
    assert settings.value("sources/eeg/kind") == "lsl" and settings.value("sources/eeg/timeout") == "2.5"
    assert settings.value("sources/video/width") == "640"
    assert load_selection(settings) == chosen
    # A value the registry refuses (edited by hand): that source falls back to its default, the rest stays.
    settings.setValue("sources/eeg/timeout", "-3")
    loaded = load_selection(settings)
    assert loaded.eeg.kind == "none" and loaded.video == chosen.video and loaded.checkpoint == "m.safetensors"
    # Settings written before the registry kept the spec text.
    settings.remove("sources")
    settings.setValue("sources/eeg", "brainflow:synthetic")
    settings.setValue("sources/demo", "false")
    assert load_selection(settings).eeg == "brainflow:synthetic"
