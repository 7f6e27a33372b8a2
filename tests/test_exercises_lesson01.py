"""Lesson 01's exercises reject the typical wrong answers, each with its own diagnosis."""


import pytest

from seedlings_utils.exercises import lesson01 as ex

from .helpers import define, rejected

HEADER = "import math\n\nimport numpy as np\nfrom PIL import Image\n"


Q1_WRONG = {
    "builds the images to measure them": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            side = 1
            while np.zeros((count, side + 1, side + 1, channels), dtype=dtype).nbytes <= budget_bytes:
                side += 1
            return side
        ''', "MB in memory: your code built the images"),
    "no channels": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            return math.isqrt(budget_bytes // (count * np.dtype(dtype).itemsize))
        ''', "you left out the channels"),
    "no bytes per value": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            return math.isqrt(budget_bytes // (count * channels))
        ''', "you left out the bytes per value: one float32 value takes 4 bytes"),
    "rounds up": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            return math.ceil(math.sqrt(budget_bytes / (count * channels * np.dtype(dtype).itemsize)))
        ''', "round down"),
    "strictly below the budget": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            side = 0
            while count * (side + 1) ** 2 * channels * np.dtype(dtype).itemsize < budget_bytes:
                side += 1
            return side
        ''', "'fits' means at most the budget (<=)"),
    "bits for bytes": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            return math.isqrt(budget_bytes // (count * channels * np.dtype(dtype).itemsize * 8))
        ''', "a byte is 8 bits"),
    "a float": ('''
        def largest_side(count, budget_bytes, channels, dtype):
            return math.sqrt(budget_bytes / (count * channels * np.dtype(dtype).itemsize))
        ''', "return a whole number of pixels"),
}


@pytest.mark.parametrize("mistake", list(Q1_WRONG))
def test_q1_rejects_typical_mistakes(mistake):
    source, phrase = Q1_WRONG[mistake]
    rejected(ex.q1, define(source, "largest_side", HEADER), phrase)


Q2_WRONG = {
    "decodes every image": ('''
        def decoded_bytes(paths):
            return sum(np.asarray(Image.open(p).convert("RGB")).nbytes for p in paths)
        ''', "your code decoded the images"),
    "decodes to read the mode": ('''
        def decoded_bytes(paths):
            total = 0
            for p in paths:
                with Image.open(p) as image:
                    image.load()
                    total += image.width * image.height * 3
            return total
        ''', "your code decoded the images"),
    "holds every file": ('''
        def decoded_bytes(paths):
            files = [open(p, "rb").read() for p in paths]
            total = 0
            for p in paths:
                with Image.open(p) as image:
                    total += image.width * image.height * 3
            return total
        ''', "kept every image (or its file's bytes) in memory"),
    "file sizes": ('''
        import os

        def decoded_bytes(paths):
            return sum(os.path.getsize(p) for p in paths)
        ''', "the files' size on disk: PNG is compressed"),
    "the file's own channels": ('''
        def decoded_bytes(paths):
            total = 0
            for p in paths:
                with Image.open(p) as image:
                    total += image.width * image.height * len(image.getbands())
            return total
        ''', "counts each file's own channels"),
    "one size for all": ('''
        def decoded_bytes(paths):
            with Image.open(paths[0]) as image:
                width, height = image.size
            return len(paths) * width * height * 3
        ''', "the images differ in size"),
    "megabytes as a float": ('''
        def decoded_bytes(paths):
            total = 0
            for p in paths:
                with Image.open(p) as image:
                    total += image.width * image.height * 3
            return total / 1e6
        ''', "return the number of bytes, an int"),
}


@pytest.mark.parametrize("mistake", list(Q2_WRONG))
def test_q2_rejects_typical_mistakes(mistake):
    source, phrase = Q2_WRONG[mistake]
    rejected(ex.q2, define(source, "decoded_bytes", HEADER), phrase)
