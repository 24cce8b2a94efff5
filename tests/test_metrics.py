"""Metrics against hand-computed cases and the test vectors of docs/reference-facts.md, "Metrics"."""

import numpy as np
import pandas as pd
import pytest

from augmix import metrics

# ---------------------------------------------------------------------------- names and tables


def test_benchmark_corruptions_order_and_extras():
    assert metrics.BENCHMARK_CORRUPTIONS == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    )
    assert set(metrics.EXTRA_CORRUPTIONS).isdisjoint(metrics.BENCHMARK_CORRUPTIONS)
    assert len(metrics.P_PERTURBATIONS) == 10


# AlexNet 5-severity averages as the hendrycks/robustness README lists them beside the per-severity
# values: an independent transcription that guards the per-severity table.
ALEXNET_AVERAGES = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
    "speckle_noise": 0.845388,
    "gaussian_blur": 0.787108,
    "spatter": 0.717512,
    "saturate": 0.658248,
}


def test_alexnet_table_keyed_by_name_matches_averages():
    assert set(metrics.ALEXNET_ERR) == set(metrics.ALL_CORRUPTIONS)
    for name, avg in ALEXNET_AVERAGES.items():
        assert np.mean(metrics.ALEXNET_ERR[name]) == pytest.approx(avg, abs=1e-9), name
    head = [ALEXNET_AVERAGES[c] for c in metrics.BENCHMARK_CORRUPTIONS]
    assert np.mean(head) == pytest.approx(0.788993, abs=1e-6)
    assert metrics.ALEXNET_CLEAN_ERROR == pytest.approx(1 - 0.56522)


# ---------------------------------------------------------------------------- error, Brier


def test_error_fraction_and_validation():
    assert metrics.error([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    assert metrics.error(np.array([4]), np.array([4])) == 0.0
    with pytest.raises(ValueError, match="shape"):
        metrics.error([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        metrics.error([], [])


def test_brier_hand_computed():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.25, 0.25], [0.0, 0.0, 1.0]])
    labels = np.array([0, 1, 0])
    # rows: 0; 0.25 + 0.5625 + 0.0625 = 0.875; 1 + 0 + 1 = 2
    assert metrics.brier_score(probs, labels) == pytest.approx((0 + 0.875 + 2) / 3)
    with pytest.raises(ValueError, match="labels"):
        metrics.brier_score(probs, np.array([0, 3, 0]))


# ---------------------------------------------------------------------------- calibration


def _spec_calibration_vector():
    n = np.arange(250)
    return 0.4 + 0.6 * n / 249, (n % 4 != 0).astype(int)


def test_rms_calibration_reference_skips_last_bin():
    conf, correct = _spec_calibration_vector()
    # Bins [0, 100) and [100, 250); the reference sums only the first.
    assert metrics.rms_calibration_error(conf, correct) == pytest.approx(0.145922, abs=1e-6)
    expected = np.sqrt(100 / 250 * (conf[:100].mean() - correct[:100].mean()) ** 2)
    assert metrics.rms_calibration_error(conf, correct, mode="reference") == pytest.approx(expected)


def test_rms_calibration_corrected_includes_last_bin():
    conf, correct = _spec_calibration_vector()
    got = metrics.rms_calibration_error(conf, correct, mode="corrected")
    assert got == pytest.approx(0.156724, abs=1e-6)
    gaps = [(conf[a:b].mean() - correct[a:b].mean(), b - a) for a, b in [(0, 100), (100, 250)]]
    assert got == pytest.approx(np.sqrt(sum(w / 250 * g * g for g, w in gaps)))


def test_rms_calibration_order_independent_and_inputs():
    conf, correct = _spec_calibration_vector()
    perm = np.random.default_rng(0).permutation(250)
    assert metrics.rms_calibration_error(conf[perm], correct[perm]) == pytest.approx(
        0.145922, abs=1e-6
    )
    # Perfect calibration per bin gives 0 in both modes.
    conf2 = np.repeat([0.5, 1.0], 100)
    correct2 = np.concatenate([np.tile([0, 1], 50), np.ones(100)])
    for mode in metrics.CALIB_MODES:
        assert metrics.rms_calibration_error(conf2, correct2, mode=mode) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="bin_size"):
        metrics.rms_calibration_error(conf[:50], correct[:50])
    with pytest.raises(ValueError, match="mode"):
        metrics.rms_calibration_error(conf, correct, mode="bogus")


# ---------------------------------------------------------------------------- corruption errors


def test_mean_corruption_error_plain_mean_over_benchmark():
    errs = {c: [0.1 * (i % 3)] * 5 for i, c in enumerate(metrics.BENCHMARK_CORRUPTIONS)}
    errs["speckle_noise"] = [0.99] * 5  # extra corruption: never part of the headline score
    expected = np.mean([0.1 * (i % 3) for i in range(15)])
    assert metrics.mean_corruption_error(errs) == pytest.approx(expected)
    # Per-severity lists are averaged first; scalars are taken as already averaged.
    assert metrics.mean_corruption_error(
        {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "snow": 0.1}, corruptions=["fog", "snow"]
    ) == pytest.approx(0.2)
    with pytest.raises(KeyError, match="frost"):
        metrics.mean_corruption_error(
            {c: 0.1 for c in metrics.BENCHMARK_CORRUPTIONS if c != "frost"}
        )


def test_corruption_error_alexnet_normalisation_by_name():
    alex = metrics.ALEXNET_ERR["brightness"]
    assert metrics.corruption_error(alex, "brightness") == pytest.approx(1.0)
    ours = [0.2, 0.2, 0.3, 0.3, 0.4]
    assert metrics.corruption_error(ours, "brightness") == pytest.approx(1.4 / sum(alex))
    # Same errors, a different name -> a different denominator (no positional alignment).
    assert metrics.corruption_error(ours, "contrast") == pytest.approx(
        1.4 / sum(metrics.ALEXNET_ERR["contrast"])
    )
    with pytest.raises(KeyError, match="not_a_corruption"):
        metrics.corruption_error(ours, "not_a_corruption")
    with pytest.raises(ValueError, match="severities"):
        metrics.corruption_error(ours[:3], "brightness")


def test_mce_spec_vectors():
    alexnet = {c: metrics.ALEXNET_ERR[c] for c in metrics.BENCHMARK_CORRUPTIONS}
    assert metrics.mce(alexnet) == pytest.approx(1.0)
    half = {c: [0.5] * 5 for c in metrics.BENCHMARK_CORRUPTIONS}
    assert metrics.mce(half) == pytest.approx(0.646726, abs=1e-6)
    # Dict order does not matter: reversed insertion order gives the same mCE.
    assert metrics.mce(dict(reversed(list(half.items())))) == pytest.approx(0.646726, abs=1e-6)


def test_relative_mce_spec_vector_and_definition():
    half = {c: [0.5] * 5 for c in metrics.BENCHMARK_CORRUPTIONS}
    assert metrics.relative_mce(half, 0.25) == pytest.approx(0.813978, abs=1e-6)
    # Hand computation for one corruption: clean subtracted once per severity.
    ours = [0.3, 0.35, 0.4, 0.45, 0.5]
    alex = metrics.ALEXNET_ERR["fog"]
    expected = sum(e - 0.2 for e in ours) / sum(a - 0.43478 for a in alex)
    assert metrics.relative_corruption_error(ours, 0.2, "fog") == pytest.approx(expected)


# ---------------------------------------------------------------------------- -P metrics


def test_flip_probability_spec_vector():
    preds = np.array([[0, 1, 1, 2, 2]])
    assert metrics.flip_probability(preds, noise=False) == pytest.approx(0.5)
    assert metrics.flip_probability(preds, noise=True) == pytest.approx(1.0)


def test_flip_probability_noise_vs_consecutive_differ():
    # Returns to the first prediction: consecutive flips 2 of 3, against frame 0 only 1 of 3.
    preds = np.array([[3, 5, 3, 3], [1, 1, 1, 1]])
    assert metrics.flip_probability(preds, noise=False) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.flip_probability(preds, noise=True) == pytest.approx((1 / 3 + 0) / 2)


def test_flip_probability_step_interleaved_subsequences():
    # d = 2: sub-sequences (x0, x2, x4) and (x1, x3); comparisons (0,2), (2,4), (1,3).
    preds = np.array([[0, 7, 0, 8, 1]])
    assert metrics.flip_probability(preds, noise=False, step=2) == pytest.approx(2 / 3)
    # Noise ignores the step (difficulties are separate datasets compared with frame 0).
    assert metrics.flip_probability(preds, noise=True, step=2) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="frames"):
        metrics.flip_probability(np.array([[0]]), noise=False)


def test_is_noise_perturbation():
    assert metrics.is_noise_perturbation("gaussian_noise")
    assert metrics.is_noise_perturbation("shot_noise_2")
    assert not metrics.is_noise_perturbation("translate")


def test_top5_distance_from_sigma_spec_vectors():
    assert metrics.top5_distance_from_sigma([2, 1, 3, 4, 5]) == 2
    assert metrics.top5_distance_from_sigma([10, 1, 2, 3, 4]) == 9
    assert metrics.top5_distance_from_sigma([1, 2, 3, 4, 5]) == 0


def _logits_with_ranking(order, k=12):
    """Logits whose classes, sorted by decreasing logit, are ``order`` then the rest by index."""
    rest = [c for c in range(k) if c not in order]
    logits = np.zeros(k)
    for r, c in enumerate(list(order) + rest):
        logits[c] = k - r
    return logits


def test_rank_classes_ordinal_ties_by_index():
    ranks = metrics.rank_classes(np.array([0.5, 2.0, 0.5, 1.0]))
    assert ranks.tolist() == [3, 1, 4, 2]


def test_top5_distance_sequences_noise_and_consecutive():
    ref = _logits_with_ranking([0, 1, 2, 3, 4])
    swap = _logits_with_ranking([1, 0, 2, 3, 4])  # sigma = 2, 1, 3, 4, 5 vs ref: T5D 2
    drop = _logits_with_ranking([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])  # class 0 to rank 10: T5D 9
    video = np.stack([ref, swap, drop])[None]  # (1, 3, 12)
    # Noise: ref->swap = 2, ref->drop = 9.
    assert metrics.top5_distance(video, noise=True) == pytest.approx((2 + 9) / 2)
    # Consecutive: ref->swap = 2; swap->drop: swap's top5 (1, 0, 2, 3, 4) land at ranks
    # (1, 10, 2, 3, 4) -> |1-1| + |2-6| + |3-2| + |4-3| + |5-4| = 7.
    assert metrics.top5_distance(video, noise=False) == pytest.approx((2 + 7) / 2)
    with pytest.raises(ValueError, match="K>=5"):
        metrics.top5_distance(np.zeros((1, 3, 4)), noise=True)


def test_mean_flip_rate_plain_and_normalised():
    fp = {p: 0.01 * (i + 1) for i, p in enumerate(metrics.P_PERTURBATIONS)}
    assert metrics.mean_flip_rate(fp) == pytest.approx(0.055)
    base = {p: 0.02 * (i + 1) for i, p in enumerate(metrics.P_PERTURBATIONS)}
    assert metrics.mean_flip_rate(fp, baseline=base) == pytest.approx(0.5)
    assert metrics.mean_top5_distance(fp, baseline=base) == pytest.approx(0.5)
    # ImageNet-P AlexNet values are status U: normalising with the empty table names the gap.
    with pytest.raises(KeyError, match="issue #49"):
        metrics.mean_flip_rate(fp, baseline=metrics.ALEXNET_FLIP_PROB)
    with pytest.raises(KeyError, match="rotate"):
        metrics.mean_flip_rate({"translate": 0.1}, perturbations=["translate", "rotate"])


# ---------------------------------------------------------------------------- summarize


def _tidy_eval(errors, *, severities=metrics.SEVERITIES, identity=None):
    """eval.csv rows: clean error 0.2, then errors[c] at each severity (rms_calib = err / 10)."""
    rows = [{"benchmark": "clean", "corruption": "clean", "severity": 0, "error": 0.2, "rms_calib": 0.1,
             "brier": 0.3, "n": 100}]
    rows += [{"benchmark": "c", "corruption": c, "severity": s, "error": e + 0.01 * s, "rms_calib": e / 10,
              "brier": 0.5, "n": 100} for c, e in errors.items() for s in severities]
    return pd.DataFrame([{**(identity or {}), **r} for r in rows])


def test_summarize_one_completeness_rule_and_plain_cifar_mean():
    errors = {c: 0.1 * (i % 3) for i, c in enumerate(metrics.BENCHMARK_CORRUPTIONS)}
    full = metrics.summarize(_tidy_eval(errors | {"spatter": 0.9}), kind="cifar", bin_size=100,
                             calib_mode="reference")
    # Mean over the 15 benchmark corruptions of the mean over severities (+0.03); extras excluded.
    assert full["corruption_error"] == pytest.approx(np.mean(list(errors.values())) + 0.03)
    assert full["corruption_error_complete"] and "mce" not in full
    assert full["per_corruption"]["spatter"] == pytest.approx(0.93)
    assert full["per_severity"]["fog"] == {s: pytest.approx(errors["fog"] + 0.01 * s) for s in range(1, 6)}
    assert full["clean_error"] == 0.2 and full["calib_bin_size"] == 100
    # Missing one severity anywhere, or one benchmark corruption: incomplete, still computed.
    short = metrics.summarize(_tidy_eval(errors, severities=(1, 2, 3, 4)), kind="cifar", bin_size=100,
                              calib_mode="reference")
    assert not short["corruption_error_complete"]
    assert short["corruption_error"] == pytest.approx(np.mean(list(errors.values())) + 0.025)
    fewer = dict(list(errors.items())[:14])
    assert not metrics.summarize(_tidy_eval(fewer), kind="cifar", bin_size=100,
                                 calib_mode="reference")["corruption_error_complete"]
    # Extras alone: no headline at all, only per corruption.
    extras = metrics.summarize(_tidy_eval({"spatter": 0.5}), kind="cifar", bin_size=100, calib_mode="reference")
    assert "corruption_error" not in extras and set(extras["per_corruption"]) == {"spatter"}


def test_summarize_imagenet_mce_needs_all_five_severities():
    errors = {c: 0.5 - 0.03 for c in metrics.BENCHMARK_CORRUPTIONS}  # 0.5 on average over s = 1..5
    s = metrics.summarize(_tidy_eval(errors), kind="imagenet", bin_size=100, calib_mode="reference")
    assert s["mce"] == pytest.approx(0.646726, abs=1e-6) and s["mce_complete"]  # the test vector for error 0.5
    assert s["ce"]["fog"] == pytest.approx(2.5 / sum(metrics.ALEXNET_ERR["fog"]))
    assert s["relative_mce"] == pytest.approx(metrics.relative_mce({c: [e + 0.01 * k for k in range(1, 6)]
                                                                     for c, e in errors.items()}, 0.2))
    partial = metrics.summarize(_tidy_eval(errors, severities=(1, 5)), kind="imagenet", bin_size=100,
                                calib_mode="reference")
    assert "mce" not in partial and partial["ce"] == {} and "corruption_error" in partial


def test_summarize_copies_identity_perturbations_and_calibration_modes():
    ident = {"dataset": "cifar10", "arch": "wrn40_2", "method": "augmix", "seed": 3, "model": "ours"}
    fp = {p: 0.01 * (i + 1) for i, p in enumerate(metrics.CIFAR_P_PERTURBATIONS)}
    p_frame = pd.DataFrame({"perturbation": [*fp, "snow"], "flip_prob": [*fp.values(), 0.9],
                            "top5_dist": [0.5] * 11})
    rng = np.random.default_rng(0)
    pred = {"confidence": rng.uniform(0.2, 1, 250), "correct": rng.uniform(size=250) < 0.6}
    s = metrics.summarize(_tidy_eval({"fog": 0.1}, identity=ident), p_frame, kind="cifar", bin_size=100,
                          calib_mode="corrected", predictions=pred)
    assert {k: s[k] for k in ident} == ident and isinstance(s["seed"], int)
    assert s["mean_flip_prob"] == pytest.approx(0.055) and s["mfr"] == s["mean_flip_prob"]  # snow not averaged
    assert s["p_complete"] and s["flip_prob"]["snow"] == 0.9 and s["mean_t5d"] == pytest.approx(0.5)
    for mode in metrics.CALIB_MODES:
        assert s[f"rms_calib_clean_{mode}"] == pytest.approx(
            metrics.rms_calibration_error(pred["confidence"], pred["correct"], bin_size=100, mode=mode))
    assert s["calib_mode"] == "corrected"
    with pytest.raises(ValueError, match="kind"):
        metrics.summarize(_tidy_eval({}), kind="svhn", bin_size=100, calib_mode="reference")
