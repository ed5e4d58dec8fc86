"""``common.data`` imports its submodules on first use, and configs reach names both ways."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import common.data

REPO = Path(__file__).resolve().parents[2]


def test_config_expressions_reach_names_and_modules_in_a_fresh_interpreter() -> None:
    """``$import common`` then ``common.data.<name>`` and ``common.data.<module>.<name>`` both resolve."""
    code = """
        import sys
        from monai.bundle import ConfigParser

        parser = ConfigParser({
            "imports": ["$import common"],
            "by_name": "$common.data.brats_output_name",
            "by_module": "$common.data.brats.brats_output_name",
            "reader": "$common.data.FigshareMatReader(field='tumorMask')",
            "classes": "$list(common.data.figshare.FIGSHARE_CLASSES)",
            "sections": "$common.data.datalist.DATALIST_SECTIONS",
            "transform": {"_target_": "common.data.MapBraTSLabelsd", "keys": "label"},
        })
        sections = parser.get_parsed_content("sections")  # runs "$import common" first
        before = "common.data.brats" in sys.modules  # not imported until a BraTS name is used
        assert parser.get_parsed_content("by_name") is parser.get_parsed_content("by_module")
        reader = type(parser.get_parsed_content("reader")).__name__
        transform = type(parser.get_parsed_content("transform")).__name__
        print(before, reader, parser.get_parsed_content("classes"), sections, transform)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        "False FigshareMatReader ['meningioma', 'glioma', 'pituitary'] "
        "('training', 'validation', 'testing') MapBraTSLabelsd"
    )


def test_exports_resolve_and_unknown_names_raise() -> None:
    for name in common.data.__all__:
        assert getattr(common.data, name) is not None, name
    assert set(common.data.__all__) <= set(dir(common.data))
    from common.data import DataFormatError, prepare_datalist  # the ``from`` form goes through the same hook

    assert (
        DataFormatError.__module__ == "common.data.errors"
        and prepare_datalist.__module__ == "common.data.datalist"
    )
    with pytest.raises(AttributeError, match="brats_regions"):
        common.data.brats_regions  # noqa: B018 - removed: regions live in common.labels


def test_data_format_error_survives_pickling():
    """DataLoader workers send errors to the main process by pickling them."""
    import pickle

    from common.data.errors import DataFormatError

    error = pickle.loads(pickle.dumps(DataFormatError("/data/12.mat", "no tumorMask")))
    assert isinstance(error, DataFormatError)
    assert (error.path, error.problem, str(error)) == (
        "/data/12.mat",
        "no tumorMask",
        "/data/12.mat: no tumorMask",
    )
