"""Cost of decoding every image of a folder once before training.

`load_image_data` decodes each file of an image folder up front, so a file
corrupt in its middle is named before training instead of stopping it with
a graph error (`recipes.data.decode_check`). This script writes 1,000 real
photographs' crops (scikit-learn's two sample images, 64x64 and 224x224,
as JPEG and PNG) to a temporary folder and prints, measured in this run:

1. the seconds the up-front check takes per 1,000 images;
2. that time as a ratio to one pass of Keras's own pipeline over the same
   folder (`image_dataset_from_directory`, decode + resize), i.e. what the
   check adds to the cost of the first epoch's reading.

Usage: python benchmarks/bench_image_check.py [--images 1000]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_sample_images  # noqa: E402

from recipes.data import decode_check  # noqa: E402


def write_folder(root, count, size, extension):
    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - size)
        left = rng.integers(0, photo.shape[1] - size)
        crop = photo[top:top + size, left:left + size]
        folder = os.path.join(root, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{i}.{extension}")
        keras.utils.save_img(path, crop, scale=False)
        files.append(path)
    return files


def one_pass(root, size):
    dataset = keras.utils.image_dataset_from_directory(
        root, image_size=(size, size), batch_size=None, shuffle=False,
        verbose=False)
    start = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    count = parser.parse_args().images
    print(f"{'images':>16} {'check s/1000':>13} {'keras pass s':>13} "
          f"{'ratio':>6}")
    for size in (64, 224):
        for extension in ("jpg", "png"):
            with tempfile.TemporaryDirectory() as root:
                files = write_folder(root, count, size, extension)
                start = time.perf_counter()
                decode_check(files, "data")
                check = time.perf_counter() - start
                reading = one_pass(root, size)
                print(f"{size}x{size} {extension:>4} {count:>5} "
                      f"{check / count * 1000:13.2f} {reading:13.2f} "
                      f"{check / reading:6.2f}")


if __name__ == "__main__":
    main()
