"""Input preprocessing (training/preprocessing.py): per-pixel standardization and ZCA fitted on
the training split alone and applied alike everywhere, the course's normalization, the principal
components a projection keeps, and the augmentations: flips, crops and mixup."""
import numpy as np
import pytest
import torch
from helpers import COMPONENTS

from cifar10_utils import get_cifar10
from dataset.loaders import DataLoader, make_loaders
from dataset.splits import Split
from safety.checks import mixup_alpha
from training import preprocessing
from training.preprocessing import (
    Mixup,
    Preprocessing,
    mirror_permutation,
    random_crop_flip,
)


# Preprocessing fits images of any size: where a check is about ZCA's algebra, 3 x 8 x 8 images
# make its eigendecomposition 192 x 192, instant, instead of CIFAR's 3072 x 3072
SMALL = (3, 8, 8)


def mirrored_images(count, seed, shape=(3, 32, 32)):
    """count random images and their mirrors, so that plain statistics are already symmetric."""
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    return np.concatenate([images, images[..., ::-1]])


def test_zca_whitens_the_training_split_up_to_epsilon():
    images = mirrored_images(400, 0, SMALL)  # 800 images for 192 dimensions: full rank
    epsilon = 1e-5
    zca = Preprocessing.fit("zca", images, zca_epsilon=epsilon)
    white = zca(images).reshape(len(images), -1).astype(np.float64)
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-4)
    covariance = white.T @ white / len(white)
    # eigenvalues λ of the pixel covariance become λ / (λ + ε): 1 up to epsilon's share
    np.testing.assert_allclose(covariance, np.eye(192), atol=0.03)
    assert abs(np.mean(np.diag(covariance)) - 1) < 0.01


def covariance_of_mirrored(images):
    """The covariance of pixels scaled to [0, 1] over the images and their mirrors, float64."""
    flat = images.reshape(len(images), -1) / 255.0
    both = np.concatenate([flat, flat[:, mirror_permutation(images.shape[1:])]])
    centered = both - both.mean(axis=0)
    return centered.T @ centered / len(both)


@pytest.mark.parametrize("epsilon", [0.01, 0.1])
def test_zca_adds_epsilon_to_the_eigenvalues_before_the_square_root(epsilon):
    """W = U (Λ + εI)^(-1/2) Uᵀ; at an epsilon near the eigenvalues, sqrt(λ) + ε is far off."""
    images = np.random.default_rng(0).integers(0, 256, (400, 3, 4, 4), dtype=np.uint8)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance_of_mirrored(images))
    assert eigenvalues.max() > epsilon / 10  # epsilon matters here
    expected = (eigenvectors / np.sqrt(eigenvalues + epsilon)) @ eigenvectors.T
    whitening = Preprocessing.fit("zca", images, epsilon).arrays["whitening"]
    np.testing.assert_allclose(whitening, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("normalize", ["pixel", "zca"])
def test_preprocessing_commutes_with_flips_and_is_the_same_in_torch(normalize):
    images = np.random.default_rng(1).integers(0, 256, (300, *SMALL), dtype=np.uint8)
    fitted = Preprocessing.fit(normalize, images, zca_epsilon=0.1)
    out = fitted(images[:20])
    assert out.dtype == np.float32 and out.shape == (20, *SMALL)
    np.testing.assert_allclose(fitted(images[:20, ..., ::-1]), out[..., ::-1], atol=2e-4)
    np.testing.assert_allclose(fitted(torch.from_numpy(images[:20])).numpy(), out, atol=2e-4)


def test_pixel_standardization_uses_each_pixels_training_statistics():
    images = mirrored_images(500, 2)
    images[:, 0, 3, 5] = images[:, 0, 3, 26] = 7  # a constant pixel and its mirror: std 0
    out = Preprocessing.fit("pixel", images)(images).reshape(len(images), -1)
    varying = out.std(axis=0) > 0
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0)[varying], 1, atol=1e-3)
    assert np.all(np.isfinite(out))


def test_statistics_come_from_the_training_split_and_apply_alike_to_all(cifar_dir):
    data = get_cifar10(cifar_dir[0], 30, url="")
    fitted = Preprocessing.fit("zca", data["train"].images, zca_epsilon=0.1)
    train = data["train"].images.reshape(len(data["train"]), -1).astype(np.float64)
    mean = (train.mean(axis=0) + train[:, preprocessing.mirror_permutation()].mean(axis=0)) / 2
    np.testing.assert_allclose(fitted.arrays["shift"], -mean / 255, atol=1e-6)  # train's alone
    loaders = make_loaders(data, fitted)
    for key in ("validation", "test"):
        batches = np.concatenate([images for images, _ in loaders[key]])
        np.testing.assert_allclose(batches, fitted(data[key].images), atol=1e-5)


def test_channel_preprocessing_is_the_course_normalization(cifar_dir):
    data = get_cifar10(cifar_dir[0], 30, url="")
    fitted = Preprocessing.fit("channel", data["train"].images)
    assert fitted.fitted_arrays == {}  # nothing to save: the course's fixed numbers
    np.testing.assert_array_equal(fitted(data["test"].images),
                                  preprocessing.normalize(data["test"].images))


def test_normalization_uses_the_course_mean_and_std_per_channel():
    """Each channel by its own numbers, written out here as the course gives them."""
    image = np.empty((1, 3, 32, 32), np.uint8)
    image[0, 0], image[0, 1], image[0, 2] = 255, 0, 128
    out = preprocessing.normalize(image)
    expected = [(1.0 - 0.491) / 0.247, (0.0 - 0.482) / 0.243, (128 / 255 - 0.447) / 0.262]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(out[0, channel], value, rtol=1e-6)


def test_torch_normalization_equals_numpy_normalization():
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    ours = preprocessing.normalize(images)
    theirs = preprocessing.normalize(torch.from_numpy(images))
    assert theirs.dtype == torch.float32 and theirs.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-6, atol=1e-6)


def test_the_components_are_the_whitened_images_top_principal_directions():
    images = np.random.default_rng(0).integers(0, 256, (600, *SMALL), dtype=np.uint8)
    images[:, :, :, 4:] = images[:, :, :, :4] // 2  # correlated pixels: a spectrum with a slope
    zca = Preprocessing.fit("zca", images, zca_epsilon=1.0)
    components = zca.principal_components(COMPONENTS)
    assert components.shape == (192, COMPONENTS) and components.dtype == np.float32
    np.testing.assert_allclose(components.T @ components, np.eye(COMPONENTS), atol=1e-5)
    white = zca(np.concatenate([images, images[..., ::-1]])).reshape(2 * len(images), -1)
    white = white.astype(np.float64) - white.mean(axis=0)
    variances = np.linalg.eigvalsh(white.T @ white / len(white))[::-1]
    captured = np.sum((white @ components) ** 2, axis=0) / len(white)
    np.testing.assert_allclose(captured, variances[:COMPONENTS], rtol=1e-3)  # the largest, in order


# --- augmentations ---
@pytest.mark.parametrize("as_torch", [False, True])
def test_random_crop_flip_returns_shifted_and_mirrored_crops(as_torch):
    images = np.random.default_rng(0).integers(0, 256, (16, 3, 8, 8), dtype=np.uint8)
    given = torch.from_numpy(images) if as_torch else images
    out = preprocessing.random_crop_flip(given, np.random.default_rng(1), padding=2)
    assert type(out) is type(given) and out.shape == given.shape and out.dtype == given.dtype
    out = np.asarray(out)
    padded = np.pad(images, [(0, 0), (0, 0), (2, 2), (2, 2)])
    flips_seen = set()
    for i in range(16):
        matches = [(top, left, flip) for top in range(5) for left in range(5)
                   for flip in (False, True)
                   if np.array_equal(out[i], padded[i, :, top:top + 8, left:left + 8][..., ::-1]
                                     if flip else padded[i, :, top:top + 8, left:left + 8])]
        assert matches, f"image {i} is no crop of its padded original"
        flips_seen.update(flip for _, _, flip in matches)
    assert flips_seen == {False, True}


def test_random_crops_reach_every_offset_from_0_to_twice_the_padding():
    padding, size = 2, 6
    images = np.arange(1, 1 + 2 * size * size, dtype=np.uint8).reshape(2, 1, size, size)
    images = np.repeat(images, 100, axis=0)
    crops = random_crop_flip(images, np.random.default_rng(0), padding=padding)
    seen = set()
    for image, crop in zip(images, crops):
        padded = np.pad(image, [(0, 0), (padding, padding), (padding, padding)])
        for top in range(2 * padding + 1):
            for left in range(2 * padding + 1):
                window = padded[:, top:top + size, left:left + size]
                if np.array_equal(crop, window) or np.array_equal(crop, window[..., ::-1]):
                    seen.add((top, left))
    offsets = range(2 * padding + 1)
    assert {top for top, _ in seen} == set(offsets) and {left for _, left in seen} == set(offsets)


@pytest.mark.parametrize("down, right", [(2, 0), (0, -2), (-2, 2), (1, 1), (0, 0)])
def test_a_views_shift_is_the_crop_of_the_zero_padded_image_at_that_offset(down, right):
    """Each pixel moves down and right, zeros come in behind it, as random_crop_flip's crop at
    that offset from the centre would; mirrored after; NumPy and torch alike."""
    images = np.random.default_rng(0).integers(1, 256, (4, 3, 6, 6), dtype=np.uint8)
    padded = np.pad(images, [(0, 0), (0, 0), (2, 2), (2, 2)])
    crop = padded[..., 2 - down:2 - down + 6, 2 - right:2 - right + 6]
    for flipped in (False, True):
        expected = crop[..., ::-1] if flipped else crop
        np.testing.assert_array_equal(preprocessing.view(images, flipped, down, right), expected)
        moved = preprocessing.view(torch.from_numpy(images), flipped, down, right)
        np.testing.assert_array_equal(moved.numpy(), expected)
    if down > 0:  # a pixel's value is found where it moved to
        assert np.array_equal(crop[:, :, down, max(right, 0)], images[:, :, 0, max(-right, 0)])
        assert not crop[:, :, :down].any()


@pytest.mark.parametrize("tta, shifts", [("flip+shift", (-2, 0, 2)),
                                          ("flip+wide-shift", (-4, -2, 0, 2, 4))])
def test_shifted_views_are_every_offset_mirrored_and_not_and_epochs_see_one(tta, shifts):
    views = preprocessing.TTA_VIEWS[tta]
    offsets = {(v["down"], v["right"], v["flipped"]) for v in views}
    assert len(views) == len(offsets) == 2 * len(shifts) ** 2
    assert offsets == {(d, r, f) for d in shifts for r in shifts for f in (False, True)}
    assert preprocessing.every_epoch(tta) == "none"
    assert [preprocessing.every_epoch(name) for name in ("none", "flip")] == ["none", "flip"]


def test_numpy_and_torch_flips_are_the_same_for_a_seed():
    images = np.random.default_rng(0).integers(0, 256, (32, 3, 4, 4), dtype=np.uint8)
    ours = preprocessing.random_flip(images, np.random.default_rng(5))
    theirs = preprocessing.random_flip(torch.from_numpy(images), np.random.default_rng(5))
    np.testing.assert_array_equal(ours, theirs.numpy())
    flipped = [not np.array_equal(a, b) for a, b in zip(ours, images)]
    assert 0 < sum(flipped) < 32
    np.testing.assert_array_equal(ours[flipped], images[flipped][..., ::-1])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_both_trainers_loaders_deform_the_same_batches_for_a_seed(dtype):
    """The NumPy trainer's loader holds NumPy arrays, the PyTorch trainer's tensors: for a seed
    they give the same images deformed alike, epoch after epoch (uint8, or whitened float32)."""
    images = np.random.default_rng(0).integers(0, 256, (64, 3, 32, 32)).astype(dtype)
    labels = np.arange(64) % 10
    ours, theirs, undeformed = (
        DataLoader(split, 16, shuffle=True, drop_last=True, seed=7, transform=transform)
        for split, transform in [(Split(images, labels), preprocessing.random_deform_flip),
                                 (Split(torch.from_numpy(images), torch.from_numpy(labels)),
                                  preprocessing.random_deform_flip),
                                 (Split(images, labels), None)])
    first = next(iter(undeformed))[0]  # the same rows: the permutation is drawn first
    for epoch in range(2):
        for step, ((x, y), (u, v)) in enumerate(zip(ours, theirs)):
            assert isinstance(x, np.ndarray)
            np.testing.assert_array_equal(x, u.numpy())
            np.testing.assert_array_equal(y, v.numpy())
            if epoch == step == 0:
                assert (x != first).mean() > 0.5


def test_cutout_fills_one_square_per_image_with_the_mean_and_keeps_the_rest_of_the_crop():
    """The square is 8x8 where it lies inside the image, clipped at its border, anywhere; the
    rest is the crop and flip drawn from the same generator; NumPy and torch agree."""
    images = np.random.default_rng(0).integers(0, 256, (400, 3, 32, 32), dtype=np.uint8)
    images[:, 0] //= 2  # red below the mean's 125: no pixel of a crop is the mean colour
    out = preprocessing.random_crop_flip_cutout(images, np.random.default_rng(3))
    cropped = preprocessing.random_crop_flip(images, np.random.default_rng(3))
    mean = np.round(np.array(preprocessing.MEAN) * 255).astype(np.uint8)
    sizes, corners = [], set()
    for image, crop in zip(out, cropped):
        mask = (image == mean[:, None, None]).all(axis=0)
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].all()  # one rectangle
        np.testing.assert_array_equal(image[:, ~mask], crop[:, ~mask])
        sizes.append((len(rows), len(columns)))
        corners.add((rows[0], columns[0]))
    assert max(sizes) == (8, 8) and min(min(size) for size in sizes) <= 5  # clipped at borders
    assert {row for row, _ in corners} >= set(range(0, 25)) and len(corners) > 200
    theirs = preprocessing.random_crop_flip_cutout(torch.from_numpy(images),
                                                   np.random.default_rng(3))
    np.testing.assert_array_equal(out, theirs.numpy())


@pytest.mark.parametrize("as_torch", [False, True])
def test_cutout_fills_whitened_images_with_zero_their_mean(as_torch):
    """ZCA's loaders augment images already whitened, whose mean is zero."""
    images = np.random.default_rng(0).normal(size=(64, 3, 32, 32)).astype(np.float32) + 5
    given = torch.from_numpy(images) if as_torch else images
    out = np.asarray(preprocessing.random_crop_flip_cutout(given, np.random.default_rng(3)))
    cropped = preprocessing.random_crop_flip(images, np.random.default_rng(3))
    changed = out != cropped
    assert out.dtype == np.float32 and (out[changed] == 0).all()
    assert (changed.reshape(64, -1).sum(axis=1) <= 3 * 8 * 8).all()
    assert changed.reshape(64, -1).any(axis=1).sum() > 48  # some squares fall on the padding


class Drawn:
    """A stand-in for the loader's generator that draws the given values: angles in degrees,
    zooms, (downs, rights) and mirror draws (below 0.5: mirrored), one each per image."""

    def __init__(self, angles, zooms, moves, mirrors):
        self.values = [np.array(angles)[:, None], np.array(zooms)[:, None],
                       np.array(moves)[:, :, None], np.array(mirrors)[:, None]]

    def uniform(self, low, high, size):
        value = self.values.pop(0)
        assert value.shape == size and ((low <= value) & (value <= high)).all()
        return value

    def integers(self, low, high, size):
        return self.uniform(low, high - 1, size)

    def random(self, size):
        return self.uniform(0, 1, size)


def deformed(images, *drawn, **settings):
    """random_deform_flip of images with the draws given (Drawn's), in NumPy and in torch,
    which must give the same images."""
    ours = preprocessing.random_deform_flip(images, Drawn(*drawn), **settings)
    theirs = preprocessing.random_deform_flip(torch.from_numpy(images), Drawn(*drawn),
                                              **settings)
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert ours.dtype == images.dtype and ours.shape == images.shape
    return ours


def test_a_deformation_without_turn_or_zoom_is_a_crop_of_the_zero_padded_image_mirrored_or_not():
    images = np.random.default_rng(0).integers(1, 256, (4, 3, 8, 8), dtype=np.uint8)
    moves = [(2, -1, 0, -4), (0, 3, -2, 4)]  # (down, right) of each image
    out = deformed(images, [0.0] * 4, [1.0] * 4, moves, [0.9, 0.1, 0.9, 0.1])
    padded = np.pad(images, [(0, 0), (0, 0), (4, 4), (4, 4)])
    for i, (down, right) in enumerate(zip(*moves)):
        crop = padded[i, :, 4 - down:12 - down, 4 - right:12 - right]
        np.testing.assert_array_equal(out[i], crop[..., ::-1] if i % 2 else crop)


def test_a_quarter_turn_turns_the_image_and_a_zoom_of_two_enlarges_its_centre():
    images = np.random.default_rng(0).integers(1, 256, (3, 3, 8, 8), dtype=np.uint8)
    still = ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    out = deformed(images, [90.0, -90.0, 0.0], [1.0, 1.0, 2.0], still, [0.9] * 3,
                   degrees=90, scale=1)
    ways = [[k for k in (1, 3) if np.array_equal(out[i], np.rot90(images[i], k, axes=(1, 2)))]
            for i in (0, 1)]
    assert ways in ([[1], [3]], [[3], [1]])  # each a quarter turn, the two ways round
    # twice the size: the centre's 4 x 4 pixels, each now a 2 x 2 block
    np.testing.assert_array_equal(out[2], images[2, :, 2:6, 2:6].repeat(2, 1).repeat(2, 2))


def test_deformations_are_drawn_within_their_ranges_and_fill_the_outside_with_zero():
    """Whitened images (mean zero) as ZCA's loaders hold them: turns of up to 10 degrees and
    zooms of up to 10 % move most pixels, fill some corners with zero and, drawn again from the
    same seed, are the same."""
    images = np.random.default_rng(0).normal(size=(200, 3, 32, 32)).astype(np.float32) + 5
    out = preprocessing.random_deform_flip(images, np.random.default_rng(3))
    again = preprocessing.random_deform_flip(torch.from_numpy(images), np.random.default_rng(3))
    np.testing.assert_array_equal(out, again.numpy())
    assert set(np.unique(out)) <= set(np.unique(images)) | {0.0}
    filled = (out == 0).all(axis=1).reshape(200, -1).sum(axis=1)
    assert filled.min() == 0 and 32 * 8 < filled.max() < 32 * 32 * 0.5
    unchanged = [np.array_equal(o, image) for o, image in zip(out, images)]
    assert not any(unchanged)


def test_mixup_blends_each_image_with_one_partner_of_its_batch():
    batch = 12
    images, labels = np.eye(batch), np.arange(batch) * 10  # row i is image i: blends show
    mixed, partners, weight = Mixup(0.4, seed=5)(images, labels)
    assert 0 < weight < 1
    partner_of = partners // 10
    assert sorted(partner_of) == list(range(batch))  # a permutation of the batch
    assert not np.array_equal(partner_of, np.arange(batch))
    expected = weight * images + (1 - weight) * images[partner_of]
    np.testing.assert_allclose(mixed, expected, atol=1e-15)
    np.testing.assert_allclose(mixed.sum(axis=1), 1)


def test_mixup_blends_evenly_at_its_largest_alpha_and_refuses_a_larger_one():
    """At the largest alpha the option allows, every draw blends half and half; past it, NumPy's
    Beta draw overflows (to a weight of 0 at 1e308, the run then training unblended)."""
    largest = mixup_alpha.maximum
    weights = [Mixup(largest, seed)(np.eye(4), np.arange(4))[2] for seed in range(20)]
    np.testing.assert_allclose(weights, 0.5, atol=1e-3)
    with pytest.raises(ValueError, match="mixup is 1e[+]308, out of range"):
        mixup_alpha.check("mixup", 1e308)


def test_mixup_draws_the_same_blends_for_numpy_and_torch_and_off_is_identity():
    images = np.random.default_rng(0).normal(size=(8, 3, 4, 4)).astype(np.float32)
    labels = np.arange(8)
    numpy_mixup, torch_mixup = Mixup(1.0, seed=3), Mixup(1.0, seed=3)
    for _ in range(3):  # the generators stay in step batch after batch
        a = numpy_mixup(images, labels)
        b = torch_mixup(torch.from_numpy(images), torch.from_numpy(labels))
        np.testing.assert_allclose(a[0], b[0].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(a[1], b[1].numpy())
        assert a[2] == b[2]
    assert Mixup(1.0, seed=4)(images, labels)[2] != Mixup(1.0, seed=3)(images, labels)[2]
    off = Mixup(0.0, seed=3)(images, labels)
    assert off[0] is images and off[1] is labels and off[2] == 1.0
