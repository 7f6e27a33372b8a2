"""Lesson 10's exercises: shards as contiguous blocks; a 2-D device mesh that splits the model within each host and
the batch across hosts (``ModelParallel``, a layout the lesson does not show); a ``PyDataset`` over a block that
gives every process the same number of steps."""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import Exercise, Incorrect, image_number, tiny_image_folder
from .loader_checks import held_by, noise_png

#: (images, processes) the shard check tries: even and odd splits, more processes than a remainder, and
#: fewer images than processes (some shards are then empty, which must still be an even split).
SPLITS = ((10, 2), (11, 2), (10, 4), (9, 4), (3, 4))


def _shards(block_shard, count: int, processes: int) -> list[tuple[list[int], list[int]]]:
    """Call the learner's function for every process; image ``i`` is ``img_00i.png`` with label ``100 + i``."""
    names = np.array([f"img_{i:03d}.png" for i in range(count)])
    labels = np.arange(count) + 100
    out = []
    for p in range(processes):
        result = block_shard(names, labels, p, processes)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect(f"block_shard returned {type(result).__name__}; return a pair (names, labels), as "
                            "process_shard does")
        shard_names, shard_labels = (np.asarray(part).tolist() for part in result)
        if len(shard_names) != len(shard_labels):
            raise Incorrect(f"process {p} of {processes} got {len(shard_names)} names but {len(shard_labels)} "
                            "labels: cut both arrays with the same slice")
        numbers = []
        for name in shard_names:
            if not (isinstance(name, str) and name.startswith("img_")):
                raise Incorrect(f"process {p}'s names contain {name!r}, which is not one of the file names given")
            numbers.append(int(name[4:7]))
        if [label - 100 for label in shard_labels] != numbers:
            raise Incorrect(f"process {p} of {processes} got names {shard_names} but labels {shard_labels}: each "
                            "label must stay with its own image (labels[i] belongs to filenames[i])")
        out.append((numbers, shard_labels))
    return out


def _check_block_shard(block_shard) -> str:
    for count, processes in SPLITS:
        numbers = [n for n, _ in _shards(block_shard, count, processes)]
        where: dict[int, list[int]] = {}
        for p, shard in enumerate(numbers):
            for n in shard:
                where.setdefault(n, []).append(p)
        twice = {n: ps for n, ps in where.items() if len(ps) > 1}
        if twice:
            n, ps = next(iter(sorted(twice.items())))
            raise Incorrect(f"with {count} images and {processes} processes, image {n} is in the shards of processes "
                            f"{ps}: the blocks overlap, so that image is trained on twice per epoch. Process p's block "
                            "must end exactly where process p + 1's starts")
        missing = sorted(set(range(count)) - set(where))
        if missing:
            raise Incorrect(f"with {count} images and {processes} processes, images {missing} are in no shard: "
                            f"{len(missing)} of {count} never reach training. A block size of count // processes "
                            "drops the remainder; put the boundaries at process_id * count // num_processes instead")
        sizes = [len(shard) for shard in numbers]
        if max(sizes) - min(sizes) > 1:
            raise Incorrect(f"with {count} images and {processes} processes the shards hold {sizes} images: they must "
                            "differ by at most one, or one process needs more batches than the others and waits "
                            "forever for them at its last step. Spread the remainder: boundaries at "
                            "process_id * count // num_processes")
        for p, shard in enumerate(numbers):
            if shard and shard != list(range(shard[0], shard[0] + len(shard))):
                raise Incorrect(f"process {p} of {processes} got images {shard}: that is not one block of consecutive "
                                "images in their order (the lesson's process_shard takes every n-th image; this "
                                "exercise wants filenames[start:end])")
        if [shard[0] for shard in numbers if shard] != sorted(shard[0] for shard in numbers if shard):
            raise Incorrect(f"with {count} images and {processes} processes the blocks are not in process order: "
                            "process 0 should get the first block, process 1 the next, and so on")
    return ("every split covers each image exactly once, in blocks of consecutive images whose sizes differ by at "
            "most one (also with more processes than images).")


q1 = Exercise(
    name="q1",
    task="Write block_shard(filenames, labels, process_id, num_processes): one contiguous block per process.",
    checker=_check_block_shard,
    hint_text=("Process p's block is filenames[start:end] with start = p * n // num_processes and "
               "end = (p + 1) * n // num_processes, n = len(filenames): integer division spreads the remainder, "
               "the end of one block is the start of the next, and the last block ends at n. Cut labels the same way."),
    solution_code='''
def block_shard(filenames, labels, process_id, num_processes):
    n = len(filenames)
    start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes
    return filenames[start:end], labels[start:end]
''',
    answer_name="block_shard",
)


#: (processes, devices per process, global batch) the mesh check tries: the exercise's cluster, a batch that splits
#: over the hosts but not over all 8 GPUs (fine: a host's GPUs all see its images), more hosts with fewer devices
#: each, and hosts of one device (the model axis is then 1 long).
CLUSTERS = ((2, 4, 256), (2, 4, 36), (4, 2, 64), (3, 1, 48))
#: (processes, devices per process, global batch) whose batch cannot be split over the hosts.
UNEVEN = ((2, 4, 37), (3, 2, 64))
#: Variable paths of a small CNN with a dense head, as Keras names them.
DENSE_KERNEL, DENSE_BIAS, CONV_KERNEL = "sequential/dense/kernel", "sequential/dense/bias", "sequential/conv2d/kernel"


def _devices(processes: int, per_process: int) -> list[str]:
    """What ``keras.distribution.list_devices()`` gives in every process of such a job: all devices, host by host."""
    return [f"gpu:{i}" for i in range(processes * per_process)]


def _axes(distribution, path: str) -> tuple:
    layout = distribution._layout_map[path]
    return tuple(layout.axes) if layout is not None else ()


def _check_mesh(plan) -> str:
    import keras

    for processes, per_process, global_batch in CLUSTERS:
        devices = _devices(processes, per_process)
        what = f"{processes} hosts with {per_process} GPU(s) each, global batch {global_batch}"
        try:
            result = plan(list(devices), processes, global_batch)
        except ValueError as err:
            raise Incorrect(f"{what}: plan raised ValueError ({err}), yet {global_batch} images split evenly over "
                            f"the {processes} hosts: the batch is split along 'batch' only, and the GPUs of one host "
                            "all work on that host's images") from err
        if not isinstance(result, tuple) or len(result) != 2:
            raise Incorrect(f"{what}: plan returned {type(result).__name__}; return a pair (distribution, local_batch)")
        distribution, local_batch = result
        if isinstance(distribution, keras.distribution.DataParallel):
            raise Incorrect(f"{what}: a DataParallel keeps a whole copy of the model on every GPU, which is what does "
                            "not fit here: use keras.distribution.ModelParallel with a LayoutMap that splits the "
                            "dense kernels over the 'model' axis")
        if not isinstance(distribution, keras.distribution.ModelParallel):
            raise Incorrect(f"{what}: the distribution is {type(distribution).__name__}, not a "
                            "keras.distribution.ModelParallel")
        mesh = distribution.device_mesh
        if list(mesh.axis_names) != ["batch", "model"]:
            raise Incorrect(f"{what}: the mesh's axes are {list(mesh.axis_names)}; name them ['batch', 'model'] "
                            "(the first along the hosts, the second along each host's GPUs)")
        grid = np.asarray(mesh.devices).reshape(mesh.shape).tolist()
        if sorted(str(d) for row in grid for d in row) != sorted(devices):
            raise Incorrect(f"{what}: the mesh holds {sum(map(len, grid))} device(s) of the job's {len(devices)}: "
                            "it must hold the GPUs of every host")
        hosts = [sorted(devices[h * per_process:(h + 1) * per_process]) for h in range(processes)]
        rows = [sorted(str(d) for d in row) for row in grid]
        if tuple(mesh.shape) != (processes, per_process) or rows != hosts:
            raise Incorrect(f"{what}: the mesh's rows are {rows}: the wrong mesh axis. The 'model' axis runs across "
                            "hosts, so the pieces of every layer would travel over the network at every step. Shape "
                            f"({processes}, {per_process}): one row per host, its own GPUs along 'model' "
                            "(list_devices() lists the devices host by host: reshape them in that order)")
        if distribution.batch_dim_name != "batch":
            raise Incorrect(f"{what}: batch_dim_name is {distribution.batch_dim_name!r}: the wrong mesh axis for the "
                            "data. The batch is split along 'batch' (across hosts); each host's GPUs share its images")
        if getattr(distribution, "_auto_shard_dataset", True):
            raise Incorrect(f"{what}: auto_shard_dataset is True, so Keras would split the data itself and accepts "
                            "only a tf.data.Dataset there; each process's loader already reads its own shard: pass "
                            "auto_shard_dataset=False")
        kernel, bias = _axes(distribution, DENSE_KERNEL), _axes(distribution, DENSE_BIAS)
        if "batch" in kernel + bias + _axes(distribution, CONV_KERNEL):
            raise Incorrect(f"{what}: the layout map puts a weight on the 'batch' axis (dense kernel {kernel}, bias "
                            f"{bias}): the wrong mesh axis. Weights are split along 'model' only; 'batch' splits data")
        if kernel.count("model") != 1:
            raise Incorrect(f"{what}: the dense kernel ({DENSE_KERNEL}) gets the layout {kernel or 'none (whole)'}; "
                            "split it over the 'model' axis, e.g. layout_map['.*dense.*kernel'] = (None, 'model')")
        if local_batch != global_batch // processes:
            why = ("that is one GPU's share; a process's loader feeds its whole host" if local_batch ==
                   global_batch // len(devices) and per_process > 1 else "each host loads its share of the batch")
            raise Incorrect(f"{what}: local batch {local_batch}, expected {global_batch // processes}: {why}")
    for processes, per_process, global_batch in UNEVEN:
        try:
            plan(_devices(processes, per_process), processes, global_batch)
        except ValueError:
            continue
        raise Incorrect(f"{global_batch} images cannot be split evenly over {processes} hosts, yet plan raised no "
                        "ValueError: the batch is split along the 'batch' axis, one row of the mesh per host")
    return ("one row of the mesh per host, the dense kernels split along 'model' within a host, the batch along "
            "'batch' across hosts, each host loading global_batch // num_processes images; uneven splits are refused.")


q2 = Exercise(
    name="q2",
    task="Write plan(devices, num_processes, global_batch): a ModelParallel over a (hosts, GPUs) mesh, and the "
         "local batch.",
    checker=_check_mesh,
    hint_text=("keras.distribution.DeviceMesh(shape, axis_names=['batch', 'model'], devices=np.array(devices)"
               ".reshape(shape)) with shape = (num_processes, len(devices) // num_processes) puts each host's GPUs "
               "in one row. A keras.distribution.LayoutMap(mesh) maps '.*dense.*kernel' to (None, 'model'); then "
               "ModelParallel(layout_map=..., batch_dim_name='batch', auto_shard_dataset=False). The batch splits "
               "over the hosts: check global_batch % num_processes."),
    solution_code="""
import keras
import numpy as np


def plan(devices, num_processes, global_batch):
    if global_batch % num_processes:
        raise ValueError(f"a global batch of {global_batch} does not split evenly over {num_processes} hosts")
    shape = (num_processes, len(devices) // num_processes)  # a row per host: list_devices() lists them host by host
    mesh = keras.distribution.DeviceMesh(shape, ["batch", "model"], devices=np.array(devices).reshape(shape))
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")  # each GPU of a host holds a slice of the kernel's columns
    layout_map[".*dense.*bias"] = ("model",)
    distribution = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch",
                                                    auto_shard_dataset=False)
    return distribution, global_batch // num_processes
""",
    answer_name="plan",
)


#: (images, processes) the loader check tries, in batches of LOADER_BATCH: one block one image longer, equal
#: blocks, blocks of 2 and 3 (the short one padded), and fewer images than processes (an empty block).
LOADER_SPLITS = ((13, 2), (12, 4), (10, 4), (3, 4))
LOADER_BATCH, LOADER_SIZE, LOADER_WORKERS = 2, 8, 3
#: The memory check: HELD_COUNT noise images of HELD_SIDE px, read by 2 processes in batches of LOADER_BATCH.
HELD_COUNT, HELD_SIDE = 160, 48


def _loader_class(answer):
    import keras

    if not (isinstance(answer, type) and issubclass(answer, keras.utils.PyDataset)):
        raise Incorrect("pass the class itself, `ex.q3.check(BlockShardDataset)`, a subclass of "
                        f"keras.utils.PyDataset (got {answer!r})")
    return answer


def _build(cls, folder, names, labels, process_id, processes, image_size=LOADER_SIZE, **kwargs):
    return cls(folder, np.asarray(names), np.asarray(labels), process_id, processes, batch_size=LOADER_BATCH,
               image_size=image_size, **kwargs)


def _check_kwargs(cls, folder, names) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = _build(cls, folder, names, np.arange(len(names)), 0, 2, workers=LOADER_WORKERS)
        except TypeError as err:
            if "workers" in str(err) or "unexpected keyword" in str(err):
                raise Incorrect(f"{cls.__name__}(..., workers={LOADER_WORKERS}) failed ({err}): accept **kwargs in "
                                "__init__ and pass them on with super().__init__(**kwargs)") from err
            raise
        workers = ds.workers  # Keras warns here when super().__init__ was never called
    if any("super().__init__" in str(w.message) for w in caught) or workers != LOADER_WORKERS:
        raise Incorrect(f"workers={LOADER_WORKERS} was passed, but Keras sees workers={workers}: the keyword "
                        "arguments never reach Keras. Call super().__init__(**kwargs) in __init__")


def _epoch(ds, what: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    batches = []
    for i in range(len(ds)):
        batch = ds[i]
        if not isinstance(batch, tuple) or len(batch) != 3:
            got = f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, tuple) else "")
            raise Incorrect(f"{what}, batch {i}: got {got}; return (images, labels, weights): weight 0 marks a blank "
                            "padding row")
        images, labels, weights = (np.asarray(part) for part in batch)
        if images.shape != (LOADER_BATCH, LOADER_SIZE, LOADER_SIZE, 3):
            raise Incorrect(f"{what}, batch {i}: images of shape {images.shape}, expected "
                            f"{(LOADER_BATCH, LOADER_SIZE, LOADER_SIZE, 3)}: every batch of every process has the "
                            "same shape, a short one filled up with blank rows of weight 0")
        if images.dtype != np.float32:
            raise Incorrect(f"{what}, batch {i}: images of dtype {images.dtype}: return float32 (pixels / 255)")
        if images.min() < 0 or images.max() > 1.0 + 1e-6:
            raise Incorrect(f"{what}, batch {i}: pixel values from {images.min():.1f} to {images.max():.1f}: scale "
                            "them into [0, 1], pixels / 255, once")
        if labels.shape != (LOADER_BATCH,) or weights.shape != (LOADER_BATCH,):
            raise Incorrect(f"{what}, batch {i}: labels of shape {labels.shape} and weights of shape "
                            f"{weights.shape}: one of each per row, blank rows included")
        filled = images.reshape(LOADER_BATCH, -1).any(axis=1)
        if (weights[~filled] != 0).any():
            raise Incorrect(f"{what}, batch {i}: a blank padding row has weight {weights[~filled].max()}: it would "
                            "count in the loss as an image of its own. Give padding rows weight 0")
        if filled.any() and images[filled].max() <= 1 / 255 + 1e-6:
            raise Incorrect(f"{what}, batch {i}: every value is at most 1/255: the pixels were scaled twice")
        batches.append((images, labels, weights))
    return batches


def _read_block(ds, what: str) -> list[int]:
    """The numbers of the images one process read in one epoch, in order; checks the padding and the labels."""
    numbers = []
    for i, (images, labels, weights) in enumerate(_epoch(ds, what)):
        for image, label, weight in zip(images, labels, weights, strict=True):
            if weight == 0:
                if image.any():
                    raise Incorrect(f"{what}, batch {i}: a row of weight 0 holds an image: it is read but adds "
                                    "nothing to training; only blank padding rows weigh 0")
                continue
            if weight != 1:
                raise Incorrect(f"{what}, batch {i}: a weight of {weight}; an image weighs 1, a blank padding row 0")
            n = image_number(image)
            if label != n + 100:
                raise Incorrect(f"{what}: image {n} came with label {label}: each label stays with its image")
            numbers.append(n)
    return numbers


def _check_blocks(cls, folder, names) -> None:
    for count, processes in LOADER_SPLITS:
        what = f"{count} images, {processes} processes"
        loaders = [_build(cls, folder, names[:count], np.arange(count) + 100, p, processes) for p in range(processes)]
        steps = [len(ds) for ds in loaders]
        if len(set(steps)) > 1:
            raise Incorrect(f"{what}: the processes have {steps} batches: unequal steps. The process with fewer "
                            "batches ends its epoch while the others wait for it at the gradient sum: the job hangs. "
                            "Count the batches on the largest block, in every process")
        largest = math.ceil(count / processes)
        if steps[0] != math.ceil(largest / LOADER_BATCH):
            raise Incorrect(f"{what}: {steps[0]} batches per process; the largest block holds {largest} images, "
                            f"so {math.ceil(largest / LOADER_BATCH)} batches of {LOADER_BATCH}")
        read = [_read_block(ds, f"{what}, process {p}") for p, ds in enumerate(loaders)]
        seen = [n for numbers in read for n in numbers]
        twice = sorted({n for n in seen if seen.count(n) > 1})
        if twice:
            raise Incorrect(f"{what}: images {twice} are in two shards: the blocks overlap, so they are trained on "
                            "twice per epoch. Block p ends where block p + 1 starts")
        missing = sorted(set(range(count)) - set(seen))
        if missing:
            raise Incorrect(f"{what}: images {missing} are in no shard: they never reach training. Put the "
                            "boundaries at p * count // num_processes")
        for p, numbers in enumerate(read):
            if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                raise Incorrect(f"{what}: process {p} read images {numbers}: not one block of consecutive images")
        sizes = [len(numbers) for numbers in read]
        if max(sizes) - min(sizes) > 1:
            raise Incorrect(f"{what}: the blocks hold {sizes} images; they must differ by at most one")
        firsts = [numbers[0] for numbers in read if numbers]
        if firsts != sorted(firsts):
            raise Incorrect(f"{what}: the blocks are not in process order: process 0 gets the first block")


def _check_memory(cls, folder: Path) -> None:
    names = [f"noise_{i:03d}.png" for i in range(HELD_COUNT)]
    for i, name in enumerate(names):
        noise_png(folder / name, seed=i, size=HELD_SIDE)
    labels = np.zeros(HELD_COUNT, dtype=np.int64)

    def two_epochs() -> int:
        loaders = [_build(cls, folder, names, labels, p, 2, image_size=HELD_SIDE) for p in range(2)]
        rows = 0
        for _ in range(2):
            for ds in loaders:
                for i in range(len(ds)):
                    rows += len(ds[i][0])
                ds.on_epoch_end()
        return rows

    held, _ = held_by(two_epochs, two_epochs)
    batch_bytes = LOADER_BATCH * HELD_SIDE * HELD_SIDE * 3 * 4
    if held.most_images > 4 * LOADER_BATCH or held.peak_bytes > 8 * batch_bytes:
        everything = HELD_COUNT * HELD_SIDE * HELD_SIDE * 3
        raise Incorrect(f"reading two epochs of {HELD_COUNT} images, your loader held {held.peak_bytes / 1e6:.1f} MB "
                        f"and {held.most_images} decoded images at once (a batch is {batch_bytes / 1e6:.2f} MB, "
                        f"every image as uint8 {everything / 1e6:.1f} MB): more than a few batches kept alive, a cache "
                        "or a list of images in memory. Decode each batch's files in __getitem__ and keep nothing")


def _check_block_loader(answer) -> str:
    cls = _loader_class(answer)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny"
        names = tiny_image_folder(tiny, count=max(count for count, _ in LOADER_SPLITS))
        _check_kwargs(cls, tiny, names)
        _check_blocks(cls, tiny, names)
        _check_memory(cls, Path(tmp) / "noise")
    return ("every process gets the same number of batches of the same shape (blank rows of weight 0 fill the short "
            "ones), the blocks cover every image once, float32 in [0, 1], workers reach Keras, a batch at a time.")


q3 = Exercise(
    name="q3",
    task="Write BlockShardDataset: a PyDataset over process_id's block of the files, with the same number of "
         "batches in every process.",
    checker=_check_block_loader,
    hint_text=("In __init__: super().__init__(**kwargs), then the block filenames[start:end] with start = "
               "process_id * n // num_processes (and end the next process's start), and the number of batches "
               "counted on the largest block, math.ceil(math.ceil(n / num_processes) / batch_size): the same in "
               "every process. In __getitem__: np.zeros for the images, labels and weights of batch_size rows; fill "
               "the first rows from the files (pixels / 255, float32) and give them weight 1."),
    solution_code="""
import math

import keras
import numpy as np


class BlockShardDataset(keras.utils.PyDataset):
    def __init__(self, image_dir, filenames, labels, process_id, num_processes, batch_size, image_size, **kwargs):
        super().__init__(**kwargs)  # workers and the like reach Keras
        n = len(filenames)
        start, end = process_id * n // num_processes, (process_id + 1) * n // num_processes
        self.image_dir, self.filenames, self.labels = image_dir, filenames[start:end], np.asarray(labels[start:end])
        self.batch_size, self.image_size = batch_size, image_size
        self.steps = math.ceil(math.ceil(n / num_processes) / batch_size)  # on the largest block: equal everywhere

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        images = np.zeros((self.batch_size, self.image_size, self.image_size, 3), dtype=np.float32)
        labels = np.zeros(self.batch_size, dtype=self.labels.dtype)
        weights = np.zeros(self.batch_size, dtype=np.float32)  # 0: a blank row adds nothing to the loss
        rows = range(index * self.batch_size, min((index + 1) * self.batch_size, len(self.filenames)))
        for row, k in enumerate(rows):
            image = keras.utils.load_img(f"{self.image_dir}/{self.filenames[k]}",
                                         target_size=(self.image_size, self.image_size))
            images[row] = np.asarray(image, dtype=np.float32) / 255
            labels[row], weights[row] = self.labels[k], 1.0
        return images, labels, weights
""",
    answer_name="BlockShardDataset",
)
