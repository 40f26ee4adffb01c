"""What is done to images between the files and the model: normalization (the course's numbers,
or per-pixel or ZCA statistics fitted on the training split), augmentation (flips, crops,
cutout, mixup) and the fixed views of an image that test-time averaging predicts. Each works on
NumPy arrays and on torch tensors on their device alike, and draws from a NumPy Generator, so
that both trainers see the same batches for a seed."""
import numpy as np

from dataset.tensors import as_tensor, constants_on
from safety.errors import out_of_memory
from training.threads import in_row_blocks

CHUNK = 5000  # images at a time where a whole split is processed: bounded float64 memory
# what needs none of ZCA's float32 copies of a split
WITHOUT_ZCA = ", or use --normalize channel or pixel, which keep the images uint8"


# --- The course's normalization ---
MEAN = (0.491, 0.482, 0.447)  # the course's per-channel numbers for CIFAR-10
STD = (0.247, 0.243, 0.262)
# x_norm = (x / 255 - mean) / std = x * SCALE + SHIFT, one multiply-add per pixel; spelled out
# per pixel of a flattened image so NumPy runs one long loop instead of many 32-pixel rows
SCALE = np.repeat(1.0 / (255.0 * np.array(STD, np.float32)), 32 * 32)
SHIFT = np.repeat(-np.array(MEAN, np.float32) / np.array(STD, np.float32), 32 * 32)


def normalize(images):
    """uint8 (B, 3, 32, 32) -> float32 (B, 3, 32, 32) with the course's per-channel mean and std.

    images is a NumPy array, or a torch tensor on any device (normalized there)."""
    return affine(images, SCALE, SHIFT)


def affine(images, scale, shift):
    """x * scale + shift per pixel of each flattened uint8 image, where the images live."""
    flat = images.reshape(len(images), -1)
    if isinstance(images, np.ndarray):
        out = flat.astype(np.float32)
        out *= scale
        out += shift
    else:
        scale, shift = constants_on(images.device, scale, shift)
        out = flat.float().mul_(scale).add_(shift)
    return out.reshape(images.shape)


def mirror_permutation(image_shape=(3, 32, 32)):
    """The permutation of a flattened image's pixels that mirrors it left-right."""
    return np.arange(int(np.prod(image_shape))).reshape(image_shape)[..., ::-1].ravel()


# the arrays each --normalize fits, which a saved model keeps
FITTED_ARRAYS = {"channel": set(), "pixel": {"scale", "shift"},
                 "zca": {"scale", "shift", "whitening"}}


class Preprocessing:
    """z = x * scale + shift per pixel of a flattened uint8 image x, then, for ZCA, z W.

    Statistics come from the training split alone and are made mirror-symmetric (as if every
    image were there twice, once flipped), so that preprocessing and a horizontal flip commute:
    flips may then be applied to preprocessed images, at test time too.
    arrays: {'scale', 'shift'} and for ZCA 'whitening' W (3072, 3072); fitted_arrays is what a
    saved model keeps: nothing for the course's fixed numbers."""

    def __init__(self, arrays=None, eigenvectors=None):
        self.fitted_arrays = arrays or {}
        self.arrays = arrays or {"scale": SCALE, "shift": SHIFT}
        self.eigenvectors = eigenvectors  # ZCA's, as fitted: what a projection is made of

    @classmethod
    def fit(cls, normalize, train_images, zca_epsilon=None):
        """Fit on uint8 training images (N, 3, 32, 32); 'channel' needs no fitting, and only
        'zca' reads zca_epsilon. Memory that runs out here went to the statistics' copies of the
        images, which no flag of the model changes: the error says so."""
        if normalize == "channel":
            return cls()
        try:
            return cls.fitted(normalize, train_images, zca_epsilon)
        except MemoryError:
            size = train_images.size
            if normalize == "pixel":
                raise out_of_memory(f"fitting per-pixel statistics (float64 copies of "
                                    f"{CHUNK:,} images at a time: about "
                                    f"{CHUNK * size / len(train_images) * 8 / 1e6:,.0f} MB)",
                                    ", or use --normalize channel") from None
            raise out_of_memory(f"fitting ZCA (a float32 copy of the {len(train_images):,} "
                                f"training images: about {size * 4 / 1e6:,.0f} MB)",
                                WITHOUT_ZCA) from None

    @classmethod
    def fitted(cls, normalize, train_images, zca_epsilon):
        """fit's statistics: per pixel, or ZCA's whitening from the covariance of the images."""
        flat = train_images.reshape(len(train_images), -1)
        mirror = mirror_permutation(train_images.shape[1:])
        mean = np.zeros(flat.shape[1])
        square = np.zeros(flat.shape[1])
        for start in range(0, len(flat), CHUNK):  # float64 sums without a float64 copy
            chunk = flat[start:start + CHUNK].astype(np.float64)
            mean += chunk.sum(axis=0)
            square += (chunk * chunk).sum(axis=0)
        mean = (mean + mean[mirror]) / (2 * len(flat))
        variance = (square + square[mirror]) / (2 * len(flat)) - mean * mean
        if normalize == "pixel":
            std = np.sqrt(np.maximum(variance, 1e-12))
            return cls({"scale": (1 / std).astype(np.float32),
                        "shift": (-mean / std).astype(np.float32)})
        scale = np.full(flat.shape[1], 1 / 255.0, np.float32)
        shift = (-mean / 255.0).astype(np.float32)
        centered = affine(train_images, scale, shift).reshape(len(flat), -1)
        covariance = (centered.T @ centered).astype(np.float64) / len(flat)
        covariance = (covariance + covariance[np.ix_(mirror, mirror)]) / 2
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        whitening = (eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + zca_epsilon)) \
            @ eigenvectors.T
        return cls({"scale": scale, "shift": shift, "whitening": whitening.astype(np.float32)},
                   eigenvectors=eigenvectors[:, ::-1])  # largest eigenvalue first

    def principal_components(self, n_components):
        """P: (3072, n_components), the fitted ZCA's top principal directions of the training
        images, largest variance first. Whitening keeps every direction and the order of their
        variances, so they are the whitened images' principal components too."""
        return np.ascontiguousarray(self.eigenvectors[:, :n_components], np.float32)

    @classmethod
    def load(cls, normalize, arrays):
        """The Preprocessing a saved model kept: its fitted arrays, which must be those that
        --normalize fits (none for the course's fixed numbers), each of its shape. ValueError if
        they are not."""
        if set(arrays) != FITTED_ARRAYS.get(normalize):
            raise ValueError(f"its preprocessing does not fit --normalize {normalize}")
        pixels = len(SCALE)
        for name, value in arrays.items():
            expected = (pixels, pixels) if name == "whitening" else (pixels,)
            if np.shape(value) != expected:
                raise ValueError(f"its preprocessing array {name} has the shape "
                                 f"{np.shape(value)}, not {expected}")
        return cls({name: np.asarray(value, np.float32) for name, value in arrays.items()}
                   or None)

    def __call__(self, images):
        """uint8 (B, 3, 32, 32), NumPy or torch -> float32 (B, 3, 32, 32) preprocessed."""
        out = affine(images, self.arrays["scale"], self.arrays["shift"])
        if "whitening" not in self.arrays:
            return out
        flat = out.reshape(len(out), -1)
        if isinstance(flat, np.ndarray):
            return (flat @ self.arrays["whitening"]).reshape(out.shape)
        (whitening,) = constants_on(flat.device, self.arrays["whitening"])
        return (flat @ whitening).reshape(out.shape)

    def prepare(self, images):
        """(the images a loader should hold, the per-batch transform it should apply) for a
        split's uint8 images.

        ZCA's matrix product is done once for the whole split (float32, 4x the memory of uint8),
        not again for every batch of every epoch; the others stay uint8 and are applied per batch.
        """
        if "whitening" not in self.arrays:
            return images, self
        try:
            return np.concatenate([self(images[start:start + CHUNK])
                                   for start in range(0, len(images), CHUNK)]), None
        except MemoryError:
            megabytes = np.prod(images.shape) * 4 / 1e6
            raise out_of_memory(f"whitening {len(images):,} images (ZCA keeps them in float32: "
                                f"about {megabytes:,.0f} MB, twice that while they are "
                                f"whitened)", WITHOUT_ZCA) from None


def mirror(images):
    """(B, C, H, W) -> each image mirrored left-right."""
    return images[..., ::-1] if isinstance(images, np.ndarray) else images.flip(-1)


def random_flip(images, rng):
    """uint8 (B, C, H, W) -> the same shape, each image mirrored left-right with probability 1/2."""
    flip = rng.random(len(images)) < 0.5
    if isinstance(images, np.ndarray):
        out = images.copy()
        out[flip] = mirror(images[flip])
        return out
    flip = as_tensor(flip, images.device).view(-1, 1, 1, 1)
    return mirror(images).where(flip, images)


def random_crop_flip(images, rng, padding=4):
    """uint8 (B, C, H, W) -> the same shape: a random H x W crop of each image zero-padded by
    `padding` pixels on every side, then random_flip.

    Each crop is picked from a view of the padded image's windows, a row of W pixels at a time:
    3.4x faster in torch and 3.9x in NumPy than a gather of single pixels (0.20 against 0.70 s
    and 0.25 against 0.97 s for an epoch's 175 batches of 256 whitened images, 2-core AMD EPYC)."""
    batch, channels, height, width = images.shape
    top, left = rng.integers(0, 2 * padding + 1, (2, batch))
    padded = zero_padded(images, padding)
    if isinstance(images, np.ndarray):
        windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(2, 3))
        return random_flip(windows[np.arange(batch), :, top, left], rng)
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (B, C, 2p+1, 2p+1, H, W)
    image, top, left = (as_tensor(i, images.device) for i in (np.arange(batch), top, left))
    return random_flip(windows[image, :, top, left], rng)


def zero_padded(images, padding):
    """(B, C, H, W) -> (B, C, H + 2 padding, W + 2 padding): zeros around every image."""
    if isinstance(images, np.ndarray):
        return np.pad(images, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    import torch  # only here, for its padding: dataset/tensors.py says why not at the top
    return torch.nn.functional.pad(images, (padding,) * 4)


def random_crop_flip_cutout(images, rng, size=8):
    """(B, C, H, W) -> the same: random_crop_flip, then in each image a size x size square
    around a random pixel (clipped at the border) filled with the mean image's colour: the
    course's mean for uint8 images, zero for whitened ones, which ZCA has already centred
    (DeVries & Taylor 2017's cutout)."""
    images = random_crop_flip(images, rng)
    batch, _, height, width = images.shape
    rows, columns = rng.integers(0, (height, width), (batch, 2)).T
    inside = [(np.abs(np.arange(length) - centres[:, None] + 0.5) < size / 2)
              for length, centres in ((height, rows), (width, columns))]
    square = (inside[0][:, :, None] & inside[1][:, None, :])[:, None]  # (B, 1, H, W)
    whitened = not str(images.dtype).endswith("uint8")
    mean = (np.zeros(3, np.float32) if whitened else
            np.round(np.array(MEAN) * 255).astype(np.uint8))[None, :, None, None]
    if isinstance(images, np.ndarray):
        return np.where(square, mean.astype(images.dtype), images)
    square, mean = (as_tensor(array, images.device) for array in (square, mean))
    return mean.to(images.dtype).where(square, images)


def random_deform_flip(images, rng, degrees=10, scale=0.1, shift=4):
    """(B, C, H, W) -> the same shape: each image turned by a random angle within +-degrees and
    scaled by a random factor within 1 +- scale about its centre, then moved by a random whole
    number of pixels within +-shift along each axis (as random_crop_flip moves it), then mirrored
    left-right with probability 1/2. Each pixel is the nearest one of its source, zero where that
    lies outside the image. These are Lin, Memisevic & Konda 2015's deformations, drawn from rng
    like every other augmentation, so that a resumed run draws the same ones.

    The whole warp, mirror included, is one gather from a map of source pixels, computed in NumPy
    and so the same for both trainers: output pixel (y, x), from the image's centre, comes from
    R(-angle) (y - down, m x - right) / zoom, where m is -1 for a mirrored image and 1 otherwise.
    """
    batch, channels, height, width = images.shape
    angle = np.deg2rad(rng.uniform(-degrees, degrees, (batch, 1)))
    zoom = rng.uniform(1 - scale, 1 + scale, (batch, 1))
    down, right = rng.integers(-shift, shift + 1, (2, batch, 1))
    mirrored = np.where(rng.random((batch, 1)) < 0.5, -1, 1)
    centre = (np.array([height, width]) - 1) / 2
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    # each image's map as a (2, 3) matrix on the pixels' (row, column, 1) from the centre, all
    # in one float32 matrix product: 5.1 ms for a batch of 512 in all, as random_crop_flip's
    # 5.0, against 8.3 for the same sums written out (torch, 2-core AMD EPYC)
    maps = np.concatenate([
        np.stack([cos, sin * mirrored, centre[0] - cos * down - sin * right], axis=2),
        np.stack([-sin, cos * mirrored, centre[1] - cos * right + sin * down], axis=2)], axis=1)
    pixels = np.indices((height, width)).reshape(2, -1) - centre[:, None]
    pixels = np.concatenate([pixels, np.ones((1, height * width))]).astype(np.float32)
    source_row, source_column = (np.rint(maps.astype(np.float32) @ pixels).astype(np.int32)
                                 .transpose(1, 0, 2))
    # a negative index read as unsigned lies past the far edge: one comparison per axis
    inside = (source_row.view(np.uint32) < height) & (source_column.view(np.uint32) < width)
    # pixel height * width of each flattened image is the zero that fills the outside
    source = np.where(inside, source_row * width + source_column, height * width)[:, None]
    flat = images.reshape(batch, channels, height * width)
    if isinstance(images, np.ndarray):
        flat = np.concatenate([flat, np.zeros((batch, channels, 1), images.dtype)], axis=2)
        # one take from the whole batch, each channel's index moved onto its own plane: with the
        # unsigned comparison above, 5.9 ms for a whitened batch of 512 against 9.3 for
        # np.take_along_axis and four comparisons (fastest of 80, 2-core Intel Xeon); a block of
        # images per core, 2.2 ms against 3.5 on one (medians of 60; mode="clip": see blend)
        planes = np.arange(batch * channels).reshape(batch, channels, 1) * (height * width + 1)
        warped = np.empty(images.shape, images.dtype).reshape(batch, channels, height * width)
        in_row_blocks(lambda out, plane, sources: flat.take(plane + sources, out=out,
                                                            mode="clip"), warped, planes, source)
        return warped.reshape(images.shape)
    import torch  # only here: dataset/tensors.py says why not at the top
    flat = torch.cat([flat, flat.new_zeros(batch, channels, 1)], dim=2)
    source = as_tensor(source.astype(np.int64), images.device).expand(-1, channels, -1)
    return flat.gather(2, source).reshape(images.shape)


# --augment's choices: each maps a uint8 batch and the loader's Generator to a uint8 batch
AUGMENTATIONS = {"none": None, "flip": random_flip, "crop+flip": random_crop_flip,
                 "crop+flip+cutout": random_crop_flip_cutout, "deform+flip": random_deform_flip}


# --tta's choices: the views of each image whose predicted probabilities are averaged, each the
# fixed counterpart of a training augmentation, applied where that is (before normalization):
# mirrored or not, and with flip+shift also moved TTA_SHIFT pixels along each axis as a crop of
# the zero-padded image moves it, with flip+wide-shift also twice that. TTA_SHIFT = 2 was chosen
# on validation, by a one-off evaluation of the sixth search stage's model on validation, against
# a shift of 1 pixel; flip+wide-shift's offsets likewise, by one of the thirteenth stage's kept
# model, against grids of 1-pixel shifts 5 and 7 wide.
TTA_SHIFT = 2
IDENTITY = dict(flipped=False)


def shifted_views(shifts):
    """Each image moved down and right by every pair of shifts, mirrored and not."""
    return [dict(flipped=flipped, down=down, right=right)
            for down in shifts for right in shifts for flipped in (False, True)]


TTA_VIEWS = {"none": [IDENTITY], "flip": [IDENTITY, dict(flipped=True)],
             "flip+shift": shifted_views((0, -TTA_SHIFT, TTA_SHIFT)),
             "flip+wide-shift": shifted_views((0, -TTA_SHIFT, TTA_SHIFT,
                                               -2 * TTA_SHIFT, 2 * TTA_SHIFT))}


def every_epoch(tta):
    """The --tta choice whose views validate each epoch. The shifted choices' epochs see the
    image alone, the cheapest pass, as all it decides is which epoch is kept; that model is then
    validated and tested on all its views."""
    return tta if tta in ("none", "flip") else "none"


def view(images, flipped, down=0, right=0):
    """(B, C, H, W) -> the same shape: each image moved down and right by that many pixels (up
    and left where negative), zeros where it moved away, as a crop of the zero-padded image at
    that offset; then mirrored if flipped."""
    height, width = images.shape[-2:]
    padding = max(abs(down), abs(right))
    if padding:
        images = zero_padded(images, padding)[..., padding - down:padding - down + height,
                                              padding - right:padding - right + width]
    return mirror(images) if flipped else images


class Mixup:
    """Blends each training batch with a shuffled copy of itself (Zhang et al., 2018):
    x~ = w x + (1 - w) x[perm], one w ~ Beta(alpha, alpha) and one permutation per batch, drawn
    from a generator of its own, so both trainers blend alike for a seed. The loss of the blend
    is w L(y) + (1 - w) L(y[perm]). alpha = 0 leaves every batch as it is (w = 1)."""

    def __init__(self, alpha, seed):
        self.alpha, self.rng = alpha, np.random.default_rng([seed, 1])

    def __call__(self, images, labels):
        """images (B, ...) and labels (B,), NumPy or torch -> (x~, y[perm], w)."""
        if not self.alpha:
            return images, labels, 1.0
        weight = float(self.rng.beta(self.alpha, self.alpha))
        perm = self.rng.permutation(len(images))
        if isinstance(images, np.ndarray) and images.dtype.kind == "f":
            return blend(images, perm, weight), labels[perm], weight
        if not isinstance(images, np.ndarray):
            perm = as_tensor(perm, images.device)
        return weight * images + (1 - weight) * images[perm], labels[perm], weight


def blend(images, perm, weight):
    """weight * images + (1 - weight) * images[perm] for a NumPy batch of floats, into one new
    array, a block of images per core: the same floats (floating-point addition is commutative),
    in 1.0 ms for a whitened batch of 512 against 2.5 (2-core Intel Xeon, medians of 60). Every
    index is in range: take's mode="clip" changes none, and spares the copy mode="raise" makes."""
    blended = np.empty_like(images)

    def blend_rows(out, rows, perm_rows):
        images.take(perm_rows, axis=0, out=out, mode="clip")
        out *= 1 - weight
        out += weight * rows

    in_row_blocks(blend_rows, blended, images, perm)
    return blended
