"""Independent float64 NumPy evaluations of the paper formulas and brute-force loops.

Nothing here imports the package: these are the yardsticks the tests compare against.
"""

import itertools
import math

import numpy as np


def sqdist(x, y):
    return float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))


def lossless(d_ap, d_an, n, beta=None, eps=1e-8):
    # Arsenault 2018, written exactly as in the paper (float64 holds 1 + 1e-8).
    beta = n if beta is None else beta
    return -math.log(-d_ap / beta + 1 + eps) - math.log(-(n - d_an) / beta + 1 + eps)


def linear_lossless(d_ap, d_an, n):
    return d_ap - d_an + n


def triplet(d_ap, d_an, margin=0.2):
    return max(d_ap - d_an + margin, 0.0)


def soft_margin(d_ap, d_an):
    # ln(1 + exp(x)) written out in float64, split at 0 so exp never overflows.
    x = d_ap - d_an
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def contrastive(x1, x2, similar, margin=1.0):
    dist = math.sqrt(sqdist(x1, x2))
    return 0.5 * dist**2 if similar else 0.5 * max(0.0, margin - dist) ** 2


def brute_force_batch(codes, labels, per_triplet):
    """Mean of per_triplet(d_ap, d_an) over every valid (a, p, n), by explicit loops."""
    codes = np.asarray(codes, np.float64)
    values = []
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
            values.append(per_triplet(sqdist(codes[a], codes[p]), sqdist(codes[a], codes[n])))
    return float(np.mean(values)) if values else 0.0


def brute_force_per_anchor(codes, labels, per_triplet):
    """Per anchor, the sum of per_triplet(d_ap, d_an) over the triplets it anchors, by loops."""
    codes = np.asarray(codes, np.float64)
    out = np.zeros(len(labels))
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
            out[a] += per_triplet(sqdist(codes[a], codes[p]), sqdist(codes[a], codes[n]))
    return out


def brute_force_pairs(codes, labels, margin=1.0):
    codes = np.asarray(codes, np.float64)
    values = [
        contrastive(codes[i], codes[j], labels[i] == labels[j], margin)
        for i, j in itertools.combinations(range(len(labels)), 2)
    ]
    return float(np.mean(values)) if values else 0.0


def _distances(codes):
    codes = np.asarray(codes, np.float64)
    return [[sqdist(codes[i], codes[j]) for j in range(len(codes))] for i in range(len(codes))]


def brute_force_hard(codes, labels):
    """Batch hard (Hermans et al. 2017) by loops: per anchor the farthest positive, nearest negative.

    Ties go to the lowest index. Anchors without a positive or a negative are skipped.
    """
    d = _distances(codes)
    triplets = []
    for a in range(len(labels)):
        positives = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if positives and negatives:
            p = max(positives, key=lambda j: (d[a][j], -j))
            n = min(negatives, key=lambda j: (d[a][j], j))
            triplets.append((a, p, n))
    return triplets


def brute_force_semihard(codes, labels, margin=None):
    """Semi-hard (FaceNet) by loops: per (a, p) the nearest n with d_ap < d_an (< d_ap + margin).

    Fallback when none exists: the anchor's farthest negative. Ties go to the lowest index.
    """
    d = _distances(codes)
    triplets = []
    for a in range(len(labels)):
        negatives = [n for n in range(len(labels)) if labels[n] != labels[a]]
        if not negatives:
            continue
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            candidates = [
                n for n in negatives if d[a][p] < d[a][n] and (margin is None or d[a][n] < d[a][p] + margin)
            ]
            if candidates:
                n = min(candidates, key=lambda j: (d[a][j], j))
            else:
                n = max(negatives, key=lambda j: (d[a][j], -j))
            triplets.append((a, p, n))
    return triplets
