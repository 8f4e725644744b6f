"""The seed's Siamese model in Keras 3, trained on the bundled KDDI NFV data.

Three inputs (anchor, positive, negative) share one encoder (Dense-ReLU blocks, then a
sigmoid code head of width N); the model outputs the concatenated codes (B, 3N), and the
loss is :class:`lossless_triplet.keras.LosslessTripletLoss` in the seed's layout
(``layout="triplets"``), as in M.-O. Arsenault, "Lossless Triplet loss", 2018. With
``--layout labels`` the plain encoder is trained instead on (features, labels) batches with
the batch-all form of the same loss.

Run (any Keras backend; torch is the default here because the package already needs it)::

    python examples/keras_siamese.py --epochs 5
    KERAS_BACKEND=jax python examples/keras_siamese.py --loss triplet --layout labels

It prints the loss on the training triplets before and after training, and the eval split's
precision@1 and nearest-class-centroid accuracy of the learned codes.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402  (the backend is chosen before the first import)
import numpy as np  # noqa: E402

from lossless_triplet.data import Standardizer, load_kddi_nfv  # noqa: E402
from lossless_triplet.keras import (  # noqa: E402
    ContrastiveLoss,
    LinearLosslessTripletLoss,
    LosslessTripletLoss,
    TripletMarginLoss,
)
from lossless_triplet.metrics import class_centroids, nearest_representative, retrieval_metrics  # noqa: E402

KERAS_LOSSES = {
    "lossless": LosslessTripletLoss,
    "linear_lossless": LinearLosslessTripletLoss,
    "triplet": TripletMarginLoss,
    "contrastive": ContrastiveLoss,
}


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bundled KDDI NFV train and eval splits, scaled by a Standardizer fitted on train only.

    Returns:
        ``(x_train, y_train, x_eval, y_eval)``: features float32 (n, 121), labels int64 (n,).
    """
    train, evaluation = load_kddi_nfv("train"), load_kddi_nfv("eval")
    scaler = Standardizer().fit(train.features)
    as_float = lambda x: scaler.transform(x).astype("float32")  # noqa: E731
    return as_float(train.features), train.labels, as_float(evaluation.features), evaluation.labels


def make_triplets(
    labels: np.ndarray, n_triplets: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random valid triplets, drawn offline as in the seed: anchor, positive (same class,
    another row) and negative (another class).

    Anchors are drawn uniformly over the classes that have at least two rows, then uniformly
    within the class, so rare fault types are not drowned by normal operation.

    Shape:
        labels: (n,) int. Output: three (n_triplets,) int64 row indices.

    Raises:
        ValueError: fewer than two classes, or no class with two rows.
    """
    classes, counts = np.unique(labels, return_counts=True)
    anchor_classes = classes[counts >= 2]
    if len(classes) < 2 or len(anchor_classes) == 0:
        raise ValueError(
            f"triplets need two classes and a class with two rows; got class counts "
            f"{dict(zip(classes.tolist(), counts.tolist()))}"
        )
    rows = {c: np.flatnonzero(labels == c) for c in classes}
    anchors, positives, negatives = (np.empty(n_triplets, dtype=np.int64) for _ in range(3))
    for i, c in enumerate(rng.choice(anchor_classes, size=n_triplets)):
        anchors[i], positives[i] = rng.choice(rows[c], size=2, replace=False)
        negatives[i] = rng.choice(np.flatnonzero(labels != c))
    return anchors, positives, negatives


def build_encoder(n_features: int, dim: int = 3, hidden: tuple[int, ...] = (64, 64)) -> keras.Model:
    """Dense-ReLU blocks then a sigmoid code head: codes in [0, 1]^dim, so every squared
    distance is bounded by dim, which the lossless losses need.

    Shape: input (B, n_features) float32; output (B, dim) float32 in [0, 1].
    """
    layers = [keras.Input((n_features,), name="features")]
    layers += [keras.layers.Dense(width, activation="relu") for width in hidden]
    layers.append(keras.layers.Dense(dim, activation="sigmoid", name="code"))
    return keras.Sequential(layers, name="encoder")


def build_siamese_model(encoder: keras.Model) -> keras.Model:
    """The seed's three-input model: one shared encoder, codes concatenated.

    Shape: inputs three (B, F) float32; output (B, 3N) = [anchor | positive | negative].
    """
    n_features = encoder.input_shape[-1]
    inputs = [keras.Input((n_features,), name=name) for name in ("anchor", "positive", "negative")]
    codes = keras.layers.Concatenate(name="codes")([encoder(x) for x in inputs])
    return keras.Model(inputs, codes, name="siamese")


@dataclass
class TrainResult:
    """What :func:`train` returns: the encoder, Keras' History, and the training loss on the
    same training data just before and after ``fit``."""

    encoder: keras.Model
    history: keras.callbacks.History
    loss_before: float
    loss_after: float


def train(
    x: np.ndarray,
    y: np.ndarray,
    *,
    loss: str = "lossless",
    layout: str = "triplets",
    epochs: int = 1,
    dim: int = 3,
    n_triplets: int | None = None,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int = 0,
) -> TrainResult:
    """Train an encoder with one of the Keras losses, in the seed's or the labels layout.

    Args:
        x, y: training features (n, F) float32 and labels (n,) int.
        loss: ``"lossless"``, ``"linear_lossless"``, ``"triplet"`` or ``"contrastive"``.
        layout: ``"triplets"`` (Siamese model on offline triplets) or ``"labels"`` (the
            encoder on shuffled labelled batches, batch-all).
        n_triplets: triplets per epoch in the triplets layout (default: n).

    Raises:
        ValueError: an unknown loss or layout.
    """
    if loss not in KERAS_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(KERAS_LOSSES)}")
    if layout not in ("triplets", "labels"):
        raise ValueError(f"layout={layout!r} is not valid; use 'triplets' or 'labels'")
    keras.utils.set_random_seed(seed)
    encoder = build_encoder(x.shape[1], dim)
    if layout == "triplets":
        a, p, n = make_triplets(y, n_triplets or len(y), np.random.default_rng(seed))
        model, inputs, targets = build_siamese_model(encoder), [x[a], x[p], x[n]], np.zeros(len(a))
    else:
        model, inputs, targets = encoder, x, y
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=KERAS_LOSSES[loss](layout=layout))
    before = float(model.evaluate(inputs, targets, batch_size=batch_size, verbose=0))
    history = model.fit(inputs, targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    after = float(model.evaluate(inputs, targets, batch_size=batch_size, verbose=0))
    return TrainResult(encoder, history, before, after)


def evaluate_codes(encoder: keras.Model, x_train, y_train, x_eval, y_eval) -> dict[str, float]:
    """Eval-split precision@1, and accuracy of the nearest training-class centroid."""
    train_codes = encoder.predict(x_train, batch_size=4096, verbose=0)
    eval_codes = encoder.predict(x_eval, batch_size=4096, verbose=0)
    classes, centroids = class_centroids(train_codes, y_train)
    predicted, _ = nearest_representative(eval_codes, centroids, classes)
    return {
        "precision_at_1": retrieval_metrics(eval_codes, y_eval)["precision_at_1"],
        "centroid_accuracy": float(np.mean(predicted == y_eval)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", choices=list(KERAS_LOSSES), default="lossless")
    parser.add_argument("--layout", choices=["triplets", "labels"], default="triplets")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=3, help="code width N (3 in the seed)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x_train, y_train, x_eval, y_eval = load_data()
    result = train(
        x_train, y_train, loss=args.loss, layout=args.layout, epochs=args.epochs, dim=args.dim,
        batch_size=args.batch_size, seed=args.seed, verbose=2,
    )
    print(f"backend {keras.backend.backend()}, loss {args.loss}, layout {args.layout}")
    print(f"training loss: {result.loss_before:.4f} before, {result.loss_after:.4f} after {args.epochs} epoch(s)")
    for name, value in evaluate_codes(result.encoder, x_train, y_train, x_eval, y_eval).items():
        print(f"eval {name}: {value:.3f}")


if __name__ == "__main__":
    main()
