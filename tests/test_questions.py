"""The report's section on the written questions (experiments/sections/questions.py): what its
GOE table and text say at the boundary min_hits, where a size is resolved by exactly that many
matrices with all eigenvalues positive."""
import numpy as np
import pytest

from experiments.sections import questions
from questions import saddles

SAMPLES, MIN_HITS = 2000, 35
HITS = [966, 308, MIN_HITS, 3]  # n = 3 resolved by exactly MIN_HITS, n = 4 not


def goe_table(hits_per_size=HITS):
    rows = []
    for n, hits in enumerate(hits_per_size, start=1):
        low, high = saddles.binomial_interval(hits, SAMPLES)
        rows.append({"n": n, "hits": hits, "samples": SAMPLES, "low": low, "high": high})
    return rows


@pytest.mark.parametrize("sizes", [4, 3])
def test_theta_is_estimated_around_every_size_whose_neighbours_have_min_hits_or_more(sizes):
    """θ at n needs log P at n - 1, n and n + 1 resolved: at n = 2, whose n = 3 has exactly
    MIN_HITS, whether the count stopped at n = 4 or ran out of sizes at n = 3; not at n = 3, and
    never at the first or last size."""
    lines = questions.goe_rows(goe_table(HITS[:sizes]), MIN_HITS).split("\n")
    logs = np.log(np.array(HITS[:3]) / SAMPLES)
    expected = ["", f"{-0.5 * (logs[2] - 2 * logs[1] + logs[0]):.3f}"] + [""] * (sizes - 2)
    assert [line.split("|")[-2].strip() for line in lines] == expected
    assert [line.split("|")[1].strip() for line in lines] == [str(n) for n in range(1, sizes + 1)]


def test_the_text_counts_a_size_with_exactly_min_hits_as_resolved():
    rng = np.random.default_rng(0)
    network = saddles.LinearNetwork(4, 3, 2, 30, rng)
    settings = dict(goe_samples=SAMPLES, goe_min_hits=MIN_HITS, lr=0.1, network_lr=0.05,
                    starts=3, network_starts=2,
                    network=dict(inputs=4, hidden=3, outputs=2, samples=30))
    summary = {
        "settings": settings, "goe": goe_table(), "seconds": 1.0,
        "quadratic": saddles.escape_from_quadratic_saddle([1e-2, 1e-4], 0.1, 3, rng),
        "network": saddles.escape_from_linear_network(network, [1e-2, 1e-4], 0.05, 2, rng),
        "network_curvature": network.top_saddle_curvature()}
    text = questions.section_saddles(summary, None, None)
    assert "Sizes n = 1 to 3 are resolved." in text
    assert f"at n = 4, {HITS[3]} of them had" in text
    assert text.count(f"/ {SAMPLES:,} |") == len(HITS)
