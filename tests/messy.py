"""A messy Kaggle-layout tree with one example of every kind of trouble real folders hold, and the truth about it."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from PIL import Image

from seedlings_utils.synthetic import make_synthetic_seedlings

EMPTY_FOLDER = "train/Cornflower/"  # a species folder with no image at all


def _png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def make_messy_tree(root: Path, per_class: int = 10, seed: int = 3) -> dict[str, str | None]:
    """Build the tree under ``root`` and return ``{path relative to root: species, or None if it must be skipped}``.

    Test files map to ``"test"`` (usable) or ``None``. ``EMPTY_FOLDER`` is not in the dict: it is a folder.
    """
    make_synthetic_seedlings(root, per_class=per_class, seed=seed, progress=False)
    truth: dict[str, str | None] = {}
    for path in sorted((root / "train").rglob("*.png")):
        truth[path.relative_to(root).as_posix()] = path.parent.name
    for path in sorted((root / "test").glob("*.png")):
        truth[path.relative_to(root).as_posix()] = "test"

    def sample(species: str, k: int = 0) -> Image.Image:
        with Image.open(sorted((root / "train" / species).glob("*.png"))[k]) as img:
            return img.convert("RGB")

    def add(relative: str, content: bytes, species: str | None) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        truth[relative] = species

    rng = random.Random(seed)
    good = _png(sample("Charlock"))
    # files that cannot be used
    add("train/Maize/broken.png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(500), None)
    add("train/Charlock/truncated.png", good[: len(good) // 2], None)
    add("train/Fat Hen/empty.png", b"", None)
    add("train/Shepherds Purse/not really.png", b"just some text", None)
    add("train/.DS_Store", rng.randbytes(64), None)
    add("train/README.txt", b"Plant seedlings\n", None)
    add("train/Sugar beet/Thumbs.db", rng.randbytes(64), None)
    add("train/Cleavers/notes.txt", b"to do\n", None)
    add("train/Cleavers/._resource_fork.png", rng.randbytes(64), None)
    add("train/Maize/.ipynb_checkpoints/copy.png", _png(sample("Maize")), None)
    add("train/.hidden/elsewhere.png", good, None)
    (root / EMPTY_FOLDER).mkdir(parents=True)
    add("test/corrupt.png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(300), None)
    add("test/.DS_Store", rng.randbytes(64), None)
    # images that must be used, each with its species
    add("train/Charlock/batch 2/nested.png", _png(sample("Charlock", 1)), "Charlock")
    add("train/Maize/UPPER.PNG", _png(sample("Maize", 1)), "Maize")
    jpeg = io.BytesIO()
    sample("Maize", 2).save(jpeg, format="JPEG", quality=90)
    add("train/Maize/photo.jpg", jpeg.getvalue(), "Maize")
    add("train/Maize/photo2.JPEG", jpeg.getvalue(), "Maize")
    cleavers = sample("Cleavers", 1)
    add("train/Cleavers/gray.png", _png(cleavers.convert("L")), "Cleavers")
    add("train/Cleavers/palette.png", _png(cleavers.convert("P", palette=Image.Palette.ADAPTIVE)), "Cleavers")
    deep = Image.fromarray(np.asarray(cleavers.convert("L"), dtype=np.uint16) * 257)  # a 16-bit grayscale PNG
    add("train/Cleavers/deep16.png", _png(deep), "Cleavers")
    add("train/Cleavers/alpha.png", _png(cleavers.convert("RGBA")), "Cleavers")
    add("train/Sugar beet/tiny.png", _png(sample("Sugar beet").resize((3, 2))), "Sugar beet")
    add("train/Sugar beet/huge.png", _png(sample("Sugar beet", 1).resize((4000, 3000)), compress_level=1), "Sugar beet")
    add("train/Charlock/dup.png", _png(sample("Charlock", 2)), "Charlock")
    add("train/Maize/dup.png", _png(sample("Maize", 3)), "Maize")
    add("train/Common wheat/blé d'hiver ü.png", _png(sample("Common wheat")), "Common wheat")
    add("train/sugar  BEET/variant.png", _png(sample("Sugar beet", 2)), "Sugar beet")
    return truth
