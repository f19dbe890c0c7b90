"""Optional dependencies: imported where a feature needs them, with an ImportError that names the
gemmacpp extra that installs them (pyproject.toml's [project.optional-dependencies])."""
from __future__ import annotations

import importlib

# module -> (pip package, gemmacpp extra that brings it)
_EXTRAS = {
    "lm_eval": ("lm_eval", "eval"),
    "tqdm": ("tqdm", "eval"),
    "PIL": ("pillow", "vision"),
    "matplotlib": ("matplotlib", "notebooks"),
    "jinja2": ("jinja2", "chat"),
}


def missing(module: str, feature: str) -> ImportError:
    """The ImportError for a feature that needs `module`, naming the extra to install."""
    package, extra = _EXTRAS[module]
    return ImportError(f"{feature} needs {package}, which is not installed: pip install {package} "
                       f'(it is in gemmacpp\'s "{extra}" extra: pip install ".[{extra}]" in a checkout)')


def require(module: str, feature: str):
    """Imports `module` (a top-level name of _EXTRAS, or a submodule of one) for `feature`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but one of its own dependencies is not
        raise missing(module.split(".")[0], feature) from e


def progress_bar(progress, total: int, desc: str, unit: str):
    """What a `progress=` argument asks for, as a callable given the number of items done (or
    None): False/None no bar, True a tqdm bar (the eval extra), a callable is used as it is, and
    an object with .update (a tqdm bar of the caller's) gets its update method. Returns
    (callback, close)."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        tqdm = require("tqdm", "progress=True").tqdm
        bar = tqdm(total=total, desc=desc, unit=unit)
        return bar.update, bar.close
    if callable(progress):
        return progress, lambda: None
    if callable(getattr(progress, "update", None)):
        return progress.update, lambda: None
    raise TypeError(f"progress: expected True/False, a callable given the number done, or a "
                    f"tqdm-like bar, got {type(progress).__name__}")
