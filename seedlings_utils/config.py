"""Names and numbers the whole course agrees on: species, the real data set's shape, where things live."""

from __future__ import annotations

from . import __version__

#: The GitHub repository of this course (owner/name). The Colab buttons and the Colab install line in
#: every notebook are checked against it by ``tests/test_notebooks_lint.py``: change it here and in the
#: notebooks together (for example ``sed -i 's#old/name#new/name#g' notebooks/*.ipynb README.md``).
GITHUB_REPO = "seedlings-course/seedlings-course"
#: The release a learner's notebook comes from and installs: the git tag of this package's version, which
#: ``python -m tools.release tag`` creates (CONTRIBUTING.md, "Releasing"). The Colab and GitHub buttons open the
#: notebook at this tag, and its first cell installs the package at the same tag: a notebook and the code it
#: installs always match, whatever ``main`` holds later.
GITHUB_REF = f"v{__version__}"
REPO_URL = f"https://github.com/{GITHUB_REPO}"
#: What Colab runs to install this package (and nothing Colab already has).
COLAB_INSTALL = f"git+{REPO_URL}.git@{GITHUB_REF}"

#: The 12 species of the Kaggle "Plant Seedlings Classification" competition, in the order of their
#: folder names (``sorted()``), which is also the order of the integer class ids.
SPECIES: tuple[str, ...] = (
    "Black-grass",
    "Charlock",
    "Cleavers",
    "Common Chickweed",
    "Common wheat",
    "Fat Hen",
    "Loose Silky-bent",
    "Maize",
    "Scentless Mayweed",
    "Shepherds Purse",
    "Small-flowered Cranesbill",
    "Sugar beet",
)

#: Images per species in the real competition's ``train/`` folder (4,750 in all).
KAGGLE_TRAIN_COUNTS: dict[str, int] = {
    "Black-grass": 263,
    "Charlock": 390,
    "Cleavers": 287,
    "Common Chickweed": 611,
    "Common wheat": 221,
    "Fat Hen": 475,
    "Loose Silky-bent": 654,
    "Maize": 221,
    "Scentless Mayweed": 516,
    "Shepherds Purse": 231,
    "Small-flowered Cranesbill": 496,
    "Sugar beet": 385,
}
#: Unlabelled images in the real competition's ``test/`` folder.
KAGGLE_TEST_COUNT = 794

#: File endings read as images (compared in lower case): those both Pillow (lessons 05, 07) and TensorFlow's
#: ``tf.io.decode_image`` (lessons 08, 09) decode, so every lesson reads the same images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: Image files Pillow reads but ``tf.io.decode_image`` does not: lesson 02 leaves them out, saying why.
PILLOW_ONLY_EXTENSIONS = (".tif", ".tiff")
