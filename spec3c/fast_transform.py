"""gwcs transforms evaluated without astropy.modeling's per-call machinery, bit for bit.

An IFU exposure's coordinates are ~9 evaluations of its gwcs on every pixel
(ALGORITHMS.md §11.4), in chunks.  astropy evaluates a compound model by
calling each sub-model as a model: inputs validated and broadcast against the
parameters, outputs reshaped, units checked, and a slice selector calls each
slice's compound model that way too.  On an MRS detector (28 slices) that
machinery was a quarter of reading the exposure.

:class:`FastTransform` walks the model tree once and calls each leaf's own
``evaluate`` with its parameters as astropy passes them: ``|`` composes,
``&`` splits the inputs, arithmetic operators combine the outputs with the
same numpy ufuncs, mappings reorder, a ``RegionsSelector`` over a label array
groups the pixels by label once.  Anything else (units, ``fix_inputs``, model
sets, other selectors) is left to astropy, node by node.

The values are the ones astropy computes: each leaf gets the same float64
inputs and parameters and runs the same code, only the wrappers are gone.
That is checked, not assumed: the first call of a transform on arrays also
evaluates a sample of its inputs the astropy way and compares the two bit for
bit; on any difference the transform is evaluated by astropy from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["FastTransform", "FastWcs", "compile_model"]

_log = logging.getLogger(__name__)

Outputs = tuple[np.ndarray, ...]
Compiled = Callable[..., Outputs]

#: inputs of the first call that are evaluated both ways and compared
CHECK_SAMPLE = 4096
_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "**": np.power}


def _as_outputs(value: Any, n_outputs: int) -> Outputs:
    if n_outputs == 1 and not isinstance(value, (tuple, list)):
        return (value,)
    return tuple(value)


def _astropy(model: Any) -> Compiled:
    """The node evaluated as astropy evaluates it inside a compound model (no bounding box)."""
    n_outputs = model.n_outputs
    return lambda *args: _as_outputs(model(*args), n_outputs)


def compile_model(model: Any) -> Compiled:
    """A function of 1-D float64 arrays returning the model's outputs as a tuple (no bounding box)."""
    from astropy.modeling.core import CompoundModel
    from astropy.modeling.mappings import Mapping

    if isinstance(model, CompoundModel):
        return _compound(model)
    if isinstance(model, Mapping):
        mapping = tuple(model.mapping)
        return lambda *args: tuple(args[i] for i in mapping)
    if _is_regions_selector(model):
        return _regions_selector(model)
    if _plain_leaf(model):
        return _leaf(model)
    return _astropy(model)


def _compound(model: Any) -> Compiled:
    op = model.op
    if op == "|":
        first, then = compile_model(model.left), compile_model(model.right)
        return lambda *args: then(*first(*args))
    if op == "&":
        left, right = compile_model(model.left), compile_model(model.right)
        n_left = model.left.n_inputs
        return lambda *args: (*left(*args[:n_left]), *right(*args[n_left:]))
    if op in _BINARY:
        left, right, ufunc = compile_model(model.left), compile_model(model.right), _BINARY[op]
        return lambda *args: tuple(ufunc(a, b) for a, b in zip(left(*args), right(*args), strict=True))
    return _astropy(model)


def _plain_leaf(model: Any) -> bool:
    """A single model without units whose ``evaluate`` takes the inputs then the parameters."""
    from astropy.modeling.core import Model

    try:
        return (type(model).evaluate is not Model.evaluate and len(model) == 1 and model.n_inputs > 0
                and not model._has_units and model.input_units is None and model.return_units is None)
    except (AttributeError, NotImplementedError, TypeError):
        return False


def _leaf(model: Any) -> Compiled:
    # the parameters as astropy hands them to evaluate: raw values with the model-set axis in front
    params = list(model._param_sets(raw=True, units=False)) if model.param_names else []
    evaluate, n_outputs = model.evaluate, model.n_outputs

    def run(*args: np.ndarray) -> Outputs:
        inputs = [np.asarray(a, dtype=float) for a in args]
        shape = inputs[0].shape
        out = _as_outputs(evaluate(*inputs, *params), n_outputs)
        # astropy reshapes each output to the inputs' broadcast shape (the parameters' set axis goes)
        return tuple(np.reshape(o, shape) if np.size(o) == inputs[0].size else o for o in out)

    return run


def _is_regions_selector(model: Any) -> bool:
    try:
        from gwcs.selector import RegionsSelector
    except ImportError:  # pragma: no cover - gwcs is a dependency
        return False
    return isinstance(model, RegionsSelector)


def _labels(mapper: Any) -> Callable[..., np.ndarray]:
    """The label of each input (the selector's ``label_mapper``); a label array is indexed here."""
    from gwcs.selector import LabelMapperArray
    from gwcs.utils import to_index

    if isinstance(mapper, LabelMapperArray) and mapper.inputs_mapping is None and mapper.n_inputs == 2:
        table = np.asarray(mapper.mapper)
        return lambda x, y, *rest: table[to_index(y), to_index(x)].reshape(-1)
    return lambda *args: np.asarray(mapper(*args)).reshape(-1)


def _regions_selector(model: Any) -> Compiled:
    """gwcs ``RegionsSelector.evaluate``: each label's pixels through its own transform, the
    undefined value where there is no label or no transform."""
    labels = _labels(model.label_mapper)
    parts = {label: compile_model(transform) for label, transform in model.selector.items()}
    no_label, undefined, n_outputs = model.label_mapper.no_label, model.undefined_transform_value, model.n_outputs

    def run(*args: np.ndarray) -> Outputs:
        rids = labels(*args)
        flat = [np.asarray(a).reshape(-1) for a in args]
        outputs = [np.empty(rids.shape) for _ in range(n_outputs)]
        order = np.argsort(rids, kind="stable")
        ordered = rids[order]
        values, starts = np.unique(ordered, return_index=True)
        for label, start, end in zip(values, starts, [*starts[1:], ordered.size], strict=True):
            index = order[start:end]
            part = parts.get(label.item()) if label != no_label else None
            if part is None:
                for out in outputs:
                    out[index] = undefined
                continue
            for out, value in zip(outputs, part(*(a[index] for a in flat)), strict=True):
                out[index] = value
        return tuple(outputs)

    return run


def _bounding_box(model: Any) -> list[tuple[int, float, float]] | None:
    """``(input index, lower, upper)`` of the model's bounding box (None: it has none)."""
    try:
        bbox = model.bounding_box
    except NotImplementedError:
        return None
    if bbox is None:
        return None
    if not hasattr(bbox, "intervals") or getattr(bbox, "ignored", None):
        raise TypeError("a bounding box of another kind")
    return [(int(index), float(iv.lower), float(iv.upper)) for index, iv in bbox.intervals.items()]


def _within(compiled: Compiled, box: list[tuple[int, float, float]], n_outputs: int) -> Compiled:
    """astropy's bounding-box evaluation: the inputs inside the box evaluated, NaN elsewhere
    (an input is outside when it is below the lower or above the upper bound)."""

    def run(*args: np.ndarray) -> Outputs:
        outside = np.zeros(args[0].shape, dtype=bool)
        for index, lower, upper in box:
            value = args[index]
            outside |= (value < lower) | (value > upper)
        inside = np.flatnonzero(~outside)
        values = compiled(*(a[inside] for a in args))
        outputs = []
        for value in values[:n_outputs]:
            out = np.full(args[0].shape, np.nan)
            out[inside] = value
            outputs.append(out)
        return tuple(outputs)

    return run


class FastTransform:
    """One gwcs transform (a model, with or without its bounding box) as a function of 1-D arrays.

    ``reference`` is the call it stands for (e.g. ``wcs.transform(...)``): the first call on
    arrays compares the two on a sample of the inputs, and the reference is used from then on
    if they differ anywhere.  Scalars, quantities and arrays of other shapes go to the reference.
    """

    def __init__(self, model: Any, reference: Callable[..., Any], with_bounding_box: bool = True) -> None:
        self.reference = reference
        self.n_outputs = int(model.n_outputs)
        self._fast: Compiled | None = None
        self.checked = False
        try:
            compiled = compile_model(model)
            box = _bounding_box(model) if with_bounding_box else None
            self._fast = compiled if box is None else _within(compiled, box, self.n_outputs)
        except Exception as exc:  # noqa: BLE001 - anything unusual is evaluated by astropy
            _log.debug("%s: evaluated by astropy (%s)", getattr(model, "name", model), exc)

    @property
    def fast(self) -> bool:
        """Whether the compiled evaluation is in use."""
        return self._fast is not None

    def __call__(self, *args: Any) -> Outputs:
        plain = all(type(a) is np.ndarray and a.ndim == 1 for a in args) and len({a.size for a in args}) == 1
        if self._fast is None or not plain:  # scalars, quantities, other shapes: as astropy takes them
            return self._reference(*args)
        arrays = [np.asarray(a, dtype=float) for a in args]
        if not self.checked:
            self._check(arrays)
            if self._fast is None:
                return self._reference(*arrays)
        return self._fast(*arrays)

    def _reference(self, *args: Any) -> Outputs:
        return _as_outputs(self.reference(*args), self.n_outputs)

    def _check(self, arrays: Sequence[np.ndarray]) -> None:
        """Compare both evaluations on up to CHECK_SAMPLE inputs spread over the first call's."""
        assert self._fast is not None
        n = arrays[0].size
        pick = np.unique(np.linspace(0, n - 1, min(n, CHECK_SAMPLE)).astype(np.intp)) if n else np.empty(0, np.intp)
        sample = [a[pick] for a in arrays]
        try:
            got = self._fast(*sample)
            want = self._reference(*sample)
            same = len(got) == len(want) and all(
                np.shape(g) == np.shape(w) and np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want, strict=True))
        except Exception as exc:  # noqa: BLE001 - the compiled tree failed where astropy may not
            _log.debug("compiled transform failed on its check (%s); evaluated by astropy", exc)
            same = False
        if not same:
            _log.debug("compiled transform differs from astropy on its check; evaluated by astropy")
            self._fast = None
        self.checked = True


class FastWcs:
    """A gwcs's forward transform and frame-to-frame transforms as :class:`FastTransform` s, each
    compiled on first use (``wcs(...)`` and ``wcs.transform(...)``, with their bounding boxes)."""

    def __init__(self, wcs: Any) -> None:
        self.wcs = wcs
        self._transforms: dict[tuple[str, str] | None, FastTransform] = {}

    def __call__(self, *args: Any) -> Outputs:
        if None not in self._transforms:
            self._transforms[None] = FastTransform(self.wcs.forward_transform, self.wcs)
        return self._transforms[None](*args)

    def transform(self, from_frame: str, to_frame: str, *args: Any) -> Outputs:
        key = (from_frame, to_frame)
        if key not in self._transforms:
            model = self.wcs.get_transform(from_frame, to_frame)
            if model is None:
                raise ValueError(f"No transformation found from {from_frame} to {to_frame}.")
            self._transforms[key] = FastTransform(model, lambda *a: self.wcs.transform(from_frame, to_frame, *a))
        return self._transforms[key](*args)
