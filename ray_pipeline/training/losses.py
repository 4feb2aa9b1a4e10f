"""Classification losses over class logits, with the paper's uncertainty-based variants.

Every loss is called as ``loss(logits [B, K], labels [B], uncertainty [B] | None) -> scalar``,
averaged over the batch. ``uncertainty`` is the clip's CLIP entropy normalised over the
generated dataset to [0, 1] (:class:`UncertaintyNormalizer`); real clips pass 0.

* ``ce``: cross-entropy.
* ``ls``: label smoothing with a fixed ``epsilon``, in the paper's eq. (4) form: target
  ``1 - eps`` on the label and ``eps / (K - 1)`` on every other class.
* ``ul`` (the paper's UL): the same targets with a per-sample ``eps_i = w * u_i``.
* ``uw``: per-sample loss weight ``1 - w * u_i``, averaged over the whole batch (so uncertain
  clips count less, and at u = 1 weigh ``1 - w`` as UL's target weight on the label does).
* ``uf``: drop clips whose uncertainty is above a threshold fixed over the generated dataset
  (:func:`uf_threshold`: the most uncertain ``drop_fraction``); cross-entropy averaged over the
  clips kept. The paper filters the dataset; :func:`uf_keep_mask` does that up front, and the
  loss applies the same rule in case a dropped clip is still fed.

See docs/models.md for why UW and UF are defined this way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LossName = Literal["ce", "ls", "uw", "uf", "ul"]
LOSS_NAMES: tuple[str, ...] = ("ce", "ls", "uw", "uf", "ul")
NormMethod = Literal["minmax", "logk"]

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------
# Uncertainty normalisation over the generated dataset
# --------------------------------------------------------------------------------------------


def _as_float64(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class UncertaintyNormalizer:
    """Maps raw CLIP entropies (nats) to uncertainties in [0, 1]: ``(H - low) / (high - low)``.

    ``minmax`` (default) takes ``low``/``high`` as the min/max entropy over the generated
    dataset; ``logk`` uses ``low = 0``, ``high = log K`` (K = classes the clips were scored
    against), which is dataset-independent. Values outside the fitted range are clipped; a
    degenerate range (all entropies equal) maps everything to 0, i.e. no smoothing.
    """

    method: NormMethod
    low: float
    high: float

    @classmethod
    def fit(
        cls, raw_entropies: ArrayLike, method: NormMethod = "minmax", num_classes: int | None = None
    ) -> UncertaintyNormalizer:
        """Fit on the raw entropies of the whole generated dataset."""
        if method == "logk":
            if num_classes is None or num_classes < 2:
                raise ValueError(f"'logk' normalisation needs num_classes >= 2, got {num_classes}")
            return cls("logk", 0.0, math.log(num_classes))
        if method != "minmax":
            raise ValueError(f"unknown normalisation {method!r}; use 'minmax' or 'logk'")
        values = _as_float64(raw_entropies)
        if values.size == 0:
            raise ValueError("cannot fit min-max normalisation on an empty set of entropies")
        if not np.isfinite(values).all():
            raise ValueError("raw entropies contain NaN or inf")
        return cls("minmax", float(values.min()), float(values.max()))

    def __call__(self, raw: ArrayLike) -> np.ndarray | torch.Tensor:
        """Normalise; returns a tensor (float32) for tensor input, else a float64 array."""
        span = self.high - self.low
        if isinstance(raw, torch.Tensor):
            if span <= 0:
                return torch.zeros_like(raw, dtype=torch.float32)
            return ((raw.double() - self.low) / span).clamp(0.0, 1.0).float()
        values = np.asarray(raw, dtype=np.float64)
        if span <= 0:
            return np.zeros_like(values)
        return np.clip((values - self.low) / span, 0.0, 1.0)

    def to_dict(self) -> dict[str, float | str]:
        """For logging and checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | str]) -> UncertaintyNormalizer:
        return cls(str(data["method"]), float(data["low"]), float(data["high"]))  # type: ignore[arg-type]


def normalize_uncertainty(
    raw_entropies: ArrayLike, method: NormMethod = "minmax", num_classes: int | None = None
) -> np.ndarray | torch.Tensor:
    """Fit a normaliser on ``raw_entropies`` and apply it to them."""
    return UncertaintyNormalizer.fit(raw_entropies, method, num_classes)(raw_entropies)


def uf_threshold(uncertainties: ArrayLike, drop_fraction: float) -> float:
    """UF's cut: the largest uncertainty kept when the top ``drop_fraction`` is dropped.

    Clips with ``u <= threshold`` are kept. ``floor(drop_fraction * N)`` clips are dropped,
    fewer when several share the threshold value (ties are kept).
    """
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}")
    values = np.sort(_as_float64(uncertainties))
    if values.size == 0:
        raise ValueError("no uncertainties given")
    keep = values.size - math.floor(drop_fraction * values.size)
    return float(values[keep - 1])


def uf_keep_mask(uncertainties: ArrayLike, drop_fraction: float) -> np.ndarray:
    """Boolean mask of the clips UF keeps (for filtering the generated dataset up front)."""
    values = _as_float64(uncertainties)
    return values <= uf_threshold(values, drop_fraction)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _on(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``, copied without blocking the host (the loader's batches are pinned on GPU);
    a dtype change happens after, on the device."""
    return x.to(device, non_blocking=True)


def smoothed_targets(labels: torch.Tensor, num_classes: int, epsilon: torch.Tensor) -> torch.Tensor:
    """Eq. (4): ``1 - eps_i`` on the label, ``eps_i / (K - 1)`` elsewhere -> [B, K]."""
    if num_classes < 2:
        raise ValueError(f"label smoothing needs at least 2 classes, got {num_classes}")
    eps = epsilon.reshape(-1, 1)
    targets = (eps / (num_classes - 1)).expand(labels.shape[0], num_classes).clone()
    return targets.scatter(1, labels.view(-1, 1), 1.0 - eps)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-sum_k q_k log softmax(logits)_k`` -> [B] (float32)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


class ClassificationLoss(nn.Module):
    """One of ``ce``, ``ls``, ``uw``, ``uf``, ``ul`` (module docstring has the definitions).

    Args:
        name: which loss.
        weight: ``w`` of UL (``eps_i = w * u_i``) and UW (weight ``1 - w * u_i``); paper: 0.3.
        epsilon: LS's fixed smoothing (TC-CLIP's recipe uses 0.1).
        uf_threshold: UF keeps clips with ``u <= uf_threshold`` (see :func:`uf_threshold`).
        real_epsilon: the label smoothing real clips get under every variant (mixed batches).
    """

    def __init__(
        self,
        name: LossName = "ul",
        *,
        weight: float = 0.3,
        epsilon: float = 0.1,
        uf_threshold: float | None = None,
        real_epsilon: float = 0.1,
    ) -> None:
        super().__init__()
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r}; choose one of {LOSS_NAMES}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight w must be in [0, 1], got {weight}")
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
        if name == "uf" and uf_threshold is None:
            raise ValueError("the 'uf' loss needs uf_threshold (from uf_threshold() over the dataset)")
        self.name = name
        self.weight = weight
        self.epsilon = epsilon
        self.threshold = uf_threshold
        if not 0.0 <= real_epsilon < 1.0:
            raise ValueError(f"real_epsilon must be in [0, 1), got {real_epsilon}")
        self.real_epsilon = real_epsilon

    @property
    def needs_uncertainty(self) -> bool:
        """Whether ``forward`` needs per-sample uncertainties."""
        return self.name in ("uw", "uf", "ul")

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, uncertainty: torch.Tensor | None = None,
        real: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``logits`` [B, K], ``labels`` [B] (int), ``uncertainty`` [B] in [0, 1] -> scalar.

        ``real`` [B] (bool) marks real clips in a batch that mixes them with generated ones: the
        variant acts on the generated clips only, and real clips get plain label smoothing with
        ``real_epsilon`` whichever variant is chosen (so LS/UW/UF/UL differ only in how they treat
        generated clips).
        """
        if real is not None and bool(real.any()):
            return self._mixed(logits, labels, uncertainty, real)
        if logits.dim() != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits [B, K] and labels [B], got {tuple(logits.shape)}, {tuple(labels.shape)}"
            )
        num_classes = logits.shape[1]
        u = None
        if self.needs_uncertainty:
            if uncertainty is None:
                raise ValueError(f"the {self.name!r} loss needs per-sample uncertainties")
            if uncertainty.reshape(-1).shape != labels.shape:
                raise ValueError(
                    f"uncertainty has shape {tuple(uncertainty.shape)}, labels {tuple(labels.shape)}"
                )
            # checked where the caller keeps it (the loader's CPU tensor: no device synchronisation)
            if bool(((uncertainty < 0) | (uncertainty > 1) | ~torch.isfinite(uncertainty)).any()):
                raise ValueError("uncertainties must be normalised to [0, 1] (see UncertaintyNormalizer)")
            u = _on(uncertainty, logits.device).to(torch.float32).reshape(-1)

        if self.name == "ce":
            return F.cross_entropy(logits.float(), labels)
        if self.name == "ls":
            eps = torch.full(labels.shape, self.epsilon, device=logits.device)
            return soft_cross_entropy(logits, smoothed_targets(labels, num_classes, eps)).mean()
        if self.name == "ul":
            return soft_cross_entropy(logits, smoothed_targets(labels, num_classes, self.weight * u)).mean()
        per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
        if self.name == "uw":
            return ((1.0 - self.weight * u) * per_sample).mean()
        # uf: mean over the kept clips; an all-dropped batch gives 0 (with a graph, for DDP)
        # compared in float64, so a clip exactly at the threshold (a float64) is kept
        u64 = _on(uncertainty.reshape(-1), logits.device).to(torch.float64)
        keep = (u64 <= self.threshold).to(per_sample.dtype)
        return (keep * per_sample).sum() / keep.sum().clamp_min(1.0)

    def _mixed(self, logits: torch.Tensor, labels: torch.Tensor, uncertainty: torch.Tensor | None,
               real: torch.Tensor) -> torch.Tensor:
        """Per sample: the variant's smoothing, weight and keep-flag on generated clips, LS with
        ``real_epsilon`` (weight 1, always kept) on real ones; averaged over the kept clips."""
        device = logits.device
        real = _on(real.reshape(-1), device).to(torch.bool)
        generated = ~real
        u = torch.zeros(labels.shape, device=device)
        if self.needs_uncertainty:
            if uncertainty is None:
                raise ValueError(f"the {self.name!r} loss needs per-sample uncertainties")
            u = _on(uncertainty.reshape(-1), device).to(torch.float32)
        eps_gen = {"ce": torch.zeros_like(u), "ls": torch.full_like(u, self.epsilon), "ul": self.weight * u,
                   "uw": torch.zeros_like(u), "uf": torch.zeros_like(u)}[self.name]
        eps = torch.where(real, torch.full_like(u, self.real_epsilon), eps_gen)
        weight = torch.where(generated, 1.0 - self.weight * u, torch.ones_like(u)) if self.name == "uw" \
            else torch.ones_like(u)
        keep = torch.ones_like(u)
        if self.name == "uf":
            u64 = _on(uncertainty.reshape(-1), device).to(torch.float64)
            keep = torch.where(generated, (u64 <= self.threshold).to(u.dtype), keep)
        per_sample = soft_cross_entropy(logits, smoothed_targets(labels, logits.shape[1], eps))
        return (keep * weight * per_sample).sum() / keep.sum().clamp_min(1.0)

    def extra_repr(self) -> str:
        return (f"name={self.name}, weight={self.weight}, epsilon={self.epsilon}, uf_threshold={self.threshold}, "
                f"real_epsilon={self.real_epsilon}")


def build_loss(name: LossName, **options: float | None) -> ClassificationLoss:
    """The loss ``name`` with ``options`` (``weight``, ``epsilon``, ``uf_threshold``)."""
    return ClassificationLoss(name, **options)  # type: ignore[arg-type]
