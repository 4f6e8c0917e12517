"""Natural corruptions of image batches, five severities each (MNIST scale).

Every corruption is a plain function `(images, severity, seed) -> images`:
images are float arrays in [0, 1] of shape (N, H, W, C); the result has the
same shape and dtype, stays in [0, 1], and is the same for the same seed.
Severity runs from 1 (mild) to 5 (strong).

The first four use the MNIST-scaled parameters of the paper's code (in
`PARAMETERS`); the others follow MNIST-C (Mu and Gilmer, 2019),
with lengths scaled by the image size (parameters are given for 28 pixels).

Score (paper Eq. 6): the mean accuracy over the five severities.
"""

import math

import numpy as np
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)

# One table: the parameter of each corruption at severities 1..5.
PARAMETERS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper amount
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, max_delta, iterations
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor around the image mean
    "shot_noise": (60, 25, 12, 5, 3),  # photons per unit intensity
    "motion_blur": (3, 6, 9, 12, 15),  # blur length in pixels
    "translate": (2, 4, 6, 8, 10),  # shift in pixels
    "rotate": (10, 20, 30, 40, 50),  # degrees
    "shear": (0.1, 0.2, 0.3, 0.4, 0.5),  # shear factor
    "scale": (0.9, 0.8, 0.7, 0.6, 0.5),  # zoom factor (shrink)
    "fog": (0.15, 0.25, 0.35, 0.45, 0.55),  # fog intensity
    "dotted_line": (1, 2, 3, 4, 5),  # number of dotted lines
    "stripe": (2, 4, 6, 8, 10),  # width of an inverted stripe in pixels
}

NAMES = tuple(PARAMETERS)
PAPER_NAMES = ("gaussian_noise", "impulse_noise", "glass_blur", "contrast")


def image_shape_for(shape):
    """The (H, W, C) image shape behind a model input shape (flat inputs too)."""
    if len(shape) == 3:
        return shape
    if len(shape) == 1:
        size = shape[0]
        for channels in (1, 3):
            side = math.isqrt(size // channels)
            if side * side * channels == size:
                return (side, side, channels)
    raise ValueError(f"Cannot treat inputs of shape {shape} as images for the corruptions.")


def _check(images, severity):
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"Corruptions take image batches of shape (N, H, W, C); received shape "
            f"{images.shape}. Reshape flat inputs first, e.g. x.reshape(-1, 14, 14, 1)."
        )
    if severity not in SEVERITIES:
        raise ValueError(f"Invalid severity: {severity!r}. Expected one of {list(SEVERITIES)}.")
    return images.astype(np.float64)


def _finish(result, like):
    return np.clip(result, 0.0, 1.0).astype(np.asarray(like).dtype)


def _pixels(images, length):
    """Scales a length given for 28-pixel images to this image size."""
    return length * images.shape[1] / 28.0


def _param(name, severity):
    return PARAMETERS[name][severity - 1]


def gaussian_noise(images, severity, seed=0):
    """Corruption `gaussian_noise` at `severity` (1-5): adds N(0, s^2) noise to every pixel, s from `PARAMETERS`;
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    return _finish(x + rng.normal(0.0, _param("gaussian_noise", severity), x.shape), images)


def impulse_noise(images, severity, seed=0):
    """Corruption `impulse_noise` at `severity` (1-5): sets a share `amount` of the pixels to 0 or 1 (salt and pepper);
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=x.shape)
    amount = _param("impulse_noise", severity)
    x = np.where(u < amount / 2, 0.0, x)
    x = np.where(u > 1 - amount / 2, 1.0, x)
    return _finish(x, images)


def glass_blur(images, severity, seed=0):
    """Corruption `glass_blur` at `severity` (1-5): blurs, swaps pixels with random neighbours within `max_delta`, and
    blurs again; clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    sigma, delta, iterations = _param("glass_blur", severity)
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    blur = lambda t: ndimage.gaussian_filter(t, sigma=(0, sigma, sigma, 0))  # noqa: E731
    x = blur(x)
    n, height, width, _ = x.shape
    rows = np.arange(n)
    for _ in range(iterations):
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2, n))
                h2, w2 = h + dy, w + dx
                here, there = x[rows, h, w].copy(), x[rows, h2, w2].copy()
                x[rows, h, w], x[rows, h2, w2] = there, here
    return _finish(blur(x), images)


def contrast(images, severity, seed=0):
    """Corruption `contrast` at `severity` (1-5): scales each image's deviations from its mean by a factor below 1;
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _finish((x - mean) * _param("contrast", severity) + mean, images)


def shot_noise(images, severity, seed=0):
    """Corruption `shot_noise` at `severity` (1-5): Poisson noise: pixel values are photon counts / photons; clipped to
    [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    photons = _param("shot_noise", severity)
    return _finish(rng.poisson(x * photons) / photons, images)


def motion_blur(images, severity, seed=0):
    """Corruption `motion_blur` at `severity` (1-5): blurs along a line of random direction, its length scaled by the
    image size; clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    length = max(2, int(round(_pixels(x, _param("motion_blur", severity)))))
    out = np.empty_like(x)
    for i, angle in enumerate(rng.uniform(0, 180, len(x))):
        kernel = np.zeros((length * 2 + 1, length * 2 + 1))
        kernel[length, length:] = 1.0  # a line from the centre
        kernel = ndimage.rotate(kernel, angle, reshape=False, order=1)
        kernel /= kernel.sum()
        out[i, ..., 0] = ndimage.convolve(x[i, ..., 0], kernel, mode="constant")
        for c in range(1, x.shape[-1]):
            out[i, ..., c] = ndimage.convolve(x[i, ..., c], kernel, mode="constant")
    return _finish(out, images)


def _affine(x, matrices, offsets):
    out = np.empty_like(x)
    for i in range(len(x)):
        for c in range(x.shape[-1]):
            out[i, ..., c] = ndimage.affine_transform(x[i, ..., c], matrices[i], offsets[i], order=1, mode="constant")
    return out


def _about_centre(x, matrices):
    centre = (np.array(x.shape[1:3]) - 1) / 2.0
    return [centre - m @ centre for m in matrices]


def translate(images, severity, seed=0):
    """Corruption `translate` at `severity` (1-5): shifts each image in a random direction by a number of pixels;
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    shift = _pixels(x, _param("translate", severity))
    angles = rng.uniform(0, 2 * np.pi, len(x))
    offsets = [np.array([np.sin(a), np.cos(a)]) * shift for a in angles]
    return _finish(_affine(x, [np.eye(2)] * len(x), offsets), images)


def rotate(images, severity, seed=0):
    """Corruption `rotate` at `severity` (1-5): rotates each image about its centre, by the severity's angle in a random
    sense; clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    angles = np.deg2rad(_param("rotate", severity)) * rng.choice([-1.0, 1.0], len(x))
    matrices = [np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in angles]
    return _finish(_affine(x, matrices, _about_centre(x, matrices)), images)


def shear(images, severity, seed=0):
    """Corruption `shear` at `severity` (1-5): shears each image about its centre, by the severity's factor in a random
    sense; clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    factors = _param("shear", severity) * rng.choice([-1.0, 1.0], len(x))
    matrices = [np.array([[1.0, f], [0.0, 1.0]]) for f in factors]
    return _finish(_affine(x, matrices, _about_centre(x, matrices)), images)


def scale(images, severity, seed=0):
    """Corruption `scale` at `severity` (1-5): shrinks each image about its centre by the severity's zoom factor;
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    zoom = _param("scale", severity)
    matrices = [np.eye(2) / zoom] * len(x)
    return _finish(_affine(x, matrices, _about_centre(x, matrices)), images)


def fog(images, severity, seed=0):
    """Corruption `fog` at `severity` (1-5): adds a smooth random field (a 4 x 4 grid, cubic-interpolated); clipped to
    [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity)
    rng = np.random.default_rng(seed)
    n, height, width, channels = x.shape
    coarse = rng.uniform(size=(n, 4, 4, 1))
    field = ndimage.zoom(coarse, (1, height / 4, width / 4, 1), order=3)[:, :height, :width]
    intensity = _param("fog", severity)
    return _finish(x + intensity * field, images)


def dotted_line(images, severity, seed=0):
    """Corruption `dotted_line` at `severity` (1-5): draws the severity's number of dotted white lines between random
    points; clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity).copy()
    rng = np.random.default_rng(seed)
    n, height, width, _ = x.shape
    steps = np.linspace(0, 1, 2 * max(height, width))
    for i in range(n):
        for _ in range(_param("dotted_line", severity)):
            (r0, r1), (c0, c1) = rng.uniform(0, height - 1, 2), rng.uniform(0, width - 1, 2)
            rows = np.round(r0 + (r1 - r0) * steps).astype(int)[::3]
            cols = np.round(c0 + (c1 - c0) * steps).astype(int)[::3]
            x[i, rows, cols] = 1.0
    return _finish(x, images)


def stripe(images, severity, seed=0):
    """Corruption `stripe` at `severity` (1-5): inverts a vertical stripe of the severity's width at a random place;
    clipped to [0, 1]. Images (N, H, W, C), seeded by `seed`."""
    x = _check(images, severity).copy()
    rng = np.random.default_rng(seed)
    width = max(1, int(round(_pixels(x, _param("stripe", severity)))))
    starts = rng.integers(0, x.shape[2] - width + 1, len(x))
    for i, start in enumerate(starts):
        x[i, :, start : start + width] = 1.0 - x[i, :, start : start + width]
    return _finish(x, images)


CORRUPTIONS = {name: globals()[name] for name in NAMES}


def get(name):
    """Returns the corruption function called `name`."""
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption: {name!r}. Expected one of {list(NAMES)} (or 'all').")
    return CORRUPTIONS[name]


def parse_names(text):
    """Parses "all", "paper" or a comma-separated list into corruption names."""
    if text in (None, "", "none"):
        return ()
    if text == "all":
        return NAMES
    if text == "paper":
        return PAPER_NAMES
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        get(name)
    return names


def mean_over_severities(accuracies):
    """Paper Eq. 6: the score of one corruption is its mean accuracy over severities."""
    return float(np.mean(accuracies))
