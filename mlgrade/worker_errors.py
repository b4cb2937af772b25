"""What can go wrong in the worker, by kind: the one list the worker reports from
(:mod:`mlgrade.worker`, :mod:`mlgrade.probes`) and the grading process words for the student
(:func:`mlgrade.grading.error_message`). A kind the worker sends that is not listed here is a
broken protocol, not a student's error (:mod:`mlgrade.sandbox` refuses it)."""
from __future__ import annotations

import enum


class ErrorKind(str, enum.Enum):
    EXCEPTION = "exception"  # the student's code raised
    LOAD = "load"  # the submitted module failed to load (or its loading stopped the worker)
    MISSING = "missing"  # a name the submission does not define, or defines as something not callable
    UNSUPPORTED = "unsupported"  # a value that cannot cross the wire (a generator, an open file)
    TYPE = "type"  # an object of the wrong type where the contract asks for one (a torch.nn.Module)
    SHAPE = "shape"  # an output of a shape the probe cannot use (a non-scalar loss to differentiate)
    LAYER = "layer"  # a layer outside the vocabulary a network may be rebuilt from
    STATE = "state"  # parameters that do not fit the layers they were sent for


KNOWN = frozenset(kind.value for kind in ErrorKind)
