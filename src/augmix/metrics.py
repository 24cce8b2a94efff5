"""Robustness and calibration metrics as small pure NumPy functions.

Definitions and test vectors: docs/reference-facts.md, "Metrics". The references are

* google-research/augmix at 9b9824c: ``cifar.py`` ``test_c`` (CIFAR mean corruption error) and
  ``imagenet.py`` ``compute_mce`` (AlexNet-normalised mCE);
* hendrycks/robustness at 8190fe3: ``ImageNet-P/test.py`` and ``ImageNet-P/cifar-p-eval.py``
  (flip probability, top-5 distance);
* hendrycks/outlier-exposure at e6ede98: ``utils/calibration_tools.py`` ``calib_err`` (RMS
  calibration error with adaptive bins);
* Hendrycks & Dietterich, ICLR 2019, arXiv:1903.12261 (CE, relative CE, mFR, mT5D).

Conventions: every error and calibration error is a fraction in [0, 1]. Normalised scores (CE, mCE,
relative mCE, mFR, mT5D) are ratios to AlexNet, so AlexNet itself scores 1.0; the paper prints them
x 100 (mCE 65.3 is 0.653 here). Percentages appear only in rendered tables (``augmix.report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Name lists
# --------------------------------------------------------------------------------------------

# The 15 benchmark corruptions in benchmark order (Hendrycks & Dietterich 2019).
# fmt: off
BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# Held-out corruptions: released with the -C sets but never part of the headline score.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

# The 10 perturbations of hendrycks/robustness ``ImageNet-P/cifar-p-eval.py`` (CIFAR-10-P/100-P,
# difficulty 1; docs/reference-facts.md, "Perturbations (-P)"): spatter stands in for snow.
CIFAR_P_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter",
    "brightness", "translate", "rotate", "tilt", "scale",
)
# ImageNet-P's 10 test perturbations (hendrycks/robustness make_imagenet_p.py, "Test Data"):
# snow is a test perturbation there and spatter a validation one. mFR and mT5D average over these.
IMAGENET_P_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow",
    "brightness", "translate", "rotate", "tilt", "scale",
)
# The perturbations each dataset kind ("cifar", "imagenet") averages over.
P_PERTURBATIONS_BY_KIND: dict[str, tuple[str, ...]] = {
    "cifar": CIFAR_P_PERTURBATIONS,
    "imagenet": IMAGENET_P_PERTURBATIONS,
}
P_PERTURBATIONS = CIFAR_P_PERTURBATIONS  # the default of the mean functions below

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
# fmt: on

# --------------------------------------------------------------------------------------------
# AlexNet baseline (ImageNet-C), keyed by corruption NAME, never by position: a fork of the AugMix
# code reordered its corruption list but not its position-aligned ALEXNET_ERR and silently broke
# its mCE. Per-severity top-1 errors, severities 1..5, from the
# hendrycks/robustness README at 76d9393 (the averages also appear as ALEXNET_ERR in
# google-research/augmix imagenet.py). Model: torchvision's pretrained AlexNet.
# --------------------------------------------------------------------------------------------
# fmt: off
ALEXNET_ERR: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise":    (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise":        (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise":     (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur":      (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur":        (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur":       (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur":         (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow":              (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost":             (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog":               (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness":        (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast":          (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate":          (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression":  (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise":     (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur":     (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter":           (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate":          (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}
# fmt: on
# 1 - 0.56522 (torchvision AlexNet_Weights.IMAGENET1K_V1, acc@1 56.522); used by relative CE only.
ALEXNET_CLEAN_ERROR: float = 0.43478

# AlexNet ImageNet-P flip probabilities and top-5 distances are in no code (hendrycks/robustness
# issue #49 points to a spreadsheet; status U in docs/reference-facts.md, "Published numbers").
# Left empty on purpose: mFR and mT5D on ImageNet-P raise until the values are recorded here with
# their provenance.
ALEXNET_FLIP_PROB: dict[str, float] = {}
ALEXNET_TOP5_DIST: dict[str, float] = {}

CALIB_MODES: tuple[str, ...] = ("reference", "corrected")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _as_1d(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _lookup(table: Mapping[str, object], name: str, what: str):
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"no {what} for {name!r}") from None


def _severity_errors(values, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"errors for {name!r} must be a scalar or a 1-D sequence, got {values!r}")
    return arr


# --------------------------------------------------------------------------------------------
# Clean metrics
# --------------------------------------------------------------------------------------------


def error(pred, labels) -> float:
    """Top-1 error as a fraction: mean of ``pred != labels``.

    ``pred`` holds predicted class indices (not logits), ``labels`` the true ones; both 1-D.
    """
    pred = _as_1d(pred, "pred")
    labels = _as_1d(labels, "labels")
    if pred.shape != labels.shape:
        raise ValueError(f"pred has shape {pred.shape} but labels has {labels.shape}")
    if pred.size == 0:
        raise ValueError("error of an empty prediction set is undefined")
    return float(np.mean(pred != labels))


def _calibration_bins(n: int, bin_size: int) -> list[tuple[int, int]]:
    # floor(N / beta) bins of beta sorted examples; the last one absorbs the remainder.
    n_bins = n // bin_size
    bins = [(b * bin_size, (b + 1) * bin_size) for b in range(n_bins)]
    bins[-1] = (bins[-1][0], n)
    return bins


def rms_calibration_error(
    confidence, correct, *, bin_size: int = 100, mode: str = "reference"
) -> float:
    """RMS calibration error with adaptive bins of ``bin_size`` examples sorted by confidence.

    Source: ``calib_err(confidence, correct, p='2', beta=100)`` in hendrycks/outlier-exposure
    ``utils/calibration_tools.py``. ``confidence`` is the max softmax probability,
    ``correct`` is 1 where the top-1 prediction is right. Returns a fraction (the AugMix scripts
    print 100 x this).

    ``mode="reference"`` reproduces the reference number; ``mode="corrected"`` sums every bin.
    Fewer than ``bin_size`` examples form no bin and raise ``ValueError``, as the reference fails.
    """
    if mode not in CALIB_MODES:
        raise ValueError(f"unknown calibration mode {mode!r}; expected one of {CALIB_MODES}")
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    confidence = _as_1d(confidence, "confidence").astype(np.float64)
    correct = _as_1d(correct, "correct").astype(np.float64)
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence has shape {confidence.shape} but correct has {correct.shape}")
    n = confidence.size
    if n < bin_size:
        raise ValueError(f"need at least bin_size={bin_size} examples, got {n}")
    # NumPy's default (non-stable) sort, as the reference; ties may land in either bin.
    order = np.argsort(confidence)
    confidence, correct = confidence[order], correct[order]
    bins = _calibration_bins(n, bin_size)
    # Quirk (outlier-exposure calib_err): its loop runs over range(len(bins) - 1), so the last,
    # highest-confidence bin (with the remainder) is never summed, while weights still divide by N.
    if mode == "reference":
        bins = bins[:-1]
    total = 0.0
    for start, stop in bins:  # at most N / bin_size iterations over slices, not per example
        gap = confidence[start:stop].mean() - correct[start:stop].mean()
        total += (stop - start) / n * gap * gap
    return float(np.sqrt(total))


def brier_score(probs, labels) -> float:
    """Multi-class Brier score (1/N) sum_n sum_k (p_nk - 1[y_n = k])^2, in [0, 2].

    No reference calibration file implements it; we fix this (undivided by K) form.
    ``probs`` is (N, K) softmax output, ``labels`` (N,) integer classes.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = _as_1d(labels, "labels")
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probs must be (N, K) with N = len(labels); got {probs.shape} and {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {probs.shape[1]}), got range [{labels.min()}, {labels.max()}]"
        )
    sq = np.square(probs).sum(axis=1)
    # sum_k (p_k - onehot_k)^2 = sum_k p_k^2 - 2 p_y + 1
    per_example = sq - 2.0 * probs[np.arange(labels.size), labels] + 1.0
    return float(per_example.mean())


# --------------------------------------------------------------------------------------------
# Corruption robustness
# --------------------------------------------------------------------------------------------


def mean_corruption_error(
    errors_by_corruption: Mapping[str, object],
    *,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> float:
    """CIFAR-10-C / CIFAR-100-C "mean corruption error": plain mean, no AlexNet normalisation.

    ``errors_by_corruption[c]`` is either the error of corruption c (already averaged over
    severities) or its per-severity errors; each corruption is first averaged over its severities,
    then the ``corruptions`` (default: the 15 benchmark ones) are averaged with equal weight.
    Source: google-research/augmix ``cifar.py`` ``test_c`` (100 - 100 x mean accuracy);
    hendrycks/robustness issue #28 ("For CIFAR-10/100 we don't normalize").
    """
    if len(corruptions) == 0:
        raise ValueError("corruptions is empty")
    per_corruption = [
        _severity_errors(_lookup(errors_by_corruption, c, "corruption errors"), c).mean()
        for c in corruptions
    ]
    return float(np.mean(per_corruption))


def corruption_error(
    errors_by_severity, corruption: str, *, baseline: Mapping[str, Sequence[float]] = ALEXNET_ERR
) -> float:
    """ImageNet-C corruption error CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c} (ratio).

    ``errors_by_severity`` holds the model's errors at severities 1..5 of ``corruption``; the
    baseline is looked up by name. Source: Hendrycks & Dietterich 2019; AugMix ``imagenet.py``
    ``compute_mce`` (equivalent, with 5-severity averages).
    """
    ours = _severity_errors(errors_by_severity, corruption)
    base = np.asarray(_lookup(baseline, corruption, "AlexNet errors"), dtype=np.float64)
    if ours.shape != base.shape:
        raise ValueError(f"{corruption!r}: got {ours.size} severities, baseline has {base.size}")
    return float(ours.sum() / base.sum())


def mce(
    errors: Mapping[str, Sequence[float]],
    *,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    baseline: Mapping[str, Sequence[float]] = ALEXNET_ERR,
) -> float:
    """Mean corruption error (ImageNet-C): mean of ``corruption_error`` over ``corruptions``.

    ``errors`` maps corruption name -> per-severity errors (1..5). Returned as a ratio
    (paper's mCE / 100). Test vectors: docs/reference-facts.md, "Metrics".
    """
    if len(corruptions) == 0:
        raise ValueError("corruptions is empty")
    return float(
        np.mean(
            [
                corruption_error(_lookup(errors, c, "corruption errors"), c, baseline=baseline)
                for c in corruptions
            ]
        )
    )


def relative_corruption_error(
    errors_by_severity,
    clean_error: float,
    corruption: str,
    *,
    baseline: Mapping[str, Sequence[float]] = ALEXNET_ERR,
    baseline_clean_error: float = ALEXNET_CLEAN_ERROR,
) -> float:
    """Relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean).

    The clean error is subtracted once per severity, inside the sum (Hendrycks & Dietterich 2019;
    in no reference script).
    """
    ours = _severity_errors(errors_by_severity, corruption)
    base = np.asarray(_lookup(baseline, corruption, "AlexNet errors"), dtype=np.float64)
    if ours.shape != base.shape:
        raise ValueError(f"{corruption!r}: got {ours.size} severities, baseline has {base.size}")
    return float((ours - clean_error).sum() / (base - baseline_clean_error).sum())


def relative_mce(
    errors: Mapping[str, Sequence[float]],
    clean_error: float,
    *,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
    baseline: Mapping[str, Sequence[float]] = ALEXNET_ERR,
    baseline_clean_error: float = ALEXNET_CLEAN_ERROR,
) -> float:
    """Relative mCE: mean of ``relative_corruption_error`` over ``corruptions`` (ratio)."""
    if len(corruptions) == 0:
        raise ValueError("corruptions is empty")
    return float(
        np.mean(
            [
                relative_corruption_error(
                    _lookup(errors, c, "corruption errors"),
                    clean_error,
                    c,
                    baseline=baseline,
                    baseline_clean_error=baseline_clean_error,
                )
                for c in corruptions
            ]
        )
    )


# --------------------------------------------------------------------------------------------
# Perturbation stability (-P)
# --------------------------------------------------------------------------------------------


def is_noise_perturbation(name: str) -> bool:
    """Noise perturbations compare every frame with frame 0 (reference: ``'noise' in name``)."""
    return "noise" in name


def _frame_pairs(x: np.ndarray, *, noise: bool, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(reference frames, current frames) along axis 1 for every comparison of a flip probability.

    Noise: frame 0 against every later frame, always at step 1 (difficulties 2 and 3 of a noise
    perturbation are separate datasets). Other perturbations at difficulty d = ``step``: frame t
    against frame t - d, i.e. consecutive frames of the d interleaved sub-sequences.
    """
    if x.ndim < 2:
        raise ValueError(f"expected (n_sequences, T, ...), got shape {x.shape}")
    if noise:
        step = 1
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if x.shape[1] <= step:
        raise ValueError(f"need more than {step} frames per sequence, got {x.shape[1]}")
    if noise:
        return np.broadcast_to(x[:, :1], x[:, 1:].shape), x[:, 1:]
    return x[:, :-step], x[:, step:]


def flip_probability(preds, *, noise: bool, step: int = 1) -> float:
    """Flip probability FP: mean over sequences of the fraction of comparisons whose top-1 differs.

    ``preds`` is (n_sequences, T) top-1 predictions. ``noise=True`` compares each frame with
    frame 0; otherwise consecutive frames (``step`` = difficulty d, 1 for CIFAR-P and AugMix).
    Source: ``flip_prob`` in hendrycks/robustness ``ImageNet-P/test.py``.
    Every sequence has the same number of comparisons, so the mean of per-sequence means is the
    mean over all comparisons.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        raise ValueError(f"preds must be (n_sequences, T), got shape {preds.shape}")
    ref, cur = _frame_pairs(preds, noise=noise, step=step)
    return float(np.mean(ref != cur))


def rank_classes(logits) -> np.ndarray:
    """Rank of every class per frame: 1 = highest logit, ties broken by lower class index.

    Same as ``scipy.stats.rankdata(-logits, method='ordinal')`` used by hendrycks/robustness
    ``ImageNet-P/test.py``; vectorised over leading axes.
    """
    logits = np.asarray(logits)
    order = np.argsort(-logits, axis=-1, kind="stable")  # class at each rank
    ranks = np.empty(order.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, np.arange(1, logits.shape[-1] + 1), axis=-1)
    return ranks


def top5_distance_from_sigma(sigma) -> np.ndarray:
    """T5D = sum_{k=1..5} |k - min(sigma_k, 6)| for sigma (..., >=5) of 1-based current ranks.

    sigma_k is the current rank of the class ranked k in the reference frame. Equals the paper's
    double sum and the reference's cumulative-vector form.
    """
    sigma = np.asarray(sigma)
    if sigma.shape[-1] < 5:
        raise ValueError(f"sigma needs at least 5 entries on its last axis, got {sigma.shape}")
    k = np.arange(1, 6)
    return np.abs(k - np.minimum(sigma[..., :5], 6)).sum(axis=-1)


def top5_distance(logits, *, noise: bool, step: int = 1) -> float:
    """Top-5 distance T5D averaged over comparisons and sequences like ``flip_probability``.

    ``logits`` is (n_sequences, T, K) with K >= 5. Source: ``ranking_dist(mode='top5')`` in
    hendrycks/robustness ``ImageNet-P/test.py``.
    """
    logits = np.asarray(logits)
    if logits.ndim != 3 or logits.shape[-1] < 5:
        raise ValueError(f"logits must be (n_sequences, T, K>=5), got shape {logits.shape}")
    ranks = rank_classes(logits)
    ref_ranks, cur_ranks = _frame_pairs(ranks, noise=noise, step=step)
    # The five classes ranked 1..5 in the reference frame, in rank order.
    top5_ref = np.argsort(ref_ranks, axis=-1, kind="stable")[..., :5]
    sigma = np.take_along_axis(cur_ranks, top5_ref, axis=-1)
    return float(top5_distance_from_sigma(sigma).mean())


def _mean_over_perturbations(
    values: Mapping[str, float],
    perturbations: Sequence[str],
    baseline: Mapping[str, float] | None,
    what: str,
) -> float:
    if len(perturbations) == 0:
        raise ValueError("perturbations is empty")
    ours = np.array([float(_lookup(values, p, what)) for p in perturbations])
    if baseline is None:
        return float(ours.mean())
    base = np.array(
        [
            float(
                _lookup(
                    baseline,
                    p,
                    f"AlexNet {what} (not recorded: in no code, "
                    "hendrycks/robustness issue #49)",
                )
            )
            for p in perturbations
        ]
    )
    return float(np.mean(ours / base))


def mean_flip_rate(
    flip_probs: Mapping[str, float],
    *,
    perturbations: Sequence[str] = P_PERTURBATIONS,
    baseline: Mapping[str, float] | None = None,
) -> float:
    """Mean flip rate over ``perturbations``.

    ``baseline=None``: the unnormalised mean flip probability that CIFAR-10-P / CIFAR-100-P report
    (``cifar-p-eval.py``). With a baseline (AlexNet FP per perturbation, ImageNet-P): mean of
    FP_p / FP^AlexNet_p, a ratio.
    """
    return _mean_over_perturbations(flip_probs, perturbations, baseline, "flip probability")


def mean_top5_distance(
    top5_dists: Mapping[str, float],
    *,
    perturbations: Sequence[str] = P_PERTURBATIONS,
    baseline: Mapping[str, float] | None = None,
) -> float:
    """Mean top-5 distance; AlexNet-normalised per perturbation when ``baseline`` is given."""
    return _mean_over_perturbations(top5_dists, perturbations, baseline, "top-5 distance")


# --------------------------------------------------------------------------------------------
# One model's summary (metrics.json, and every number of the report)
# --------------------------------------------------------------------------------------------

# The columns that name one evaluated model in eval.csv, eval_p.csv and metrics.json. `seed` is an
# int (external, released models: 0); `model` is a display label ("ours" for trained cells).
IDENTITY_COLUMNS: tuple[str, ...] = ("dataset", "arch", "method", "seed", "model")

# Dataset kinds: "imagenet" scores are AlexNet-normalised, "cifar" ones plain means.
DATASET_KINDS: tuple[str, ...] = ("cifar", "imagenet")

AGGREGATION = (
    "corruption_error: mean over the benchmark corruptions of the mean error over severities; "
    "rms_calib_c, brier_c: mean over their (corruption, severity) cells; complete: all 15 benchmark "
    "corruptions at severities 1-5; mce (ImageNet): only when every benchmark corruption present has "
    "all five severities"
)


def dataset_kind(dataset: str) -> str:
    """'imagenet' (AlexNet-normalised scores) for ImageNet-like datasets, else 'cifar' (plain)."""
    return "imagenet" if str(dataset).startswith("imagenet") else "cifar"


def _identity(frame) -> dict[str, object]:
    out: dict[str, object] = {}
    for col in IDENTITY_COLUMNS:
        if col in frame.columns and len(frame):
            value = frame[col].iloc[0]
            out[col] = int(value) if col == "seed" else str(value)
    return out


def _severity_table(c_rows) -> dict[str, dict[int, float]]:
    """corruption -> {severity: error}, corruptions in file order, severities ascending."""
    table: dict[str, dict[int, float]] = {}
    for name, sev, err in zip(c_rows.corruption, c_rows.severity, c_rows.error):
        table.setdefault(str(name), {})[int(sev)] = float(err)
    return {name: dict(sorted(by_sev.items())) for name, by_sev in table.items()}


def c_complete(per_severity: Mapping[str, Mapping[int, float]]) -> bool:
    """The one completeness rule of a -C headline: all 15 benchmark corruptions, severities 1..5."""
    return all(
        tuple(per_severity.get(name, {})) == SEVERITIES for name in BENCHMARK_CORRUPTIONS
    )


def perturbation_summary(p_frame, kind: str) -> dict[str, object]:
    """-P: per-perturbation FP / T5D and their means over the kind's ten test perturbations."""
    fp = {str(p): float(v) for p, v in zip(p_frame.perturbation, p_frame.flip_prob)}
    t5 = {str(p): float(v) for p, v in zip(p_frame.perturbation, p_frame.top5_dist)}
    averaged = P_PERTURBATIONS_BY_KIND[kind]
    # A demo set without any of the ten falls back to what it has (flagged incomplete).
    names = [p for p in averaged if p in fp] or list(fp)
    out: dict[str, object] = {
        "flip_prob": fp,
        "top5_dist": {p: v for p, v in t5.items() if not np.isnan(v)},
        "p_complete": len(names) == len(averaged) and set(names) == set(averaged),
        "mean_flip_prob": mean_flip_rate(fp, perturbations=names),
    }
    t5_names = [p for p in names if not np.isnan(t5[p])]
    if t5_names:
        out["mean_t5d"] = mean_top5_distance(t5, perturbations=t5_names)
    if kind == "cifar":
        # CIFAR-10-P / 100-P report the unnormalised mean flip probability (cifar-p-eval.py).
        out["mfr"] = out["mean_flip_prob"]
        return out
    # ImageNet-P: AlexNet-normalised, only once the AlexNet values are recorded (status U now).
    if all(p in ALEXNET_FLIP_PROB for p in names):
        out["mfr"] = mean_flip_rate(fp, perturbations=names, baseline=ALEXNET_FLIP_PROB)
    if t5_names and all(p in ALEXNET_TOP5_DIST for p in t5_names):
        out["mt5d"] = mean_top5_distance(t5, perturbations=t5_names, baseline=ALEXNET_TOP5_DIST)
    return out


CBAR_CORRUPTIONS_N = 10  # Mintun et al. 2021: CIFAR-10-C-bar has ten corruptions at five severities


def shift_summary(eval_frame) -> dict[str, object]:
    """-C-bar (benchmark "cbar"): the plain mean error over its corruptions and severities, as the
    authors' test_c_bar.py averages, with per-corruption means and a complete flag (all ten at 1..5);
    natural shifts (benchmark "natural"): each set's error, e.g. cifar101_error."""
    out: dict[str, object] = {}
    bar = eval_frame[eval_frame.benchmark == "cbar"]
    if len(bar):
        out["cbar_error"] = float(bar.error.mean())
        out["cbar_per_corruption"] = {n: float(g.error.mean()) for n, g in bar.groupby("corruption", sort=False)}
        out["cbar_complete"] = bool(bar.corruption.nunique() == CBAR_CORRUPTIONS_N
                                    and all(sorted(g.severity) == list(SEVERITIES)
                                            for _, g in bar.groupby("corruption")))
    for _, row in eval_frame[eval_frame.benchmark == "natural"].iterrows():
        out[f"{row.corruption}_error"] = float(row.error)
    return out


def summarize(
    eval_frame,
    p_frame=None,
    *,
    kind: str,
    bin_size: int,
    calib_mode: str,
    predictions: Mapping[str, np.ndarray] | None = None,
) -> dict[str, object]:
    """Every summary number of one evaluated model, from its tidy rows; pure (no files).

    ``eval_frame``: eval.csv rows (benchmark "clean" | "c", corruption, severity, error, rms_calib,
    brier, and the identity columns when present, which are copied in). ``p_frame``: eval_p.csv rows
    (perturbation, flip_prob, top5_dist) or None. ``kind``: "cifar" (plain means) or "imagenet"
    (AlexNet-normalised CE / mCE / relative mCE). ``bin_size`` / ``calib_mode``: the RMS calibration
    settings the rms_calib columns were computed with (recorded), also used on ``predictions``
    ({"confidence", "correct"} of the clean set) to give the clean RMS calibration in both modes.

    Headline numbers (corruption_error, rms_calib_c, brier_c, mce, relative_mce) use the 15
    benchmark corruptions only; the held-out extras (speckle noise, gaussian blur, spatter, saturate:
    validation corruptions in Hendrycks & Dietterich 2019) are reported per corruption only.
    One completeness rule for all of them (``c_complete``): all 15 at severities 1..5. The mCE needs
    every benchmark corruption present at all five severities (AlexNet's errors are per severity),
    and is absent otherwise. This function is the only place these rules live: evaluate's
    metrics.json and the report both call it.
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {DATASET_KINDS}")
    clean = eval_frame[eval_frame.benchmark == "clean"]
    if len(clean) != 1:
        raise ValueError(f"expected exactly one clean row, got {len(clean)}")
    clean = clean.iloc[0]
    out: dict[str, object] = {
        **_identity(eval_frame),
        "clean_error": float(clean.error),
        "rms_calib_clean": float(clean.rms_calib),
        "brier_clean": float(clean.brier),
        "calib_mode": calib_mode,
        "calib_bin_size": int(bin_size),
        "aggregation": AGGREGATION,
    }
    c_rows = eval_frame[eval_frame.benchmark == "c"]
    per_severity = _severity_table(c_rows)
    if per_severity:
        out["per_severity"] = per_severity
        out["per_corruption"] = {n: float(np.mean(list(s.values()))) for n, s in per_severity.items()}
    head = [n for n in BENCHMARK_CORRUPTIONS if n in per_severity]
    if head:
        complete = c_complete(per_severity)
        cells = c_rows[c_rows.corruption.isin(head)]
        out["corruption_error"] = mean_corruption_error(
            {n: list(per_severity[n].values()) for n in head}, corruptions=head
        )
        out["rms_calib_c"] = float(cells.rms_calib.mean())
        out["brier_c"] = float(cells.brier.mean())
        out["corruption_error_complete"] = complete
    if kind == "imagenet" and per_severity:
        full = {
            n: list(s.values())
            for n, s in per_severity.items()
            if tuple(s) == SEVERITIES and n in ALEXNET_ERR
        }
        out["ce"] = {n: corruption_error(v, n) for n, v in full.items()}
        if head and all(n in full for n in head):
            out["mce"] = mce(full, corruptions=head)  # ratio; the paper prints x100
            out["relative_mce"] = relative_mce(full, float(clean.error), corruptions=head)
            out["mce_complete"] = out["corruption_error_complete"]
    out.update(shift_summary(eval_frame))
    if p_frame is not None and len(p_frame):
        out.update(perturbation_summary(p_frame, kind))
    if predictions is not None and len(predictions.get("confidence", ())) >= bin_size:
        for mode in CALIB_MODES:
            out[f"rms_calib_clean_{mode}"] = rms_calibration_error(
                predictions["confidence"], predictions["correct"], bin_size=bin_size, mode=mode
            )
    return out
