"""What the tests share for npnet's scripts (experiments/, docs/), which are not packages."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path, name: str):
    """The script at ``path`` as a module called ``name``: its functions, without running it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_experiment(name: str):
    """An experiment script as a module (its parse_args, without running it)."""
    return load_script(ROOT / "experiments" / name, name[:-3])


def have_mnist() -> bool:
    """Whether the MNIST files are where npnet.data looks."""
    from npnet.data import MNISTError, find_mnist_dir

    try:
        find_mnist_dir()
    except MNISTError:
        return False
    return True
