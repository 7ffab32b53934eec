"""The public surface: everything in __all__ exists, and nothing public is left out."""

import inspect
import tomllib
from pathlib import Path

import pipeline


def test_all_names_exist() -> None:
    missing = [name for name in pipeline.__all__ if not hasattr(pipeline, name)]
    assert missing == []


def test_all_is_sorted_and_unique() -> None:
    assert len(set(pipeline.__all__)) == len(pipeline.__all__)


def test_every_public_class_and_function_is_exported() -> None:
    exported = set(pipeline.__all__)
    public = {
        name
        for name, value in vars(pipeline).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public - exported == set()


def test_version_is_the_one_in_pyproject() -> None:
    # pipeline.version is a constant so that the run path never imports importlib.metadata.
    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert pipeline.__version__ == pyproject["project"]["version"]
