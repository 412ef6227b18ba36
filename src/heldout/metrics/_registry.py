"""One typed registry of metrics, with direction and the shapes each applies to.

Metrics are pure functions ``(y_true, y_pred, *, options) -> MetricResult`` returning a value per
sample (so comparisons can be paired) and an aggregate. Register with :func:`metric`; a bad
registration fails at decoration time, an unknown name raises with the list of known ones.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from heldout.errors import HeldoutError, UnknownNameError

__all__ = [
    "MetricFn",
    "MetricOptions",
    "MetricResult",
    "MetricSpec",
    "SufficientStats",
    "get_metric",
    "metric",
    "metric_families",
    "metric_family",
    "metric_names",
]

LabelMatch = Literal["strict", "mention"]

SHAPE_NAMES = ("classification", "extraction", "qa", "summarization", "structured", "open")


@dataclass(frozen=True, slots=True)
class MetricOptions:
    """Shape options a metric may use (from the plan's task section)."""

    labels: tuple[str, ...] | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: classification: "strict" (whole output is a label or alias) or "mention" (first label
    #: named anywhere; opt-in, it reads "not positive" as positive).
    label_match: LabelMatch = "strict"
    schema: Mapping[str, Any] | None = None
    extract_json: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The model inputs per sample, for metrics that compare with the source (faithfulness).
    inputs: Sequence[str] | None = None


F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SufficientStats:
    """An aggregate that is a function of per-sample sums: ``fn(sums)`` maps (B, m) sums to
    (B,) values. Each sample adds either 1 to one of ``m`` cells (``codes``: a confusion-matrix
    cell) or a row of ``rows`` (n, m) (tp, predicted, gold counts).

    It makes the jackknife O(n·m) instead of O(n²) (a leave-one-out sum is the total minus
    one sample's row; with codes there are only m distinct leave-one-out values), so F1-type
    metrics get their jackknife interval at any n.
    """

    m: int
    fn: Callable[[F64], F64]
    codes: npt.NDArray[np.intp] | None = None
    rows: F64 | None = None

    def sums(self, idx: npt.NDArray[np.intp]) -> F64:
        """(B, m) sums of each row of a (B, k) index matrix."""
        idx = np.atleast_2d(idx)
        if self.codes is not None:
            b = idx.shape[0]
            flat = (np.arange(b)[:, None] * self.m + self.codes[idx]).ravel()
            return np.bincount(flat, minlength=b * self.m).reshape(b, self.m).astype(np.float64)
        if self.rows is None:
            raise HeldoutError("SufficientStats needs codes or rows")
        return np.asarray(self.rows[idx].sum(axis=1), dtype=np.float64)

    def leave_one_out(self, rows: npt.NDArray[np.intp]) -> F64:
        """The aggregate on ``rows`` with each of them left out in turn."""
        total = self.sums(rows[None, :])[0]
        if self.codes is not None:
            per_cell = self.fn(total[None, :] - np.eye(self.m))
            return np.asarray(per_cell[self.codes[rows]], dtype=np.float64)
        if self.rows is None:
            raise HeldoutError("SufficientStats needs codes or rows")
        return np.asarray(self.fn(total[None, :] - self.rows[rows]), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class MetricResult:
    """Per-sample values plus the aggregate the metric reports.

    ``details`` holds extra tables (confusion matrix, per class). ``resample`` recomputes the
    aggregate for each row of a (B, n) matrix of sample indices, vectorised: it is what the
    bootstrap uses. For metrics that are means of per-sample values it defaults to the row
    means; metrics like macro F1 give ``sufficient`` statistics (or their own ``resampler``).
    """

    name: str
    aggregate: float
    per_sample: npt.NDArray[np.float64]
    details: Mapping[str, Any] = field(default_factory=dict)
    resampler: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64]] | None = None
    sufficient: SufficientStats | None = None

    @property
    def recomputed(self) -> bool:
        """The aggregate is recomputed from resampled samples, not a mean of ``per_sample``."""
        return self.resampler is not None or self.sufficient is not None

    def resample(self, idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Aggregate of each resample; ``idx`` has shape (B, n) (or (n,) for one)."""
        if self.sufficient is not None:
            return self.sufficient.fn(self.sufficient.sums(idx))
        if self.resampler is not None:
            return self.resampler(np.atleast_2d(idx))
        return np.asarray(self.per_sample[np.atleast_2d(idx)].mean(axis=1), dtype=np.float64)

    def leave_one_out(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64] | None:
        """The aggregate on ``rows`` with each left out in turn, when it is cheap (sufficient
        statistics); None otherwise (the caller falls back to index jackknifing)."""
        return None if self.sufficient is None else self.sufficient.leave_one_out(rows)


class MetricFn(Protocol):
    def __call__(
        self, y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions
    ) -> MetricResult: ...


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A registered metric: its function and metadata."""

    name: str
    fn: MetricFn
    shapes: frozenset[str]
    higher_is_better: bool
    bounds: tuple[float, float] | None
    mean_of_samples: bool
    description: str
    #: Per-sample values are 0/1 (accuracy, exact match): power uses the paired score test.
    binary: bool = False
    #: Reported beside the primary metric unless the plan lists its own secondary_metrics.
    default_secondary: bool = True
    #: The class a per-class metric (``recall[pii]``) scores; validated against the labels.
    label: str | None = None

    @property
    def kind(self) -> str:
        """How it is compared: "binary", "continuous" (mean of per-sample values) or
        "resampled" (recomputed from resampled samples: macro F1, span F1)."""
        if not self.mean_of_samples:
            return "resampled"
        return "binary" if self.binary else "continuous"

    def __call__(
        self, y_true: Sequence[Any], y_pred: Sequence[Any], *, options: MetricOptions | None = None
    ) -> MetricResult:
        return self.fn(y_true, y_pred, options=options or MetricOptions())


_REGISTRY: dict[str, MetricSpec] = {}
#: Families of metrics with arguments in brackets, ``recall[pii]`` or ``fbeta[2, spam]``:
#: family name → (usage shown in listings, factory from the argument strings to a spec).
_FAMILIES: dict[str, tuple[str, Callable[[tuple[str, ...]], MetricSpec]]] = {}
_PARAMETRIC = re.compile(r"^(?P<family>[A-Za-z_]\w*)\[(?P<args>[^\[\]]*)\]$")


def metric(
    name: str,
    *,
    shapes: Iterable[str],
    higher_is_better: bool,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    mean_of_samples: bool = True,
    binary: bool = False,
    default_secondary: bool = True,
) -> Callable[[MetricFn], MetricFn]:
    """Register a metric function under ``name``.

    ``mean_of_samples`` says whether the aggregate is the mean of ``per_sample`` (accuracy)
    or must be recomputed from resampled inputs (macro F1); ``binary`` that every per-sample
    value is 0 or 1 (it decides the power calculation before any run).

    Example::

        @metric("exact_upper", shapes=["qa"], higher_is_better=True)
        def exact_upper(y_true, y_pred, *, options):
            ...
    """
    shape_set = frozenset(shapes)

    def register(fn: MetricFn) -> MetricFn:
        if not name or not name.isidentifier():
            raise HeldoutError(f"metric name {name!r} must be a non-empty identifier")
        if name in _REGISTRY:
            raise HeldoutError(f"metric {name!r} is already registered")
        unknown = shape_set - set(SHAPE_NAMES)
        if not shape_set or unknown:
            raise HeldoutError(
                f"metric {name!r}: shapes must be a non-empty subset of {', '.join(SHAPE_NAMES)}"
            )
        params = inspect.signature(fn).parameters
        if "options" not in params or params["options"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise HeldoutError(f"metric {name!r}: function must take (y_true, y_pred, *, options)")
        if bounds is not None and not bounds[0] < bounds[1]:
            raise HeldoutError(f"metric {name!r}: bounds {bounds} must be (low, high)")
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[name] = MetricSpec(
            name=name,
            fn=fn,
            shapes=shape_set,
            higher_is_better=higher_is_better,
            bounds=bounds,
            mean_of_samples=mean_of_samples,
            description=doc.splitlines()[0] if doc else "",
            binary=binary,
            default_secondary=default_secondary,
        )
        return fn

    return register


def _ensure_builtins() -> None:
    # Importing the packs registers them; deferred so the registry module stays import-light.
    from heldout.metrics import builtin  # noqa: F401


def metric_family(
    family: str, usage: str
) -> Callable[[Callable[[tuple[str, ...]], MetricSpec]], Callable[[tuple[str, ...]], MetricSpec]]:
    """Register a family of metrics named with bracketed arguments (``recall[pii]``): the
    factory receives the stripped, comma-separated arguments and returns the spec, or raises
    :class:`HeldoutError` saying what the arguments must be."""

    def register(
        factory: Callable[[tuple[str, ...]], MetricSpec],
    ) -> Callable[[tuple[str, ...]], MetricSpec]:
        if family in _FAMILIES:
            raise HeldoutError(f"metric family {family!r} is already registered")
        _FAMILIES[family] = (usage, factory)
        return factory

    return register


def metric_families() -> dict[str, str]:
    """Registered metric families and their usage, e.g. ``{"recall": "recall[LABEL]"}``."""
    _ensure_builtins()
    return {name: usage for name, (usage, _) in sorted(_FAMILIES.items())}


def get_metric(name: str) -> MetricSpec:
    """The registered metric ``name`` (or a family member such as ``recall[pii]``); raises
    :class:`UnknownNameError` listing known ones."""
    _ensure_builtins()
    spec = _REGISTRY.get(name)
    if spec is not None:
        return spec
    m = _PARAMETRIC.match(name.strip())
    if m is not None and m["family"] in _FAMILIES:
        args = tuple(a.strip() for a in m["args"].split(",")) if m["args"].strip() else ()
        spec = _FAMILIES[m["family"]][1](args)
        _REGISTRY[name] = spec
        return spec
    known = [*_REGISTRY, *(usage for usage, _ in _FAMILIES.values())]
    raise UnknownNameError("metric", name, known)


def metric_names(shape: str | None = None) -> list[str]:
    """Names of registered metrics (family members included once asked for), optionally
    only those for ``shape``."""
    _ensure_builtins()
    return sorted(
        n for n, s in _REGISTRY.items() if (shape is None or shape in s.shapes) and "[" not in n
    )
