"""evaluate's metrics.json headline: the benchmark corruptions only, with its rule recorded."""

import numpy as np
import pandas as pd
import pytest

from augmix import config, metrics
from augmix import evaluate as ev

from conftest import SMOKE_PARAMS


def _frame(errors: dict[str, float]) -> pd.DataFrame:
    rows = [{"benchmark": "clean", "corruption": "clean", "severity": 0, "error": 0.2, "rms_calib": 0.1,
             "brier": 0.3, "n": 100}]
    rows += [{"benchmark": "c", "corruption": name, "severity": s, "error": err, "rms_calib": err / 10,
              "brier": 0.5, "n": 100} for name, err in errors.items() for s in range(1, 6)]
    return ev._tidy(rows, {"dataset": "imagenet", "arch": "resnet50", "method": "augmix"})


@pytest.mark.parametrize("with_extras", [False, True])
def test_headline_is_the_benchmark_corruptions_only(with_extras):
    """The four held-out corruptions never enter the headline (docs/reference-facts.md, "Metrics"). With them
    configured the corruption error and mCE are still the 15-corruption values (they used to be
    19-corruption means), and the extras are still reported per corruption."""
    errors = {name: 0.5 for name in metrics.BENCHMARK_CORRUPTIONS}
    if with_extras:
        errors.update({name: 0.9 for name in metrics.EXTRA_CORRUPTIONS})
    params = config.load(SMOKE_PARAMS)
    summary = ev._summary(_frame(errors), None, params, {}, alexnet=True)
    assert summary["corruption_error"] == pytest.approx(0.5) and summary["rms_calib_c"] == pytest.approx(0.05)
    assert summary["mce"] == pytest.approx(0.646726, abs=1e-6)  # the test vector for error 0.5
    assert summary["corruption_error_complete"] and summary["mce_complete"]
    assert set(summary["per_corruption"]) == set(errors)
    assert summary["calib_bin_size"] == params.eval.calib_bin_size and "benchmark" in summary["aggregation"]


def test_headline_flags_a_partial_benchmark():
    errors = {"gaussian_noise": 0.4, "fog": 0.6, "spatter": 0.9}
    summary = ev._summary(_frame(errors), None, config.load(SMOKE_PARAMS), {}, alexnet=True)
    assert summary["corruption_error"] == pytest.approx(0.5)
    assert not summary["corruption_error_complete"] and not summary["mce_complete"]
    assert summary["mce"] == pytest.approx(np.mean([0.4 / np.mean(metrics.ALEXNET_ERR["gaussian_noise"]),
                                                    0.6 / np.mean(metrics.ALEXNET_ERR["fog"])]))
