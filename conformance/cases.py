"""The inputs the suite runs: named cases, each a deterministic function of its fields.

Every case's values are exactly representable in float32, so a float32 backend and the float64
reference see the same numbers and a comparison measures the backend's rounding alone.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rnnspec.spec import Model, Params, lengths_to_mask, reference


class Inputs(NamedTuple):
    params: Params
    x: Any
    y: Any
    h0: Any


@dataclass(frozen=True)
class Case:
    name: str
    T: int = 5
    B: int = 3
    D: int = 3
    H: int = 4
    K: int = 5
    seed: int = 0
    soft_targets: bool = False
    target_sums: tuple[float, ...] = (
        1.0,
    )  # soft targets: each row's Σ_k y_k, cycling; 0 = all-zero
    h0: bool = True  # False: h0 omitted, i.e. zeros
    spectral_radius: float = 0.9  # of W; < 1 keeps the recurrence contractive
    diagonal_W: bool = False
    logit_offsets: float = 0.0  # c spread over ±this: logits beyond 1e3 when large
    far_rows: float = 0.0  # V's first column (this, 0, …): o₁(t) ≈ this·h₁(t), rows far apart
    preactivation_range: tuple[float, float] | None = None  # b spread over it: saturates tanh
    conditioning: str = "well"  # or "saturated", "chaotic": see finite_only
    padding: str | None = None  # a mask (SPEC.md §9): one of MASK_PATTERNS; None: no mask
    sequence_lengths: tuple[int, ...] = ()  # right, left padding: each sequence's; () cycles
    masked_steps: tuple[int, ...] = ()  # steps t (1-based) masked in every sequence, on top
    masked_sequences: tuple[int, ...] = ()  # sequences n masked at every step, on top
    one_hot_inputs: bool = False  # each x(t) the one-hot vector of its largest entry: a word
    nonlinearity: str = "tanh"  # φ (SPEC.md §1): the call's Model
    kink_units: int = 0  # relu: b_i = 0 and x(1) = 0 for the first this many units, h0 = 0, so
    #                      that a_i(1) = 0 exactly in any dtype and φ′(0) decides δ(1) (§1.1)
    relu_prime_at_zero: float = 0.0  # the φ′(0) the answer uses: the backend's declared one
    layers: int = 1  # a stack's layers (SPEC.md §12); with bidirectional, the call's Model
    bidirectional: bool = False

    @property
    def steps(self) -> int:
        """The T of the tolerance policy: N·T for a stack of N layers (SPEC.md §12.4)."""
        return self.T * self.layers

    def arrays(self, dtype: str = "float64") -> Inputs:
        """NumPy inputs in ``dtype``; targets are int64 class indices or soft weights in ``dtype``."""
        rng = np.random.default_rng(self.seed)
        T, B, D, H, K = self.T, self.B, self.D, self.H, self.K
        W = rng.standard_normal((H, H))
        if self.diagonal_W:
            W = np.diag(np.diag(W))
        radius = max(abs(np.linalg.eigvals(W)).max(), 1e-12)
        W *= self.spectral_radius / radius
        U = rng.standard_normal((H, D)) / np.sqrt(D)
        b = 0.1 * rng.standard_normal(H)
        V = rng.standard_normal((K, H)) / np.sqrt(H)
        c = 0.1 * rng.standard_normal(K)
        x = rng.standard_normal((T, B, D))
        if self.one_hot_inputs:  # for code that takes word indices into a vocabulary of D
            x = np.eye(D)[np.argmax(x, axis=-1)]
        h0 = 0.5 * rng.standard_normal((B, H)) if self.h0 else None
        if self.preactivation_range is not None:
            U, W = 0.05 * U, 0.05 * W / max(self.spectral_radius, 1e-12)
            b = np.linspace(*self.preactivation_range, H)
        if self.logit_offsets:
            c = np.linspace(-self.logit_offsets, self.logit_offsets, K)
        y: np.ndarray
        if self.soft_targets:
            y = rng.random((T, B, K))
            sums = np.resize(np.asarray(self.target_sums, np.float64), T * B).reshape(T, B, 1)
            y = y / y.sum(axis=-1, keepdims=True) * sums
        else:
            y = rng.integers(0, K, size=(T, B))
        if self.padding is not None:  # what a masked step holds is never read: make it absurd
            padded = ~np.asarray(self.mask())
            x[padded] = PADDED_INPUT
            y[padded] = PADDED_SOFT_TARGET if self.soft_targets else PADDED_CLASS
        if self.far_rows:
            V[:, 0] = 0
            V[0, 0] = self.far_rows
        if self.kink_units:  # a(1) = b + W·0 + U·0 = b: exactly 0 in the kink units
            x[0], b[: self.kink_units] = 0.0, 0.0
        if self.model().stacked:  # the other cells drawn after everything else (§12)
            (U, W, b), V, h0 = self._cells(rng, (U, W, b), h0 is not None)
        params = Params(*(
            tuple(_representable(a, dtype) for a in p) if isinstance(p, tuple)
            else _representable(p, dtype) for p in (U, W, b, V, c)
        ))  # fmt: skip
        y = _representable(y, dtype) if self.soft_targets else y.astype(np.int64)
        h0 = None if h0 is None else _representable(h0, dtype)
        return Inputs(params, _representable(x, dtype), y, h0)

    def _cells(self, rng, first: tuple, with_h0: bool) -> tuple:
        """A stack's U, W and b as tuples of arrays, cell 0 the one-layer draw, V (K, R·H) and h0
        (cells, B, H); each W at the case's spectral radius, each U scaled by its inputs' count."""
        model = self.model()
        R, H = model.directions, self.H
        cells = [first]
        for i in range(1, model.cells):
            inputs = self.D if i < R else R * H
            W = rng.standard_normal((H, H))
            W *= self.spectral_radius / max(abs(np.linalg.eigvals(W)).max(), 1e-12)
            cells.append((rng.standard_normal((H, inputs)) / np.sqrt(inputs), W,
                          0.1 * rng.standard_normal(H)))  # fmt: skip
        V = rng.standard_normal((self.K, R * H)) / np.sqrt(R * H)
        h0 = 0.5 * rng.standard_normal((model.cells, self.B, H)) if with_h0 else None
        return tuple(tuple(cell[k] for cell in cells) for k in range(3)), V, h0

    def native(self, backend, dtype: str) -> Inputs:
        """The same inputs as the backend's own arrays on its device, as it takes them
        (:func:`scoped`: the suite's Call holds the same case, and with it the oracle)."""
        params, x, y, h0 = scoped(self, backend).arrays(dtype)
        return Inputs(
            native_params(backend, params),
            backend.asarray(x),
            backend.asarray(y),
            None if h0 is None else backend.asarray(h0),
        )

    def model(self) -> Model:
        """The Model a backend's call takes for this case (SPEC.md §8, §12)."""
        return Model(self.nonlinearity, self.layers, self.bidirectional)

    def model_argument(self) -> dict[str, Model]:
        """``model=`` for a backend's call: none for the one-layer tanh network, so that its call
        is the same call on every protocol version."""
        return {} if self.model() == Model() else {"model": self.model()}

    def lengths(self) -> np.ndarray:
        """For right and left padding: each sequence's length, ``sequence_lengths`` where given,
        else cycling T, T − 2, 1 and (for "empty") 0."""
        if self.sequence_lengths:
            return np.asarray(self.sequence_lengths)
        pattern = (self.T, max(self.T - 2, 1), 1) + ((0,) if self.padding == "empty" else ())
        return np.resize(np.asarray(pattern), self.B)

    def mask(self) -> np.ndarray | None:
        """The (T, B) boolean NumPy mask of ``padding``, with ``masked_steps`` and
        ``masked_sequences`` masked too, or None."""
        if self.padding is None:
            return None
        mask = self._pattern()
        mask[[t - 1 for t in self.masked_steps]] = False
        mask[:, list(self.masked_sequences)] = False
        return mask

    def _pattern(self) -> np.ndarray:
        T, B = self.T, self.B
        if self.padding in ("right", "empty", "left"):
            side = "left" if self.padding == "left" else "right"
            return lengths_to_mask(self.lengths(), T, padding=side)
        if self.padding == "gaps":  # steps missing in the middle, and a sequence starting late
            rng = np.random.default_rng(self.seed + 1000)
            mask = rng.random((T, B)) < 0.6
            mask[0], mask[-1] = True, True
            mask[: T // 2, -1] = False
            return mask
        if self.padding == "holes":  # each step kept or not at random, the first and last too
            return np.random.default_rng(self.seed + 1000).random((T, B)) < 0.5
        return np.full((T, B), self.padding == "ones")

    def native_mask(self, backend):
        """The mask as the backend's own array, or None."""
        mask = self.mask()
        return None if mask is None else backend.asarray(mask)

    def finite_only(self, dtype: str, tensor: str) -> bool:
        """Whether ``tensor`` is held to finiteness only (SPEC.md §6.3): its rounding errors are
        amplified in ways that κ, a sensitivity to the inputs, does not measure.

        Chaotic: Jacobian products grow like e^(λT); fine in float64 at short T, not in float32.
        Saturated: D = 1 − h⊙h amplifies tanh's own rounding (≤ 1 ulp in one libm, up to 7 in
        another) by 2h²/(1 − h²) ≈ e^(2|a|)/2, so every tensor that goes through D is checked for
        finiteness in both dtypes; h, o, ŷ, L and the output layer's gradients are compared.
        Kinked (relu, drawn): some a(t) lies so near relu's kink that float32's rounding may put it
        on the other side, where φ′ jumps from 0 to 1 (SPEC.md §6.3); the tensors through D are
        held to finiteness in float32 and compared in float64.
        """
        if self.conditioning == "chaotic":
            return dtype == "float32"
        if self.conditioning == "saturated":
            return dtype == "float32" or tensor.partition("[")[0] in THROUGH_D
        if self.conditioning == "kinked":
            return dtype == "float32" and tensor.partition("[")[0] in THROUGH_D
        return False

    def label(self) -> str:
        kind = f"soft targets Σy∈{self.target_sums}" if self.soft_targets else "class indices"
        masked = "" if self.padding is None else f", mask {self.padding!r}"
        phi = "" if self.nonlinearity == "tanh" else f", φ = {self.nonlinearity}"
        stack = "" if self.layers == 1 else f", {self.layers} layers"
        stack += ", bidirectional" if self.bidirectional else ""
        return (
            f"{self.name} (T={self.T}, B={self.B}, D={self.D}, H={self.H}, K={self.K}, {kind}"
            f"{masked}{phi}{stack})"
        )


#: The tensors whose computation multiplies by D_t = diag(1 − h(t)⊙h(t)).
THROUGH_D = ("Grads.U", "Grads.W", "Grads.b", "Grads.h0", "Grads.x")


def native_params(backend, params: Params) -> Params:
    """NumPy Params as the backend's own arrays, a stack's tuples cell by cell; None kept (the
    layer alone has no V and c, SPEC.md §13)."""

    def native(value):
        if isinstance(value, tuple):
            return tuple(backend.asarray(a) for a in value)
        return None if value is None else backend.asarray(value)

    return Params(*(native(value) for value in params))


def scoped(case: Case, backend) -> Case:
    """The case as a backend of fewer capabilities takes it (a plain function, rnnspec.check):
    h0 omitted where it takes none (capabilities.initial_state), class indices for soft targets
    where it takes no soft targets (a named soft case is not applicable there: the plugin), every
    x(t) one-hot where it takes word indices (capabilities.one_hot_inputs). Every other backend
    takes the case as it is."""
    capabilities = backend.capabilities
    changes: dict[str, Any] = {}
    if case.h0 and not getattr(capabilities, "initial_state", True):
        changes["h0"] = False
    if case.soft_targets and not getattr(capabilities, "soft_targets", True):
        changes["soft_targets"] = False  # a drawn case, or a check's incidental use of them
    if getattr(capabilities, "one_hot_inputs", False) and not case.one_hot_inputs:
        changes["one_hot_inputs"] = True
    at_zero = float(getattr(capabilities, "relu_prime_at_zero", 0.0))
    if case.nonlinearity == "relu" and case.relu_prime_at_zero != at_zero:
        changes["relu_prime_at_zero"] = at_zero  # the convention it declares (SPEC.md §1.1)
    return dataclasses.replace(case, **changes) if changes else case


def declared_nonlinearity(case: Case, backend) -> Case:
    """A drawn case whose φ the backend does not declare, with the first φ it does declare (and
    judged anew); a named case of another φ is not applicable instead (the plugin)."""
    declared = tuple(getattr(backend.capabilities, "nonlinearities", ("tanh",)))
    if case.nonlinearity in declared:
        return case
    return judged(dataclasses.replace(case, nonlinearity=declared[0], conditioning="well"))


def _representable(array: np.ndarray, dtype: str) -> np.ndarray:
    """Round through float32 so that every dtype holds the very same values."""
    return np.asarray(array, np.float32).astype(dtype)


def _cases(*cases: Case) -> dict[str, Case]:
    return {case.name: case for case in cases}


#: The named cases. Errata cases use a non-diagonal, non-symmetric W with H ≥ 2 and D ≠ H ≠ K.
# fmt: off
CASES = _cases(
    Case("basic", T=5, B=3, D=3, H=4, K=5),
    Case("soft", T=6, B=3, D=3, H=4, K=5, seed=1, soft_targets=True,
         target_sums=(0.6, 2.5, 0.0, 1.0)),
    Case("zero_h0", T=4, B=2, D=2, H=3, K=4, seed=2, h0=False),
    Case("T1", T=1, B=2, D=3, H=4, K=5, seed=3),
    Case("T2", T=2, B=2, D=3, H=4, K=5, seed=4, soft_targets=True, target_sums=(0.6, 2.5)),
    Case("B1", T=7, B=1, D=3, H=4, K=5, seed=5),
    Case("diagonal_W", T=6, B=2, D=3, H=4, K=5, seed=13, diagonal_W=True),
    Case("H1", T=6, B=2, D=3, H=1, K=4, seed=6),
    Case("K2", T=6, B=2, D=3, H=4, K=2, seed=7),
    Case("batch16", T=10, B=16, D=8, H=16, K=10, seed=8, soft_targets=True,
         target_sums=(1.0, 0.6, 2.5)),
    Case("long", T=1000, B=2, D=4, H=8, K=5, seed=9),
    Case("large_logits", T=8, B=3, D=3, H=4, K=5, seed=10, logit_offsets=2000.0),
    Case("saturated", T=8, B=3, D=3, H=6, K=5, seed=11, preactivation_range=(3.0, 20.0),
         conditioning="saturated"),
    Case("chaotic", T=12, B=2, D=3, H=8, K=5, seed=12, spectral_radius=3.0, conditioning="chaotic"),
    Case("relu", T=7, B=3, D=3, H=5, K=4, seed=62, nonlinearity="relu", spectral_radius=1.1),
    Case("relu_soft", T=5, B=2, D=4, H=6, K=3, seed=31, nonlinearity="relu", soft_targets=True,
         target_sums=(1.0, 0.6, 2.5)),
    Case("relu_kink", T=4, B=2, D=3, H=4, K=5, seed=45, nonlinearity="relu", h0=False,
         kink_units=2),
)
# fmt: on

#: Mask patterns (SPEC.md §9): right and left padding, a sequence with no step ("empty"), gaps
#: in the middle, steps missing anywhere ("holes"), every step, no step.
MASK_PATTERNS = ("right", "left", "empty", "gaps", "holes", "ones", "zeros")
#: What masked steps hold in the masked cases: values a check would reject at an unmasked step
#: (class −100 as torch users write it, a negative soft target) or that would saturate tanh.
PADDED_INPUT, PADDED_CLASS, PADDED_SOFT_TARGET = 1000.0, -100, -1.0

# fmt: off
#: The masked cases, by name: the mask checks' own, never run without their mask.
MASKED_CASES = _cases(
    Case("masked_right", T=6, B=3, D=3, H=4, K=5, seed=20, padding="right"),
    Case("masked_left", T=6, B=3, D=3, H=4, K=5, seed=21, padding="left"),
    Case("masked_empty", T=5, B=4, D=2, H=3, K=4, seed=22, padding="empty"),
    Case("masked_gaps", T=8, B=3, D=3, H=4, K=5, seed=23, padding="gaps", soft_targets=True,
         target_sums=(0.6, 2.5, 1.0)),
    Case("masked_ones", T=5, B=3, D=3, H=4, K=5, seed=24, padding="ones"),
    Case("masked_zeros", T=5, B=3, D=3, H=4, K=5, seed=25, padding="zeros"),
    Case("masked_relu", T=7, B=3, D=3, H=5, K=4, seed=77, padding="gaps", nonlinearity="relu"),
)
# fmt: on

# fmt: off
#: The stacked and bidirectional cases (SPEC.md §12), a covering design: with the one-layer cases
#: above, every pair of φ × layers (1, 2, 3) × directions × mask (none, right, left padding) ×
#: dtype is met at least once (DESIGNED_DTYPES; tests/test_case_design.py counts them); h(0)
#: nonzero in all but one, class indices and soft targets; a sequence with no step at all.
STACKED_CASES = _cases(
    Case("bi", T=5, B=3, D=3, H=4, K=5, seed=80, bidirectional=True, nonlinearity="relu",
         padding="right"),
    Case("deep2", T=5, B=3, D=3, H=4, K=5, seed=81, layers=2, h0=False),
    Case("deep2_bi", T=6, B=3, D=2, H=4, K=5, seed=82, layers=2, bidirectional=True,
         padding="left", masked_sequences=(1,)),  # an empty sequence in both directions
    Case("deep2_relu", T=5, B=2, D=3, H=5, K=4, seed=83, layers=2, nonlinearity="relu",
         padding="right", soft_targets=True, target_sums=(1.0, 0.6, 2.5)),
    Case("deep3_bi", T=4, B=2, D=3, H=3, K=4, seed=84, layers=3, bidirectional=True,
         nonlinearity="relu"),
    Case("deep3", T=6, B=3, D=3, H=4, K=5, seed=85, layers=3, padding="right"),
    Case("deep3_left", T=5, B=3, D=3, H=4, K=5, seed=86, layers=3, nonlinearity="relu",
         padding="left"),
)
# fmt: on

#: The one dtype each case of the stack and layer checks runs in: with it the covering design
#: holds every pair of φ × layers × directions × mask × dtype (the one-layer cases run in both
#: dtypes); tests/test_case_design.py counts the pairs.
DESIGNED_DTYPES = {
    "bi": "float32", "deep2": "float32", "deep3_left": "float32",
    "deep2_bi": "float64", "deep2_relu": "float64", "deep3_bi": "float64", "deep3": "float64",
    "basic": "float32", "T1": "float32", "masked_right": "float32",
    "zero_h0": "float64", "relu": "float64", "masked_gaps": "float64",
}  # fmt: skip

#: The upstream gradients a check of the layer alone sends (SPEC.md §13): to the last states
#: only (a loss that reads h_n alone, pytorch#96416's case), to some steps only, to every step
#: and the last states.
COTANGENTS = ("final", "some_steps", "all")


def cotangents(case: Case, kind: str, dtype: str = "float64") -> tuple:
    """(h_grad, hn_grad) of ``kind`` for the case, float32-representable, hn_grad None where the
    kind sends none: (T, B, R·H), and (B, H) or (cells, B, H)."""
    model = case.model()
    rng = np.random.default_rng(case.seed + 2000)
    h_grad = rng.standard_normal((case.T, case.B, model.directions * case.H))
    final_shape = (model.cells, case.B, case.H) if model.stacked else (case.B, case.H)
    hn_grad = rng.standard_normal(final_shape)
    if kind == "final":
        h_grad[:] = 0.0
    elif kind == "some_steps":
        h_grad[[t for t in range(case.T) if t not in (0, case.T // 2)]] = 0.0
        return _representable(h_grad, dtype), None
    return _representable(h_grad, dtype), _representable(hn_grad, dtype)


def all_cases() -> dict[str, Case]:
    """Every named case, one-layer, masked and stacked, by name."""
    return {**CASES, **MASKED_CASES, **STACKED_CASES}


def registry(case: Case) -> str:
    """The name of the dict in this module that holds the named case."""
    if case.name in STACKED_CASES:
        return "STACKED_CASES"
    return "MASKED_CASES" if case.name in MASKED_CASES else "CASES"


#: Cases small enough for form A's O(T³) literal products in the reference.
SHORT = [name for name, case in CASES.items() if case.T <= 20]


def random_case(integer, uniform, boolean) -> tuple[Case, int]:
    """A random case and step t, from the one distribution that the property checks and
    ``rnnspec calibrate`` share: T ≤ 8, B ≤ 4, D ≤ 5, H ≤ 6, 2 ≤ K ≤ 6, class indices or soft
    targets summing to 0.6, 2.5, 0 and 1, h0 given or zero, W's spectral radius in [0.1, 1.2], φ tanh
    or relu; a draw whose tanh saturates (some |a| ≥ SATURATION) is a "saturated" case, one whose
    relu has some a(t) near its kink a "kinked" case (SPEC.md §6.3).

    ``integer(lo, hi)`` (both included), ``uniform(lo, hi)`` and ``boolean()`` draw the numbers:
    Hypothesis's strategies in the property checks, a NumPy generator in calibrate.
    """
    T = integer(1, 8)
    soft = boolean()
    case = Case(
        "random",
        T=T,
        B=integer(1, 4),
        D=integer(1, 5),
        H=integer(1, 6),
        K=integer(2, 6),
        seed=integer(0, 2**16),
        soft_targets=soft,
        target_sums=(0.6, 2.5, 0.0, 1.0) if soft else (1.0,),
        h0=boolean(),
        spectral_radius=uniform(0.1, 1.2),
        nonlinearity="relu" if boolean() else "tanh",
    )
    return judged(case), integer(1, T)


def judged(case: Case) -> Case:
    """A drawn case as the checks judge it: a "saturated" one where its tanh reaches SATURATION, a
    "kinked" one where its relu comes nearer than KINK to the kink (SPEC.md §6.3), else as it is."""
    if case.nonlinearity == "relu":
        return (
            dataclasses.replace(case, conditioning="kinked") if kink_distance(case) < KINK else case
        )
    if _max_preactivation(case) >= SATURATION:
        return dataclasses.replace(case, conditioning="saturated")
    return case


#: |a| from which 1 − tanh(a)² in float32 is off by more than the bound allows (relative error
#: 1.5e-4 at |a| = 5, SPEC.md §6.3): a random case that reaches it is a saturated one
SATURATION = 5.0


#: |a| / (|b| + |W| |h(t−1)| + |U| |x(t)|) below which float32's rounding of a(t), a few u times
#: that sum, could put a(t) across relu's kink (100× float32's bound for D + H ≤ 11 terms, γ ≈ 7e-7)
KINK = 1e-4


def kink_distance(case: Case) -> float:
    """min over the case's unmasked steps and units of |a_i(t)| relative to the size of the terms
    it sums, in float64: how far relu's kink is, as a fraction of a(t)'s scale (the kink units of
    a ``kink_units`` case, whose a(1) is exactly 0 by construction, left out); every cell's of a
    stack (12.1)."""
    if case.model().stacked:
        a, scale = stack_preactivations(case)
        return float((np.abs(a) / np.where(scale > 0, scale, 1.0)).min(initial=np.inf))
    params, x, _, h0 = case.arrays("float64")
    mask = case.mask()
    h = reference.forward(params, x, h0, mask=mask, model=case.model()).h
    h_prev = np.concatenate([np.zeros((1, case.B, case.H)) if h0 is None else h0[None], h[:-1]])
    a = params.b + h_prev @ params.W.T + x @ params.U.T  # (1.1) for every t and sequence
    scale = np.abs(params.b) + np.abs(h_prev) @ np.abs(params.W.T) + np.abs(x) @ np.abs(params.U.T)
    relative = np.abs(a) / np.where(scale > 0, scale, 1.0)
    if case.kink_units:
        relative[0, :, : case.kink_units] = np.inf
    computed = relative if mask is None else relative[mask]
    return float(computed.min(initial=np.inf))


def stack_preactivations(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Every cell's a_i(t) (12.1) at the case's unmasked steps, and the size of the terms it sums,
    |b_i| + |W_i| |h_i(t ∓ 1)| + |U_i| |z_l(t)|, in float64, flat."""
    params, x, _, h0 = case.arrays("float64")
    model = case.model()
    given = case.mask()
    mask = np.ones((case.T, case.B), bool) if given is None else given
    _, cells, x, h0s, m, phi, phi_prime = reference._stack_inputs(params, x, h0, mask, model)
    a, scale = [], []
    for n in range(case.B):
        xs, ms = [None, *x[:, n]], [None, *m[:, n]]
        states, inputs = reference._stack_forward(cells, xs, h0s[:, n], ms, model, phi, phi_prime)
        for i, (h, _) in enumerate(states):
            cell, zs = cells[i], inputs[i // model.directions]
            for t in range(1, case.T + 1):
                if mask[t - 1, n]:
                    before = h[t + 1] if i % model.directions else h[t - 1]
                    a.append(cell.b + cell.W @ before + cell.U @ zs[t])
                    scale.append(np.abs(cell.b) + np.abs(cell.W) @ np.abs(before)
                                 + np.abs(cell.U) @ np.abs(zs[t]))  # fmt: skip
    return np.concatenate(a), np.concatenate(scale)


def _max_preactivation(case: Case) -> float:
    """max |a(t)| over the case's forward pass at its unmasked steps, in float64 (a = artanh h);
    a masked step computes no a(t), it carries h over."""
    if case.model().stacked:
        return float(np.abs(stack_preactivations(case)[0]).max(initial=0.0))
    params, x, _, h0 = case.arrays("float64")
    mask = case.mask()
    h = reference.forward(params, x, h0, mask=mask).h
    computed = h if mask is None else h[mask]
    return float(np.abs(np.arctanh(computed)).max(initial=0.0))
