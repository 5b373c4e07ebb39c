"""The collapse verdict of a snapshot: healthy, a cone, dimensional or complete collapse, judged from the
engine's numbers (effective rank, normalised std, mean cosine, AUC, kNN), in plain words with what to try.

The numbers themselves are the engine's (diagnostics/measure/spectrum.py); their one-function-each reference, and
`diagnose` (numbers of an array + this verdict), are in diagnostics/reference/reference_collapse.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..measure._primitives import CONCENTRATION_DIVISOR
from .advice import SUGGEST_DIVERGED

# Per snapshot (judge): healthy, cone (a tight cone whose points stay separable: a shared offset), the end
# states, diverged (NaN/inf rows) and unmeasurable (too few finite rows to judge: never "healthy"); over a run,
# alarms.run_verdicts adds the slide: degrading, narrowing, contracting, collapsing.
VERDICTS = ("healthy", "cone", "dimensional_collapse", "complete_collapse", "diverged", "unmeasurable")


# -- verdict -------------------------------------------------------------------------------------------


@dataclass
class CollapseThresholds:
    """When `diagnose` calls an embedding collapsed. Healthy points spread over the sphere have
    normalised std ≈ 1/√d (std_ratio ≈ 1) and mean cosine ≈ 0."""

    min_points: int = 3  # fewer finite rows than this: not judged (verdict stays healthy)
    # normalised std below this fraction of 1/√d: a tight cone. Points within a cone of half-angle θ
    # (radians, small) give a ratio of about θ, so 0.1 means every direction within ~6° of one. Whether that
    # is complete collapse depends on separability (below).
    complete_std_ratio: float = 0.1
    # below this nothing can be separated whatever the other numbers say: every point within ~1°, cosine
    # gaps ≤ 2e-4, logit gaps ≤ 2e-3 at τ = 0.1 (the synthetic collapse in tests/synthetic_runs.py: 0.001)
    point_std_ratio: float = 0.02
    # positive-vs-negative cosine AUC at or above this: the samples are still told apart, so a tight cone is
    # not complete collapse. Evidence: the shipped complete-collapse sample keeps AUC 0.91–0.94 (kNN 0.69–0.73)
    # at std 0.07×; every scenario run keeps AUC ≥ 0.81 until its spread is gone (bench/scenarios.py)
    separable_auc: float = 0.8
    crowded_mean_cos: float = 0.5  # above this a healthy verdict warns that the points share one cone
    dimensional_rank_fraction: float = 0.15  # centred RankMe / min(N−1, d) below this: dimensional collapse
    # top ⌈d/16⌉ directions holding at least this share of the variance (top_variance_share) while the spread
    # holds (std ratio ≥ concentrated_min_std_ratio): dimensional collapse, whatever the entropy rank says.
    # Evidence (records of sample_runs/ and bench/scenarios.py): healthy runs ≤ 0.85 (simsiam-healthy, 32-d)
    # past their first snapshot, one transient 0.91 (recon-only-lambda0 at 120, λ = 0: its head gets no
    # signal); dimensional-collapse-bn-no-negatives 0.93 at its first affected snapshot, then 0.97–1.00;
    # high-temperature-tau1 0.91–0.99 (centred rank 15 %); the outside run of issue #22: 30 % → 92 %.
    concentrated_share: float = 0.9
    # a spread below half of healthy is a slide towards one point (complete collapse's path: its spectrum
    # concentrates too), not a fold onto a few directions; healthy and folded runs keep ≥ 0.7× (recon-only's
    # first snapshot 0.48× is untrained and holds 0.89, below concentrated_share)
    concentrated_min_std_ratio: float = 0.5
    dead_dim_tol: float = 1e-3  # see dead_dimensions


@dataclass
class CollapseReport:
    verdict: str  # one of VERDICTS
    diverged: bool  # some rows are NaN/inf
    nonfinite_rows: int
    numbers: dict = field(default_factory=dict)
    explanation: str = ""
    suggestions: list[str] = field(default_factory=list)
    judged: bool = True  # False when there were too few finite rows to judge


SUGGEST_COMPLETE = [
    "Check the negatives: with InfoNCE, one point for everything means the loss no longer sees distinct "
    "samples (duplicate batches, a pairing bug, or a batch of one); with BYOL/SimSiam, the stop-gradient and "
    "the predictor are what keep the constant solution away.",
    "Lower the learning rate; a too-large step can throw the encoder into a constant solution.",
    "Raise the contrastive weight λ if a reconstruction or KL term is drowning the contrastive signal.",
    "Use a higher temperature early on, or warm the temperature up, so gradients reach all negatives.",
]
SUGGEST_DIMENSIONAL = [
    "Use more or harder negatives (a larger batch, a memory queue as in MoCo).",
    "Raise the temperature: a small τ concentrates the loss on a few hard negatives.",
    "Use a wider projection head and read the representation before it (Jing et al. 2022).",
    "Weaken the strongest augmentations; they can erase the information that other directions would carry.",
    "Lower the learning rate or the weight decay.",
]
SUGGEST_CONE = [
    "A shared offset is harmless to a cosine loss only when τ is small enough to resolve the cone; centre the "
    "embeddings (a BatchNorm on the output) or raise the weight of the negatives if uniformity matters.",
]


def separability_text(numbers: dict) -> str:
    """ " Samples are still told apart: AUC …, kNN …." from whichever of roc_auc / knn_accuracy is known."""
    parts = []
    auc, knn = numbers.get("roc_auc"), numbers.get("knn_accuracy")
    if auc is not None and math.isfinite(auc):
        parts.append(f"positive-vs-negative AUC {auc:.2f}")
    if knn is not None and math.isfinite(knn):
        parts.append(f"kNN accuracy {knn:.0%}")
    return f" Separability: {', '.join(parts)}." if parts else ""


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def concentrated(numbers: dict, thresholds: CollapseThresholds | None = None) -> bool:
    """The spread holds but most of its variance lies in a few directions (CollapseThresholds.concentrated_share)."""
    th = thresholds or CollapseThresholds()
    share, ratio = numbers.get("top_variance_share"), numbers.get("std_ratio")
    return (
        _finite(share) and _finite(ratio) and share >= th.concentrated_share and ratio >= th.concentrated_min_std_ratio
    )


def judge(numbers: dict, thresholds: CollapseThresholds | None = None) -> CollapseReport:
    """The verdict, its plain-words explanation and suggestions, from `collapse_numbers` alone (cheap)."""
    th = thresholds or CollapseThresholds()
    n_all, n, d = numbers["n"], numbers["finite_rows"], numbers["dim"]
    nonfinite = int(n_all - n)
    head = (
        (f"{nonfinite} of {n_all} rows contain NaN or inf: training diverged. The numbers use the {n} finite rows. ")
        if nonfinite
        else ""
    )
    suggestions = list(SUGGEST_DIVERGED) if nonfinite else []
    if "std_ratio" not in numbers:  # never "healthy": nothing was measured (issue #24 item 10)
        return CollapseReport(
            "diverged" if nonfinite else "unmeasurable",
            bool(nonfinite),
            nonfinite,
            numbers,
            head + f"Only {n} finite row(s): too few to judge collapse.",
            suggestions,
            judged=False,
        )
    rank_centred = numbers["effective_rank_centred"]
    capacity = min(n - 1, d)
    ratio, mean_cos, frac = numbers["std_ratio"], numbers["mean_cos"], numbers["rank_fraction"]
    auc = numbers.get("roc_auc")
    separable = auc is not None and math.isfinite(auc) and auc >= th.separable_auc
    offset = auc is None and frac >= th.dimensional_rank_fraction  # no pairs to test: judge the residual
    if ratio < th.complete_std_ratio and (ratio < th.point_std_ratio or not (separable or offset)):
        verdict = "complete_collapse"
        text = (
            f"Complete collapse: every point sits at nearly the same spot on the sphere. The normalised std "
            f"is {ratio:.2f}× the healthy 1/√d (threshold {th.complete_std_ratio}) and the mean cosine "
            f"between points is {mean_cos:.2f}."
        )
        text += (
            f" Positives still stand out from negatives (AUC {auc:.2f} ≥ {th.separable_auc}), but the "
            f"spread is below {th.point_std_ratio}× 1/√d: too little to use."
            if separable
            else f" Positives barely stand out from negatives (AUC {auc:.2f} < {th.separable_auc}): samples "
            "can hardly be told apart."
            if auc is not None and math.isfinite(auc)
            else " The encoder gives (almost) the same vector for every input."
        )
        suggestions += SUGGEST_COMPLETE
    elif ratio < th.complete_std_ratio:
        verdict = "cone"
        text = (
            f"A tight cone, not (yet) collapse: the normalised std is {ratio:.2f}× the healthy 1/√d and the "
            f"mean cosine is {mean_cos:.2f}, "
        )
        text += (
            f"but positives still stand out from negatives (AUC {auc:.2f} ≥ {th.separable_auc})."
            if separable
            else f"but around their shared direction the points still vary along {rank_centred:.1f} of "
            f"{capacity} directions ({frac:.0%}): a shared offset."
        )
        suggestions += SUGGEST_CONE
    elif frac < th.dimensional_rank_fraction or concentrated(numbers, th):
        verdict = "dimensional_collapse"
        share, k = numbers.get("top_variance_share"), max(1, -(-d // CONCENTRATION_DIVISOR))
        text = (
            f"Dimensional collapse: the points vary along only {rank_centred:.1f} effective directions of "
            f"the {capacity} available ({frac:.0%}; threshold {th.dimensional_rank_fraction:.0%})"
            + (f", and {share:.0%} of their variance lies in {k} of the {d} directions" if _finite(share) else "")
            + ". The other directions carry almost no variance, so the embedding wastes most of its width "
            "(Jing et al. 2022)."
        )
        rf, sf = numbers.get("effective_rank_features"), numbers.get("top_variance_share_features")
        if _finite(sf) and sf < th.concentrated_share:
            text += (
                f" The backbone's features before the head hold up ({sf:.0%} of their variance in their top "
                "directions): the collapse is in the projection head."
            )
        elif _finite(rf) and rf > 2 * numbers["effective_rank"]:
            text += (
                f" The features before the head keep {rf:.1f} effective dimensions: the collapse happens "
                "in the projection head."
            )
        suggestions += SUGGEST_DIMENSIONAL
    else:
        verdict = "healthy"
        text = (
            f"No sign of collapse: the points vary along {rank_centred:.1f} effective directions of "
            f"{capacity} ({frac:.0%}), the normalised std is {ratio:.2f}× the healthy 1/√d and the mean "
            f"cosine between points is {mean_cos:.2f}."
        )
        if mean_cos > th.crowded_mean_cos:
            text += (
                " The points do crowd into one cone, though (mean cosine above "
                f"{th.crowded_mean_cos}): uniformity is poor and the loss must use a small temperature."
            )
    text += separability_text(numbers)
    if nonfinite:  # NaN/inf rows: diverged whatever the finite rows look like (a critical finding, never healthy)
        verdict, text = "diverged", text.replace("No sign of collapse", "Among the finite rows no sign of collapse")
    return CollapseReport(verdict, bool(nonfinite), nonfinite, numbers, head + text, suggestions)
