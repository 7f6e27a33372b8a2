"""Lesson 08's exercise checks: each typical wrong answer is rejected with a message naming its mistake."""

from __future__ import annotations

import json
import textwrap

from seedlings_utils.exercises import CORRECT
from seedlings_utils.exercises import lesson08 as ex

from .helpers import REPO, rejected

HEADER = """
import tensorflow as tf

from seedlings_utils.tfdata import AUTOTUNE, decode_and_resize

decode = lambda image_size: lambda path, label: (decode_and_resize(path, image_size), label)
scale = lambda images, label: (tf.cast(images, tf.float32) / 255.0, label)
"""


def answer(source: str, name: str):
    """The function ``name`` that ``source`` (after the common imports) defines."""
    namespace: dict = {}
    exec(textwrap.dedent(HEADER) + textwrap.dedent(source), namespace)
    return namespace[name]


def bounded(body: str):
    """A ``bounded_pipeline`` whose body is ``body`` (``ds`` starts as the (path, label) pairs)."""
    return answer("def bounded_pipeline(paths, labels, image_size, batch_size, seed):\n"
                  "    ds = tf.data.Dataset.from_tensor_slices((paths, labels))\n"
                  + textwrap.indent(textwrap.dedent(body), "    "), "bounded_pipeline")


def cached(body: str):
    return answer("def cached_pipeline(paths, labels, image_size, batch_size, seed, cache_file):\n"
                  "    ds = tf.data.Dataset.from_tensor_slices((paths, labels))\n"
                  + textwrap.indent(textwrap.dedent(body), "    "), "cached_pipeline")


# ---- Exercise 1: bounded memory ---------------------------------------------------------------------------

LEAKY = """
ds = ds.map(decode(image_size), num_parallel_calls=AUTOTUNE)
ds = ds.cache()
ds = ds.shuffle(len(paths), seed=seed)
ds = ds.map(scale)
return ds.batch(batch_size).prefetch(AUTOTUNE)
"""


def test_q1_the_leaky_pipeline_of_the_lesson_is_rejected_for_its_memory_cache():
    rejected(ex.q1, bounded(LEAKY), "`.cache()` without a file name", "in memory", "4.9 GB")


def test_q1_a_shuffle_of_decoded_images_as_big_as_the_data_set_is_rejected():
    wrong = bounded(LEAKY.replace("ds = ds.cache()\n", ""))
    rejected(ex.q1, wrong, "holds up to 20,000 decoded images", "more than a few batches (4 batches of 5 = 20 images)",
             "Shuffle the file names")


def test_q1_a_shuffle_of_batches_counts_every_image_in_them():
    wrong = bounded("""
    ds = ds.map(decode(image_size), num_parallel_calls=AUTOTUNE).map(scale).batch(batch_size)
    return ds.shuffle(1000, seed=seed)  # 1,000 batches of 5 images: 5,000 images
    """)
    rejected(ex.q1, wrong, "a shuffle buffer of 1,000 (after batch: each element a batch) holds up to 5,000 decoded")


def test_q1_only_a_small_buffer_of_images_is_not_a_shuffle_of_the_names():
    wrong = bounded("""
    ds = ds.map(decode(image_size), num_parallel_calls=AUTOTUNE).shuffle(16, seed=seed)
    return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """)
    rejected(ex.q1, wrong, "only decoded images are shuffled (a buffer of 16)", "Shuffle the file names")


def test_q1_names_shuffled_and_a_buffer_of_decoded_images_beyond_a_few_batches():
    wrong = bounded("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size), num_parallel_calls=AUTOTUNE).shuffle(64)
    return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """)
    rejected(ex.q1, wrong, "a shuffle buffer of 64 (before batch) holds up to 64 decoded images",
             "more than a few batches (4 batches of 5 = 20 images)")


def test_q1_a_prefetch_of_every_image_after_decoding_is_refused():
    """The issue's case: the names shuffled right, then `.prefetch(len(paths))`, which holds every image."""
    for where in ("ds = ds.prefetch(len(paths)).batch(batch_size)", "ds = ds.batch(batch_size).prefetch(len(paths))"):
        wrong = bounded(f"""
        ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size), num_parallel_calls=AUTOTUNE)
        {where}
        return ds.map(scale)
        """)
        rejected(ex.q1, wrong, "after decoding, prefetch(", "more than a few batches",
                 "Leave it to tf.data: `AUTOTUNE`, or a few batches at most")


def test_q1_a_prefetch_of_a_few_batches_and_autotune_are_accepted():
    for last in ("prefetch(2)", "prefetch(AUTOTUNE)"):
        right = bounded(f"""
        ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size), num_parallel_calls=AUTOTUNE)
        return ds.batch(batch_size).map(scale).{last}
        """)
        assert ex.q1.evaluate(right).status == CORRECT, ex.q1.evaluate(right)


def test_q1_as_many_parallel_calls_as_images_keep_them_all_in_flight():
    wrong = bounded("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size), num_parallel_calls=len(paths))
    return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """)
    rejected(ex.q1, wrong, "num_parallel_calls=20,000", "holds up to 20,000 decoded images")


def test_q1_no_shuffle_at_all():
    wrong = bounded("return ds.map(decode(image_size)).batch(batch_size).map(scale)\n")
    rejected(ex.q1, wrong, "nothing shuffles")


def test_q1_names_shuffled_in_a_small_buffer():
    wrong = bounded("""
    ds = ds.shuffle(100, seed=seed).map(decode(image_size), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """)
    rejected(ex.q1, wrong, "a buffer of 100 for 20,000 names", "len(paths)")


def test_q1_the_lessons_permutation_of_positions_is_accepted_and_a_fixed_one_rejected():
    """shuffled_order (lesson 08's going deeper) shuffles all the names with no buffer: right; one drawn once is not."""
    source = """
    def bounded_pipeline(paths, labels, image_size, batch_size, seed):
        from seedlings_utils.tfdata import shuffled_order
        paths, labels = tf.constant(paths), tf.constant(labels)
        order = shuffled_order(len(paths), seed) if EVERY_EPOCH else shuffled_order(len(paths), seed).cache()
        ds = order.map(lambda i: (decode_and_resize(paths[i], image_size), labels[i]), num_parallel_calls=AUTOTUNE)
        return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """
    assert ex.q1.evaluate(answer("EVERY_EPOCH = True\n" + textwrap.dedent(source), "bounded_pipeline")).status \
        == CORRECT
    once = answer("EVERY_EPOCH = False\n" + textwrap.dedent(source), "bounded_pipeline")
    rejected(ex.q1, once, "same order")


def test_q1_names_shuffled_once_for_all_epochs():
    wrong = bounded("""
    ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=False).map(decode(image_size))
    return ds.batch(batch_size).map(scale)
    """)
    rejected(ex.q1, wrong, "reshuffle_each_iteration=False", "same order")


def test_q1_scaled_twice_and_not_scaled():
    twice = bounded("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).map(scale).map(scale)
    return ds.batch(batch_size)
    """)
    rejected(ex.q1, twice, "divided by 255 twice")
    never = bounded("return ds.shuffle(len(paths), seed=seed).map(decode(image_size)).batch(batch_size)\n")
    rejected(ex.q1, never, "uint8", "float32")


def test_q1_dropping_the_last_partial_batch_and_not_decoding():
    dropped = bounded("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).map(scale)
    return ds.batch(batch_size, drop_remainder=True)
    """)
    rejected(ex.q1, dropped, "batches of [5, 5, 2]", "[5, 5]")
    rejected(ex.q1, bounded("return ds.batch(batch_size)\n"), "no step of `bounded_pipeline` reads and decodes")


def test_q1_not_a_dataset():
    rejected(ex.q1, bounded("return list(ds)\n"), "returned list, not a tf.data.Dataset")


# ---- Exercise 2: labels with their images ----------------------------------------------------------------

ZIPPED = """
def labelled_images(paths, labels, image_size):
    images = tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: decode_and_resize(path, image_size), num_parallel_calls=AUTOTUNE, deterministic=False)
    return tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(labels)))
"""


def test_q2_the_zipped_pipeline_is_rejected_even_when_it_happens_to_pair_right():
    message = rejected(ex.q2, answer(ZIPPED, "labelled_images"), "two datasets, zipped after the decoding map")
    assert "(path, label) pairs" in message
    in_order = ZIPPED.replace("deterministic=False", "deterministic=True")  # pairs right, still the wrong design
    rejected(ex.q2, answer(in_order, "labelled_images"), "zipped after the decoding map")


def test_q2_zipping_names_and_labels_before_decoding_is_right():
    right = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(paths),
                                     tf.data.Dataset.from_tensor_slices(labels)))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False)
    """, "labelled_images")
    assert ex.q2.evaluate(right).status == CORRECT


def test_q2_giving_up_unordered_parallel_decoding_is_not_the_fix():
    ordered = answer("""
    def labelled_images(paths, labels, image_size):
        return tf.data.Dataset.from_tensor_slices((paths, labels)).map(decode(image_size))
    """, "labelled_images")
    rejected(ex.q2, ordered, "parallel and unordered", "one at a time")


def test_q2_labels_shuffled_apart_from_their_images():
    wrong = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.from_tensor_slices((paths, labels[::-1].copy()))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False)
    """, "labelled_images")
    rejected(ex.q2, wrong, "came with another image's label")


def test_q2_batched_or_scaled_elements():
    batched = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.from_tensor_slices((paths, labels))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False).batch(4)
    """, "labelled_images")
    rejected(ex.q2, batched, "not batched")
    scaled = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.from_tensor_slices((paths, labels))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False).map(scale)
    """, "labelled_images")
    rejected(ex.q2, scaled, "should stay uint8")


# ---- Exercise 3: a cache file, still shuffled -------------------------------------------------------------

def test_q3_a_cache_in_memory_or_in_another_file():
    rejected(ex.q3, cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).cache().shuffle(1000, seed=seed)
    return ds.batch(batch_size).map(scale)
    """), "without a file name", "pass it `cache_file`")
    rejected(ex.q3, cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).cache("elsewhere").shuffle(1000, seed=seed)
    return ds.batch(batch_size).map(scale)
    """), "writes to 'elsewhere', not to `cache_file`")
    rejected(ex.q3, cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size))
    return ds.batch(batch_size).map(scale)
    """), "no `.cache(cache_file)`")


def test_q3_the_cache_before_decoding_stores_names():
    wrong = cached("""
    ds = ds.shuffle(len(paths), seed=seed).cache(cache_file).map(decode(image_size))
    return ds.shuffle(1000, seed=seed).batch(batch_size).map(scale)
    """)
    rejected(ex.q3, wrong, "before decoding", "only file names")


def test_q3_shuffle_before_the_cache_only_freezes_the_order():
    wrong = cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).cache(cache_file)
    return ds.batch(batch_size).map(scale)
    """)
    rejected(ex.q3, wrong, "nothing shuffles after the cache", "same order")


def test_q3_a_shuffle_after_the_cache_as_big_as_the_data_set():
    wrong = cached("""
    ds = ds.map(decode(image_size)).cache(cache_file).shuffle(len(paths), seed=seed)
    return ds.batch(batch_size).map(scale)
    """)
    rejected(ex.q3, wrong, "after the cache holds 20,000 decoded images", "1,000 at most")


def test_q3_a_bounded_shuffle_over_files_in_their_order():
    wrong = cached("""
    ds = ds.map(decode(image_size)).cache(cache_file).shuffle(1000, seed=seed)
    return ds.batch(batch_size).map(scale)
    """)
    rejected(ex.q3, wrong, "only decoded images are shuffled", "the cache keeps the first epoch's order")


def test_q3_a_prefetch_of_every_image_or_a_big_buffer_before_the_cache():
    rejected(ex.q3, cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).cache(cache_file).shuffle(1000, seed=seed)
    return ds.prefetch(len(paths)).batch(batch_size).map(scale)
    """), "prefetch(20,000)", "more than a few batches")
    rejected(ex.q3, cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).shuffle(500).cache(cache_file)
    return ds.shuffle(1000, seed=seed).batch(batch_size).map(scale)
    """), "a shuffle buffer of 500", "more than a few batches")


def test_q3_caching_batches():
    wrong = cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).batch(batch_size).cache(cache_file)
    return ds.shuffle(100, seed=seed).map(scale)
    """)
    rejected(ex.q3, wrong, "holds whole batches")


def test_q3_no_reshuffle_after_the_cache():
    wrong = cached("""
    ds = ds.shuffle(len(paths), seed=seed).map(decode(image_size)).cache(cache_file)
    ds = ds.shuffle(1000, seed=seed, reshuffle_each_iteration=False)
    return ds.batch(batch_size).map(scale)
    """)
    rejected(ex.q3, wrong, "reshuffle_each_iteration=False", "replays the same order")


# ---- The notebook's broken examples -----------------------------------------------------------------------

def test_the_exercises_leaky_and_zipped_code_is_what_the_tests_reject():
    """The broken code shown in the notebook is the broken code these tests reject."""
    notebook = (REPO / "notebooks" / "08_the_same_job_with_tf_data.ipynb").read_text()
    text = "".join("".join(c["source"]) for c in json.loads(notebook)["cells"])
    assert "ds = ds.cache()\n    ds = ds.shuffle(len(paths), seed=seed)" in text
    shown = text.split("def leaky_pipeline", 1)[1].split("```", 1)[0]
    leaky = answer("def leaky_pipeline" + shown, "leaky_pipeline")
    rejected(ex.q1, leaky, "`.cache()` without a file name")
    zipped = "def labelled_images" + text.split("def labelled_images", 1)[1].split("```", 1)[0]
    rejected(ex.q2, answer(zipped, "labelled_images"), "zipped after the decoding map")


# ---- Answers that hold the data set in memory, in any form ------------------------------------------------

def test_images_decoded_before_the_pipeline_are_the_whole_data_set_in_memory():
    q1 = answer("""
    def bounded_pipeline(paths, labels, image_size, batch_size, seed):
        images = tf.stack([decode_and_resize(p, image_size) for p in paths[:12]])  # every image, decoded up front
        ds = tf.data.Dataset.from_tensor_slices((images, labels[:12])).shuffle(12, seed=seed)
        return ds.batch(batch_size).map(scale).prefetch(AUTOTUNE)
    """, "bounded_pipeline")
    rejected(ex.q1, q1, "decoded before the pipeline", "held in memory")
    q2 = answer("""
    def labelled_images(paths, labels, image_size):
        images = [decode_and_resize(p, image_size) for p in paths]
        return tf.data.Dataset.from_tensor_slices((tf.stack(images), labels))
    """, "labelled_images")
    rejected(ex.q2, q2, "decoded before the pipeline", "held in memory")


def test_q2_a_prefetch_of_every_image_is_refused():
    wrong = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.from_tensor_slices((paths, labels))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False).prefetch(len(paths))
    """, "labelled_images")
    rejected(ex.q2, wrong, "prefetch(20,000)", "more than a few batches")


def test_q2_a_cache_in_memory_is_refused():
    cached_in_memory = answer("""
    def labelled_images(paths, labels, image_size):
        pairs = tf.data.Dataset.from_tensor_slices((paths, labels))
        return pairs.map(decode(image_size), num_parallel_calls=AUTOTUNE, deterministic=False).cache()
    """, "labelled_images")
    rejected(ex.q2, cached_in_memory, "`.cache()` without a file name", "in memory")


def test_the_solutions_use_the_lessons_own_chain():
    """Lesson 08 teaches shuffle(len(paths)) before the decoding map and prefetch(AUTOTUNE): its solutions too."""
    for q in (ex.q1, ex.q3):
        assert "shuffle(len(paths)" in q.solution_code and "prefetch(AUTOTUNE)" in q.solution_code


# ---- Exercise 4: a new file format ------------------------------------------------------------------------

RAW = """
import numpy as np


def raw_pipeline(paths, labels, image_size, batch_size, seed):
    def load(path, label):
        image = tf.reshape(tf.io.decode_raw(tf.io.read_file(path), tf.uint8), (image_size, image_size, 3))
        return tf.cast(image, tf.float32) / 255.0, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    {body}
"""


def raw(body: str):
    return answer(RAW.replace("{body}", textwrap.indent(textwrap.dedent(body), "    ").strip()), "raw_pipeline")


def test_q4_the_chain_for_raw_files_is_right():
    assert ex.q4.evaluate(raw("""
    ds = ds.shuffle(len(paths), seed=seed).map(load, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
    """)).status == CORRECT


def test_q4_every_file_read_up_front_holds_the_data_set():
    up_front = answer("""
    import numpy as np


    def raw_pipeline(paths, labels, image_size, batch_size, seed):
        images = np.stack([np.fromfile(p, np.uint8).reshape(image_size, image_size, 3) for p in paths[:12]])
        ds = tf.data.Dataset.from_tensor_slices((images, labels[:12])).shuffle(12, seed=seed)
        return ds.batch(batch_size).map(scale)
    """, "raw_pipeline")
    rejected(ex.q4, up_front, "decoded before the pipeline", "held in memory")


def test_q4_a_shuffle_after_reading_holds_every_image():
    rejected(ex.q4, raw("""
    ds = ds.map(load, num_parallel_calls=AUTOTUNE).shuffle(len(paths), seed=seed)
    return ds.batch(batch_size)
    """), "holds up to 20,000 decoded images")


def test_q4_a_prefetch_of_every_image():
    rejected(ex.q4, raw("""
    ds = ds.shuffle(len(paths), seed=seed).map(load, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(len(paths)).batch(batch_size)
    """), "prefetch(20,000)", "holds up to 20,000 decoded images")


def test_q4_an_in_memory_cache_of_the_raw_images():
    rejected(ex.q4, raw("""
    ds = ds.shuffle(len(paths), seed=seed).map(load, num_parallel_calls=AUTOTUNE).cache()
    return ds.batch(batch_size)
    """), "`.cache()` without a file name", "in memory")
