"""Speed and memory of the n-gram evaluator (JS-1..4 with its cached reference), of what a run
evaluates besides it (JS against held-out lines, unique and copy rates) and of BLEU.

The corpus is synthetic but real text: the encoded lines of the two shared One Billion Word
shards, drawn at random with replacement up to the wanted number of lines (never written to the
repository). The 640 "samples" are other such lines with 10 % of their characters replaced by
random ids, so that some of their n-grams are new.

Each measurement runs in its own process: times are of the work alone (after imports and data
generation), memory is the process's peak resident set (ru_maxrss, the id array, interpreter and
imports included).

The baseline is the algorithm of the reference (``NgramLanguageModel`` of gan_language.py,
Gulrajani et al. 2017), written out here: every n-gram a tuple counted in a dict, a
log-likelihood per n-gram, and ``js_with`` summing over both supports in Python. As the
reference does, it builds one model per n = 1..4 on the corpus and one on the samples.

    python benchmarks/bench_metrics.py                      # 10M lines, baseline on 1M
    python benchmarks/bench_metrics.py --lines 1000000 --baseline-lines 100000   # quicker
    python benchmarks/bench_metrics.py --evaluation-only     # what a run's evaluation costs
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from shared_corpus import GBW, SHARDS

SEQ_LEN, N_SAMPLES, MAX_N, HELDOUT = 32, 640, 4, 10_000
TARGETS = {"js_ms": 100.0, "build_s": 60.0, "build_peak_gb": 2.0, "speedup": 50.0}


def make_data(n_lines: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(corpus ids (n_lines, 32), sample ids (640, 32), vocabulary)."""
    from textgan.vocab import Vocab, count_symbols, text_to_codes

    lines = []
    for shard in SHARDS:
        lines += (GBW / shard).read_text(encoding="utf-8").splitlines()
    codes = text_to_codes(lines, SEQ_LEN)
    vocab = Vocab.from_counts(count_symbols(codes))
    base_ids = vocab.codes_to_ids(codes)
    rng = np.random.default_rng(seed)
    corpus = base_ids[rng.integers(0, len(base_ids), n_lines)]
    samples = base_ids[rng.integers(0, len(base_ids), N_SAMPLES)].copy()
    noise = rng.random(samples.shape) < 0.1
    samples[noise] = rng.integers(2, len(vocab), int(noise.sum()))
    return corpus, samples, vocab


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def median_ms(fn, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


# -- phases, each in its own process --------------------------------------------------------


def phase_ours(n_lines: int) -> dict:
    """Build the reference of n_lines, cache it, load it, time JS-1..4 of 640 samples."""
    from textgan.metrics.reference import ReferenceNgrams

    corpus, samples, vocab = make_data(n_lines)
    t = time.perf_counter()
    ref = ReferenceNgrams.build(corpus, MAX_N, len(vocab))
    build_s = time.perf_counter() - t
    build_peak = peak_gb()
    first_js = time.perf_counter()
    js = ref.js(samples)
    first_js = time.perf_counter() - first_js
    with tempfile.TemporaryDirectory() as tmp:
        ref.save(Path(tmp) / "ngrams.npz")
        t = time.perf_counter()
        cached = ReferenceNgrams.load(Path(tmp) / "ngrams.npz")
        load_s = time.perf_counter() - t
    return {
        "lines": n_lines,
        "build_s": build_s,
        "build_peak_gb": build_peak,
        "ids_gb": corpus.nbytes / 2**30,
        "distinct": [len(c) for c in cached.counts],
        "load_s": load_s,
        "js_ms": median_ms(lambda: cached.js(samples)),
        "build_plus_js_s": build_s + first_js,
        "js": js,
    }


def phase_evaluation(n_lines: int) -> dict:
    """A run's evaluation of 640 samples: each registered metric it computes (one-time
    resources built first), against n_lines training lines and 10,000 held-out ones."""
    from textgan.metrics.evaluator import TRAINING_METRICS
    from textgan.metrics.reference import ReferenceNgrams
    from textgan.metrics.registry import Resources, compute, get_metrics, real_batch, sample_batch

    corpus, samples, vocab = make_data(n_lines + HELDOUT)
    train, heldout = corpus[HELDOUT:], corpus[:HELDOUT]
    resources = Resources(
        train=lambda: train,
        heldout=lambda: heldout,
        vocab=lambda: vocab,
        ngrams=lambda: ReferenceNgrams.build(train, MAX_N, len(vocab)),
    )
    batch = sample_batch(samples, real_batch(heldout, N_SAMPLES, 0, MAX_N))
    out: dict = {"lines": n_lines, "first_s": {}, "ms": {}}
    for metric in get_metrics(TRAINING_METRICS):
        t = time.perf_counter()
        compute([metric], batch, resources)  # builds what the metric needs, once per run
        out["first_s"][metric.name] = time.perf_counter() - t
        out["ms"][metric.name] = median_ms(lambda m=metric: compute([m], batch, resources))
    return out


class NgramLanguageModel:
    """The reference's algorithm: a generator of tuple n-grams counted in a dict, a
    log-likelihood computed per n-gram, JS summed in Python over both supports."""

    def __init__(self, n: int, samples: list[tuple]) -> None:
        self.n = n
        self.samples = samples
        self.counts: dict[tuple, int] = collections.defaultdict(int)
        self.total = 0
        for ngram in self.ngrams():
            self.counts[ngram] += 1
            self.total += 1

    def ngrams(self):
        n = self.n
        for sample in self.samples:
            for i in range(len(sample) - n + 1):
                yield sample[i : i + n]

    def log_likelihood(self, ngram: tuple) -> float:
        if ngram not in self.counts:
            return -np.inf
        return np.log(self.counts[ngram]) - np.log(self.total)

    def js_with(self, p: NgramLanguageModel) -> float:
        support = set(p.counts)
        log_p = np.array([p.log_likelihood(g) for g in support])
        log_q = np.array([self.log_likelihood(g) for g in support])
        log_m = np.logaddexp(log_p - np.log(2), log_q - np.log(2))
        kl_p_m = np.sum(np.exp(log_p) * (log_p - log_m))
        support = set(self.counts)
        log_p = np.array([p.log_likelihood(g) for g in support])
        log_q = np.array([self.log_likelihood(g) for g in support])
        log_m = np.logaddexp(log_p - np.log(2), log_q - np.log(2))
        kl_q_m = np.sum(np.exp(log_q) * (log_q - log_m))
        return float(0.5 * (kl_p_m + kl_q_m) / np.log(2))


def phase_baseline(n_lines: int) -> dict:
    corpus, samples, vocab = make_data(n_lines)
    # As the reference holds them: tuples of one-character strings, padded with backticks.
    chars = np.array(["`", "unk", *map(chr, vocab.symbols)], dtype=object)
    lines = [tuple(r) for r in chars[corpus].tolist()]
    sample_lines = [tuple(r) for r in chars[samples].tolist()]
    del corpus
    t = time.perf_counter()
    true_lms = [NgramLanguageModel(n, lines) for n in range(1, MAX_N + 1)]
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    js = {
        n: NgramLanguageModel(n, sample_lines).js_with(true_lms[n - 1]) for n in range(1, MAX_N + 1)
    }
    js_s = time.perf_counter() - t
    return {"lines": n_lines, "build_s": build_s, "js_s": js_s, "js": js}


def phase_bleu(n_hyps: int, n_refs: int, baseline_hyps: int) -> dict:
    """BLEU-2..5 of n_hyps samples vs n_refs real lines, and Self-BLEU-2..5 of the samples;
    baseline: NLTK's per-sentence algorithm in Python on ``baseline_hyps`` of them."""
    from textgan.metrics.bleu import bleu_orders
    from textgan.metrics.lm import line_lengths

    corpus, _, vocab = make_data(n_refs + n_hyps, seed=1)
    base = len(vocab)
    refs, hyps = corpus[:n_refs], corpus[n_refs:]
    t = time.perf_counter()
    ours = bleu_orders(hyps, refs, (2, 3, 4, 5), base)
    bleu_s = time.perf_counter() - t
    t = time.perf_counter()
    bleu_orders(hyps, hyps, (2, 3, 4, 5), base, own=np.arange(len(hyps)))
    self_s = time.perf_counter() - t

    def tokens(row, length):
        return tuple(row[:length])

    ref_t = [tokens(r, n) for r, n in zip(refs.tolist(), line_lengths(refs), strict=True)]
    hyp_t = [tokens(h, n) for h, n in zip(hyps.tolist(), line_lengths(hyps), strict=True)]
    t = time.perf_counter()
    scores = [_nltk_like_bleu(ref_t, h, 5) for h in hyp_t[:baseline_hyps]]
    per_hyp = (time.perf_counter() - t) / baseline_hyps
    sub = bleu_orders(hyps[:baseline_hyps], refs, (5,), base)[5]
    return {
        "hyps": n_hyps,
        "refs": n_refs,
        "bleu_2_5_s": bleu_s,
        "self_bleu_2_5_s": self_s,
        "baseline_bleu5_s_per_hyp": per_hyp,
        "baseline_agrees": abs(sub - float(np.mean(scores))) < 1e-12,
        "bleu5": ours[5],
    }


def _nltk_like_bleu(refs: list[tuple], hyp: tuple, max_n: int) -> float:
    """NLTK sentence_bleu with method-1 smoothing: Counters per reference, per hypothesis."""
    import math

    log_p = 0.0
    for n in range(1, max_n + 1):
        counts = collections.Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
        max_ref: collections.Counter = collections.Counter()
        for r in refs:
            rc = collections.Counter(r[i : i + n] for i in range(len(r) - n + 1))
            for g in counts:
                max_ref[g] = max(max_ref[g], rc[g])
        num = sum(min(c, max_ref[g]) for g, c in counts.items())
        if n == 1 and num == 0:
            return 0.0
        log_p += math.log((num or 0.1) / max(1, sum(counts.values()))) / max_n
    closest = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
    bp = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return bp * math.exp(log_p)


# -- driver ---------------------------------------------------------------------------------


def run_phase(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--baseline-lines", type=int, default=1_000_000)
    parser.add_argument("--evaluation-only", action="store_true", help="only a run's evaluation")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        fn = {
            "ours": phase_ours,
            "baseline": phase_baseline,
            "bleu": phase_bleu,
            "evaluation": phase_evaluation,
        }[name]
        print(json.dumps(fn(*map(int, rest))))
        return
    evaluation = run_phase("evaluation", str(args.lines))
    print(f"a run's evaluation of {N_SAMPLES} samples, {evaluation['lines']:,} training lines:")
    for name, ms in evaluation["ms"].items():
        first = evaluation["first_s"][name]
        print(f"  {name:12} {ms:8.2f} ms    (first call, building what it needs: {first:.2f} s)")
    if args.evaluation_only:
        return

    big = run_phase("ours", str(args.lines))
    small = run_phase("ours", str(args.baseline_lines))
    base = run_phase("baseline", str(args.baseline_lines))
    bleu = run_phase("bleu", "2000", "10000", "10")
    diff = max(abs(small["js"][k] - base["js"][k]) for k in base["js"])
    baseline_s = base["build_s"] + base["js_s"]
    speedup = baseline_s / small["build_plus_js_s"]
    print(f"JS-1..{MAX_N} of {N_SAMPLES} samples, {SEQ_LEN} characters a line (2-core CPU)\n")
    print(f"reference of {big['lines']:,} lines (distinct n-grams {big['distinct']}):")
    print(f"  build        {big['build_s']:8.1f} s     target ≤ {TARGETS['build_s']:.0f} s")
    print(
        f"  peak memory  {big['build_peak_gb']:8.2f} GB    target ≤ {TARGETS['build_peak_gb']:.0f}"
        f" GB (process peak; the id array alone is {big['ids_gb']:.2f} GB)"
    )
    print(f"  load cache   {1000 * big['load_s']:8.1f} ms")
    print(f"  JS-1..4      {big['js_ms']:8.2f} ms    target ≤ {TARGETS['js_ms']:.0f} ms (median)")
    print(f"\nsame work on {args.baseline_lines:,} lines (build the reference, then JS-1..4):")
    print(f"  reference's Python algorithm  {baseline_s:8.2f} s")
    print(f"  textgan.metrics               {small['build_plus_js_s']:8.2f} s")
    print(f"  speed-up                      {speedup:8.1f} x   target ≥ {TARGETS['speedup']:.0f} x")
    print(f"  largest |JS difference|       {diff:.1e}")
    full_baseline = bleu["baseline_bleu5_s_per_hyp"] * bleu["hyps"]
    print(f"\nBLEU of {bleu['hyps']:,} samples against {bleu['refs']:,} references:")
    print(f"  BLEU-2..5       {bleu['bleu_2_5_s']:8.2f} s")
    print(f"  Self-BLEU-2..5  {bleu['self_bleu_2_5_s']:8.2f} s")
    print(
        f"  NLTK's algorithm in Python, BLEU-5 alone: {full_baseline:,.0f} s "
        f"(extrapolated from 10 samples; same scores: {bleu['baseline_agrees']})"
    )
    ok = (
        big["js_ms"] <= TARGETS["js_ms"]
        and big["build_s"] <= TARGETS["build_s"]
        and big["build_peak_gb"] <= TARGETS["build_peak_gb"]
        and speedup >= TARGETS["speedup"]
        and diff < 1e-9
    )
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")


if __name__ == "__main__":
    main()
