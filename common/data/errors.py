"""The one error type raised for bad input data."""

from __future__ import annotations

import os


class DataFormatError(ValueError):
    """A data file is missing, unreadable or not what the bundle expects.

    The message always starts with the offending path, so that one line in a log says which
    file is wrong and why: ``"/data/12.mat: cjdata/tumorMask has shape (256, 256) but ..."``.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # rebuilt from (path, problem), so the error survives pickling (DataLoader workers, spawn)
        return type(self), (self.path, self.problem)
