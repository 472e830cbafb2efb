"""The answers file: read, checked, typed, written, and described (JSON Schema, ``init``).

One declaration (:mod:`wizard.answers.declaration`) says every key; this
package is the only place that looks at the raw dictionary. The rest of the
core reads the dataclasses of :mod:`wizard.answers_model`.

* :func:`load_answers_file` -- read a file into a plain dictionary.
* :func:`find_problems` -- every problem in a dictionary; missing keys are flagged.
* :func:`missing_keys` -- just the dotted keys that are missing (for faces that ask).
* :func:`validate` -- the typed :class:`~wizard.answers_model.Answers`, or one
  :class:`~wizard.errors.AnswersError` listing every problem.
* :func:`load_answers` -- :func:`load_answers_file` then :func:`validate`.
* :func:`answers_to_yaml` -- the answers as a tidy answers file.
* :func:`merge` -- deep-merge a partial file with the admin's answers.
"""

from __future__ import annotations

import os

from wizard.answers.checking import find_problems, missing_keys, validate
from wizard.answers.reading import load_answers_file
from wizard.answers.values import ANSWERS_VERSION
from wizard.answers.writing import answers_to_yaml, merge
from wizard.answers_model import Answers

__all__ = [
    "ANSWERS_VERSION",
    "answers_to_yaml",
    "find_problems",
    "load_answers",
    "load_answers_file",
    "merge",
    "missing_keys",
    "validate",
]


def load_answers(path: str | os.PathLike[str]) -> Answers:
    """Read and validate an answers file; every problem is in one :class:`~wizard.errors.AnswersError`."""
    return validate(load_answers_file(path), source=os.fspath(path))
