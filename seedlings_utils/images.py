"""Opening one image file, whatever its kind (with errors that name it), and saying why a file cannot be used."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .config import IMAGE_EXTENSIONS, PILLOW_ONLY_EXTENSIONS


def has_image_extension(path: str | Path) -> bool:
    """True when the file's ending (any case: ``.PNG``, ``.Jpeg``) is one the course reads as an image."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB, oriented as the camera meant it.

    - EXIF orientation (phone photos) is applied, so the picture is upright;
    - 16-bit and 32-bit grayscale (``I;16``, ``I``) are scaled down to 8 bits, not clipped to white;
    - palette images go through RGBA first, so a transparent palette colour does not warn or go wrong;
    - RGBA, LA, grayscale and CMYK become RGB (the alpha channel is dropped).
    """
    img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        array = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or array.max() > 255 else 255.0
        img = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif img.mode == "P":
        img = img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def why_unusable(path: str | Path, decode: bool = True) -> str | None:
    """``None`` when ``path`` is an image the course can use, else the reason in a few words.

    With ``decode`` the whole image is decoded (a truncated PNG often opens fine and fails only when its
    pixels are read); without, only the file's ending and size are looked at (fast, for a first look).
    """
    path = Path(path)
    if path.suffix.lower() in PILLOW_ONLY_EXTENSIONS:
        return (f"a {path.suffix} (TIFF) image: Pillow reads it, TensorFlow's tf.io.decode_image (lesson 08) does not; "
                "save it as PNG to use it")
    if not has_image_extension(path):
        return f"not an image file (ending {path.suffix or 'none'!r})"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    if not decode:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                if img.width < 1 or img.height < 1:
                    return "image has no pixels"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return f"too large to decode safely ({err})"
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError, struct.error ... for bad files
        kind = "not an image" if isinstance(err, Image.UnidentifiedImageError) else "corrupt or truncated image"
        return f"{kind} ({type(err).__name__}: {err})"
    return None


def read_image_sizes(paths) -> tuple[list[tuple[int, int]], int]:
    """``([(width, height), ...], unreadable count)``, from the file headers only (fast: nothing is decoded)."""
    sizes, unreadable = [], 0
    for path in paths:
        try:
            with Image.open(path) as img:
                sizes.append(img.size)
        except Exception:  # corrupt, truncated, not an image: any Pillow error
            unreadable += 1
    return sizes, unreadable


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` as a context manager whose errors name the file and say what to do.

    Pillow reads only the header on ``open``; the pixels are decoded later, inside the ``with`` block, so
    errors raised there (a truncated PNG) are caught too. A file that cannot be read (say it went bad
    after lesson 02 checked it) raises ``OSError`` naming it, instead of a bare decoder error deep inside
    ``model.fit``.
    """
    try:
        with Image.open(path) as img:
            yield img
    except FileNotFoundError as err:
        raise OSError(f"Image {path} is missing: it was there when lesson 03 indexed it. Re-run lessons 02-04 "
                      "to rebuild all_images/ and the index.") from err
    except Exception as err:  # Pillow raises OSError, ValueError, SyntaxError ... for bad files
        raise OSError(f"Could not read image {path}: {type(err).__name__}: {err}. It was readable when lesson 02 "
                      "checked it: run lesson 02 again, which decodes every image anew and replaces a damaged copy (or "
                      "skips an unreadable original); the later lessons then bring the index and split up to date."
                      ) from err
