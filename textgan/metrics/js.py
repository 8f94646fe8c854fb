"""Jensen–Shannon divergence between two n-gram distributions, exactly as the reference.

``NgramLanguageModel.js_with`` of Gulrajani et al. (2017): p and q are the normalized counts (no
smoothing), m = (p + q) / 2 and JS = ½ KL(p‖m) + ½ KL(q‖m) in bits, summed over the union of
the two supports; it lies in [0, 1]. An n-gram in only one of the two contributes
``its probability · log 2`` to that side's KL, so only the shared n-grams need to be looked up:
the distinct n-grams of 640 samples against millions of reference n-grams cost one
``searchsorted``.
"""

from __future__ import annotations

import numpy as np

from textgan.metrics.ngrams import NgramCounts


def js_divergence(p: NgramCounts, q: NgramCounts) -> float:
    """JS divergence in bits between the normalized counts of ``p`` and ``q`` (symmetric)."""
    if p.total == 0 or q.total == 0:
        raise ValueError("JS divergence of an empty n-gram distribution is undefined")
    small, large = (p, q) if len(p) <= len(q) else (q, p)
    shared = large.lookup(small.keys)
    ps = small.counts / small.total
    pl = shared / large.total
    log_m = np.log((ps + pl) / 2)
    kl_small = float(np.sum(ps * (np.log(ps) - log_m)))
    both = shared > 0
    # The large side's mass outside the shared n-grams, from integers: no cancellation.
    alone = (large.total - int(shared.sum())) / large.total
    kl_large = float(np.sum(pl[both] * (np.log(pl[both]) - log_m[both]))) + alone * np.log(2)
    return min(1.0, max(0.0, 0.5 * (kl_small + kl_large) / np.log(2)))
