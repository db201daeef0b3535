"""Class names of the benchmark data sets, as their publishers list them."""

from __future__ import annotations

__all__ = ["CIFAR10_CLASSES", "DIGIT_CLASSES", "FASHION_MNIST_CLASSES", "LOCATION_CLASSES"]

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# The Location classes are location profiles with no published names: indices it is.
LOCATION_CLASSES: tuple[str, ...] = tuple(str(c) for c in range(30))
