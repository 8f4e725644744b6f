"""A row-by-row ceiling for the known KDDI classes: a random forest given ALL their labels.

Run by hand (not a test):  python benchmarks/known_class_ceiling.py [--views kpi-stats+link,kpi-stats+link+baseline]

The one-shot quality goal is limited by the known classes (normal, bgp-hijacking, bgp-injection,
tap-loss, tap-delay), not by the held-out ones. This fits scikit-learn's RandomForestClassifier
(300 trees, seed 0) on the known-class training rows of each view (fitted and standardised
exactly as ``compare_losses`` does, node-down and interface-down held out) and prints macro-F1,
per-class F1 and the confusion matrix on the known-class eval rows: what a supervised model,
not one-shot and not nearest-centroid, can read from one row. Prints only.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import confusion_matrix, f1_score

from lossless_triplet.data import Standardizer, load_kddi_nfv
from lossless_triplet.data.views import FeatureView
from lossless_triplet.pipeline import resolve_holdout

HOLDOUT = ["node-down", "interface-down"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", default="kpi-stats+link,kpi-stats+link+baseline",
                        help="comma-separated feature views (default: two of the candidates `train` chooses "
                        "among on KDDI)")
    parser.add_argument("--jobs", type=int, default=2, help="random-forest worker threads")
    args = parser.parse_args()
    train, test = load_kddi_nfv("train"), load_kddi_nfv("eval")
    held = resolve_holdout(train.class_names, HOLDOUT)
    known, known_test = ~np.isin(train.labels, held), ~np.isin(test.labels, held)
    names = [train.class_names[c] for c in sorted(set(train.labels[known]))]
    for view_name in [v.strip() for v in args.views.split(",") if v.strip()]:
        view = FeatureView(view_name).fit(train.features[known], train.feature_names)
        x_train, x_test = view.transform(train.features), view.transform(test.features)
        scaler = Standardizer().fit(x_train[known])
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        forest = RandomForestClassifier(300, n_jobs=args.jobs, random_state=0)
        predicted = forest.fit(x_train[known], train.labels[known]).predict(x_test[known_test])
        truth = test.labels[known_test]
        per_class = f1_score(truth, predicted, average=None)
        print(f"\n{view_name}: macro-F1 {f1_score(truth, predicted, average='macro'):.3f} over {', '.join(names)}")
        print("per-class F1: " + ", ".join(f"{n} {f:.3f}" for n, f in zip(names, per_class)))
        print("confusion (rows = true, columns = predicted, same order):")
        print(confusion_matrix(truth, predicted))


if __name__ == "__main__":
    main()
