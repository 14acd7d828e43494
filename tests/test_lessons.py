"""The notebooks' central claims, checked by the package at quick settings.

nbval (lax) only proves that the notebooks' cells run. These tests fail if a lesson's
point stops being true of the code the notebooks call:

- 07 (bit depth): a 1-bit sensor loses many points of accuracy that an 8-bit one keeps;
- 05 (feature space): a trained CNN's feature-space neighbours share the query's class
  far more often than its pixel-space neighbours;
- 06 (which pixels matter): occlusion and saliency both point at the stained nucleus.

Two small trainings (simulated 32 px cells, 100 per class, 4 epochs; about 10 s each on
one core) serve all of them. Accuracy and neighbours are recomputed with scikit-learn.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score
from sklearn.neighbors import NearestNeighbors

from deepimaging import data, models, physics, train
from deepimaging.interpret import extract_features, occlusion_map, saliency_map


@pytest.fixture(scope="module")
def splits():
    cells = data.simulate_blood_smear(n_per_class=100, size=32, seed=0)
    train_set, _, test_set = data.split(cells, val=0.0, test=0.3, seed=0)
    return train_set, test_set


def trained(bits, train_set):
    """A BasicCNN behind a ``bits``-bit sensor, trained at the quick settings."""
    train.seed_everything(0)
    model = models.PhysicalModel(physics.Quantize(bits), models.BasicCNN(3, 4))
    train.fit(model, train_set, epochs=4, lr=3e-3, batch_size=16, seed=0, progress=False, device="cpu")
    return model.eval()


@pytest.fixture(scope="module")
def models_by_bits(splits):
    train_set, _ = splits
    return {bits: trained(bits, train_set) for bits in (1, 8)}


def test_one_bit_loses_many_points_that_eight_bits_keep(models_by_bits, splits):
    _, test_set = splits
    accuracy = {}
    for bits, model in models_by_bits.items():
        result = train.predict(model, test_set, device="cpu")
        accuracy[bits] = accuracy_score(test_set.labels.numpy(), result.probabilities.argmax(1).numpy())
    assert accuracy[8] >= 0.85, accuracy
    assert accuracy[8] - accuracy[1] >= 0.10, accuracy  # "many points": at least ten


def neighbour_agreement(vectors, labels, k=5):
    """Share of each point's k nearest neighbours (itself left out) with the point's own label."""
    indices = NearestNeighbors(n_neighbors=k).fit(vectors).kneighbors()[1]
    return float(np.mean(labels[indices] == labels[:, None]))


def test_feature_space_neighbours_share_the_class_more_often_than_pixel_space_ones(models_by_bits, splits):
    _, test_set = splits
    cnn = models_by_bits[8].cnn
    features = extract_features(cnn, test_set, device="cpu").numpy()
    labels = test_set.labels.numpy()
    in_features = neighbour_agreement(features, labels)
    in_pixels = neighbour_agreement(test_set.images.flatten(1).numpy(), labels)
    assert in_features >= 0.8 and in_features - in_pixels >= 0.2, (in_features, in_pixels)


def test_occlusion_and_saliency_both_point_at_the_nucleus(models_by_bits, splits):
    """On cells the model gets right, both maps weigh the nucleus (darkest fifth of the pixels) above the rest.

    The stained nucleus is the darkest part of a simulated cell; occlusion's mean drop in
    probability and saliency's mean gradient magnitude are larger there than elsewhere.
    """
    _, test_set = splits
    cnn = models_by_bits[8].cnn
    predicted = train.predict(cnn, test_set, device="cpu").predicted
    right = torch.nonzero(predicted == test_set.labels).flatten()[:10]
    occlusion_agrees, saliency_agrees = 0, 0
    for i in right.tolist():
        image, target = test_set.images[i], int(test_set.labels[i])
        brightness = image.mean(0).flatten()
        nucleus = brightness < brightness.quantile(0.2)
        occlusion = occlusion_map(cnn, image, target, sliding_window_shapes=8, strides=4).flatten()
        saliency = saliency_map(cnn, image, target).flatten()
        occlusion_agrees += bool(occlusion[nucleus].mean() > occlusion[~nucleus].mean())
        saliency_agrees += bool(saliency[nucleus].mean() > 1.5 * saliency[~nucleus].mean())
    assert len(right) == 10
    assert occlusion_agrees >= 8 and saliency_agrees >= 8, (occlusion_agrees, saliency_agrees)
