"""Every data source -> in-memory arrays -> tf.data pipelines. Knows nothing about models.

Sources, all giving uint8 images (N, H, W, C) and int32 labels 0..K-1:

* the assignment's PNG layout ``ROOT/{Train,Test}/<class 0..K-1>/ImageNNNNN.png``
  (any K; RGB or palette PNGs are converted to grayscale, non-PNG files are ignored
  with a warning);
* MNIST idx files (``train-images-idx3-ubyte[.gz]`` ...), the format TF1's
  ``input_data`` read and Debian's ``dataset-fashion-mnist`` installs;
* tensorflow-datasets (``cifar10``, ``mnist``, ``fashion_mnist``), CIFAR-10 converted to
  the assignment's 28x28 grayscale unless ``native``.

Where the data comes from (first match wins; ``source_help()`` says the same to users):
``--data-dir``, then ``$TF_ASSIGN2_DATA/<FOLDER>``, then ``./data/<FOLDER>``, then a
system location (Fashion-MNIST from Debian), then tfds. tfds gives the whole dataset (CIFAR-10:
50,000/10,000); ``--subset assignment`` gives what the assignment's folders hold instead - at most
1000 training and 100 test images per class, 28x28 gray - and, from tfds, writes them once in the
PNG layout under the first local folder above, where every later run finds them.

PNGs are decoded in one pass over the files: plain 8-bit ones by ``png``'s batched numpy
path, anything else by Pillow, so a bad file is named in the error (see ``png`` for why the
fast path exists). The decoded arrays are the cache: the whole assignment set fits in memory
many times over, so pipelines slice tensors in memory.
"""

import dataclasses
import gzip
import io
import os
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from tf_assign2 import files
from tf_assign2.data import png
from tf_assign2.errors import UsageError

DATASETS = ("cifar10", "mnist", "fashion_mnist")
SUBSETS = ("all", "assignment")
ASSIGNMENT = {"train": 1000, "test": 100, "shape": (28, 28, 1)}  # per class, as the course's folders
ENV_VAR = "TF_ASSIGN2_DATA"
FOLDERS = {"cifar10": "CIFAR10", "mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
SYSTEM_LOCATIONS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
CLASS_NAMES = {
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
    ],
}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


@dataclasses.dataclass
class DataInfo:
    """What was loaded and from where; written into config.json and summary.json."""

    dataset: str
    source: str
    location: str
    num_classes: int
    class_names: list
    image_shape: tuple
    n_train: int
    n_val: int
    n_test: int


@dataclasses.dataclass
class Arrays:
    """The three splits in memory: uint8 images (N, H, W, C), int32 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def source_help():
    """The resolution order, as shown in --help and the README."""
    return (
        "data is looked for in this order: --data-dir; $TF_ASSIGN2_DATA/<CIFAR10|MNIST|FashionMNIST>; "
        "./data/<same>; /usr/share/datasets/fashion-mnist (fashion_mnist); tensorflow-datasets "
        "(downloads unless offline). A folder is read as the PNG layout if it has Train/ and Test/, "
        "else as MNIST idx files."
    )


# --------------------------------------------------------------------------- PNG layout


def _class_folders(split_dir):
    """Class folders of one split, checked to be named 0..K-1; a link among them that leads nowhere
    (a loop, a missing target) is named as such rather than taken for a wrongly named class."""
    for entry in split_dir.iterdir():
        if entry.is_symlink() and not entry.exists():
            try:
                os.stat(entry)
            except OSError as e:
                raise UsageError(f"{entry}: {files.describe_error(e)}; expected a class folder") from None
    folders = [p for p in split_dir.iterdir() if p.is_dir()]
    if not folders:
        raise UsageError(f"{split_dir}: no class folders; expected folders named 0..K-1 holding PNG images")
    names = sorted(p.name for p in folders)
    if not all(n.isdigit() for n in names) or sorted(int(n) for n in names) != list(range(len(names))):
        raise UsageError(
            f"{split_dir}: class folders must be named 0..{len(names) - 1}, found {', '.join(names[:12])}"
        )
    return [split_dir / str(i) for i in range(len(names))]


def _png_files(class_dir, limit):
    """Sorted PNG files of a class folder (the starter reads Image00000.png upward).

    Names are listed with ``os.scandir`` and sorted as strings: for 11k files, Path objects
    and a stat per entry would be a large part of the whole decode.
    """
    with os.scandir(class_dir) as entries:
        # Every *.png entry is read, so an unreadable one (a dangling link, no permission, a folder or a
        # named pipe by that name) is an error; other folders are not images and are passed over.
        names = [e.name for e in entries if not _is_folder(e) or e.name.lower().endswith(".png")]
    files = sorted(n for n in names if n.lower().endswith(".png"))
    others = [n for n in names if not n.lower().endswith(".png")]
    if others:
        warnings.warn(f"{class_dir}: ignoring {len(others)} non-PNG file(s), e.g. {others[0]}", stacklevel=2)
    if not files:
        raise UsageError(f"{class_dir}: empty class folder; expected PNG images")
    if limit is not None:
        if limit > len(files):
            raise UsageError(f"{class_dir}: asked for {limit} images per class, found only {len(files)}")
        files = files[:limit]
    return [os.path.join(class_dir, n) for n in files]


def _is_folder(entry):
    """``entry.is_dir()``, False for a link that leads nowhere (reading it then says why)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _read_file(path):
    return files.read_bytes(path, "")


MAX_PIXELS = 1 << 24  # 4096 x 4096: far above the assignment's 28 x 28, far below what exhausts memory


def _check_header(path, data):
    """Refuse what would cost unbounded work before any pixel is decoded: a header declaring a huge image."""
    found = png.header(data)
    if found is not None and found[0] * found[1] > MAX_PIXELS:
        raise UsageError(f"{path}: image is {found[0]}x{found[1]} pixels; this tool reads images of at most "
                         f"{MAX_PIXELS:,} pixels")


def _pillow_decode(path, data, mode):
    """One PNG with Pillow (any PNG flavour) -> uint8 (H, W, C); a failure names the file.

    16-bit grayscale is scaled to 8 bits (v * 255 / 65535, rounded), never clipped: Pillow's own
    conversion to "L" would turn every value above 255 white.
    """
    from PIL import Image, PngImagePlugin, UnidentifiedImageError

    try:
        image = PngImagePlugin.PngImageFile(io.BytesIO(data))
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            wide = np.asarray(image).astype(np.float64)
            image = Image.fromarray(np.clip(np.round(wide * 255.0 / 65535.0), 0, 255).astype(np.uint8), "L")
        if image.mode != mode:
            image = image.convert(mode)
        array = np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UsageError(f"{path}: not a valid PNG image ({e})") from None
    return array.reshape(array.shape[0], array.shape[1], -1)


def decode_pngs(paths, mode="L"):
    """PNG files -> list of uint8 arrays (H, W, C), in order.

    Plain 8-bit PNGs already in ``mode`` take ``png``'s batched fast path (the same bytes as
    Pillow, faster: docs/speed.md); every other file is decoded by Pillow.
    """
    images, plain = [None] * len(paths), {}
    for i, path in enumerate(paths):
        data = _read_file(path)
        _check_header(path, data)
        parsed = png.inflate(data)
        if parsed is not None and png.MODES[parsed[0][2]] == mode:
            plain.setdefault(parsed[0], []).append((i, parsed[1]))
        else:
            images[i] = _pillow_decode(path, data, mode)
    for shape, items in plain.items():
        for (i, _), image in zip(items, png.unfilter([rows for _, rows in items], shape)):
            images[i] = image
    return images


def decode_png(path, mode="L"):
    """One PNG file -> uint8 array (H, W, C); any failure becomes a UsageError naming the file."""
    return decode_pngs([path], mode)[0]


def read_png_split(split_dir, per_class=None, mode="L"):
    """Read ``split_dir/<class>/*.png`` into (images, labels); every image must share one shape."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise UsageError(f"{split_dir}: folder not found; expected the PNG layout ROOT/{{Train,Test}}/<class>/")
    paths, labels = [], []
    for label, class_dir in enumerate(_class_folders(split_dir)):
        files = _png_files(class_dir, per_class)
        paths += files
        labels += [label] * len(files)
    images = decode_pngs(paths, mode)
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise UsageError(
                f"{path}: image is {'x'.join(map(str, image.shape))}, expected "
                f"{'x'.join(map(str, images[0].shape))} like {paths[0]}"
            )
    return np.stack(images), np.asarray(labels, dtype=np.int32)


def read_png_layout(root, ntrain=None, ntest=None, mode="L"):
    """The assignment's layout: ROOT/Train and ROOT/Test, same classes and image shape."""
    root = Path(root)
    for split in ("Train", "Test"):
        if not (root / split).is_dir():
            raise UsageError(f"{root}: no {split}/ folder; expected ROOT/{{Train,Test}}/<class 0..K-1>/*.png")
    train_x, train_y = read_png_split(root / "Train", ntrain, mode)
    test_x, test_y = read_png_split(root / "Test", ntest, mode)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise UsageError(f"{root}: Train images are {train_x.shape[1:]} but Test images are {test_x.shape[1:]}")
    if train_y.max() != test_y.max():
        raise UsageError(f"{root}: Train has {train_y.max() + 1} classes but Test has {test_y.max() + 1}")
    return train_x, train_y, test_x, test_y


# --------------------------------------------------------------------------- MNIST idx


def _idx_path(folder, stem):
    for name in (stem, stem + ".gz"):
        if os.path.lexists(folder / name):  # whatever it is: reading it says if it is no file
            return folder / name
    raise UsageError(f"{folder}: missing {stem}[.gz]; expected MNIST idx files")


def read_idx(path, expected_magic):
    """Read an idx file (optionally gzipped) -> uint8 array; validates magic number and size."""
    path = Path(path)
    raw = files.read_bytes(path, "")
    try:
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise UsageError(f"{path}: cannot read idx file ({e})") from None
    if len(raw) < 8:
        raise UsageError(f"{path}: truncated idx file ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise UsageError(f"{path}: idx magic number is {magic}, expected {expected_magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{path}: truncated idx header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise UsageError(f"{path}: idx file holds {len(raw) - header} data bytes, header says {size} (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_folder(folder, ntrain=None, ntest=None, splits=("train", "test")):
    """MNIST idx files in ``folder`` -> (train_x, train_y, test_x, test_y); per-class limits apply."""
    folder = Path(folder)
    out = []
    for split, limit in (("train", ntrain), ("test", ntest)):
        if split not in splits:
            continue
        images_stem, labels_stem = IDX_FILES[split]
        images = read_idx(_idx_path(folder, images_stem), IDX_IMAGES_MAGIC)
        labels = read_idx(_idx_path(folder, labels_stem), IDX_LABELS_MAGIC).astype(np.int32)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UsageError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if limit is not None:
            keep = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(labels.max() + 1)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        out += [images[..., None], labels]
    return tuple(out)


# --------------------------------------------------------------------------- tfds


def read_tfds(dataset, data_dir=None, native=False, download=True):
    """tensorflow-datasets, as the assignment format unless ``native`` (CIFAR-10: 32x32x3)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)  # tfds warns about every empty folder it probes
    if download and not tfds.builder(dataset, data_dir=data_dir).is_prepared() and not _online():
        tried = ", ".join(str(p) for p in local_candidates(dataset))
        raise UsageError(
            f"no {dataset} data in {tried}, and no network for tensorflow-datasets to download it; "
            f"set --data-dir or ${ENV_VAR}"
        )
    try:
        splits = tfds.load(dataset, split=["train", "test"], as_supervised=True, data_dir=data_dir, download=download)
        # In batches rather than batch_size=-1: the same arrays, without needing the split's size up front.
        batches = [list(tfds.as_numpy(split.batch(4096))) for split in splits]
    except Exception as e:  # tfds raises many types (network, checksum, ...): one message for the user
        raise UsageError(f"tensorflow-datasets could not load {dataset!r}: {str(e).splitlines()[0][:200]}") from None
    out = []
    for parts in batches:
        images = np.concatenate([images for images, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        if images.shape[-1] == 3 and not native:
            gray = tf.image.rgb_to_grayscale(tf.cast(images, tf.float32))
            images = tf.image.resize(gray, (28, 28), antialias=True)
            images = np.clip(np.round(images.numpy()), 0, 255).astype(np.uint8)
        out += [images, labels.astype(np.int32)]
    return tuple(out)


def _online(host="storage.googleapis.com", timeout=3.0):
    """Can we reach the internet? tfds retries a dead download for minutes; fail in seconds instead."""
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- resolution


def _folder_format(folder):
    if (folder / "Train").is_dir() or (folder / "Test").is_dir():
        return "png"
    if any(folder.glob("*-idx3-ubyte*")):
        return "idx"
    return None


def local_candidates(dataset):
    """The folders searched for ``dataset`` when no --data-dir is given, in order."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / FOLDERS[dataset])
    candidates.append(Path("data") / FOLDERS[dataset])
    if dataset in SYSTEM_LOCATIONS:
        candidates.append(Path(SYSTEM_LOCATIONS[dataset]))
    return candidates


def resolve_location(dataset, data_dir=None, source="auto"):
    """Where to read ``dataset`` from: (source, location). Raises UsageError naming what was tried."""
    if data_dir is not None:
        folder = Path(data_dir)
        if not folder.is_dir():
            raise UsageError(f"--data-dir {folder}: folder not found")
        # A folder holding CIFAR10/ and MNIST/ (like $TF_ASSIGN2_DATA) is accepted too.
        if _folder_format(folder) is None and (folder / FOLDERS[dataset]).is_dir():
            folder = folder / FOLDERS[dataset]
        found = _folder_format(folder)
        if source in ("png", "idx") and found != source:
            raise UsageError(f"--data-dir {folder}: no {source} data there")
        if found is None:
            raise UsageError(
                f"--data-dir {folder}: neither the PNG layout (Train/ and Test/) nor MNIST idx files"
            )
        return found, str(folder)
    tried = []
    if source != "tfds":
        for folder in local_candidates(dataset):
            found = _folder_format(folder) if folder.is_dir() else None
            if found and source in ("auto", found):
                return found, str(folder)
            tried.append(str(folder))
    if source in ("auto", "tfds"):
        return "tfds", dataset
    raise UsageError(f"no {source} data for {dataset}: tried {', '.join(tried)}; set --data-dir or ${ENV_VAR}")


def assignment_folder(dataset):
    """Where ``--subset assignment`` writes a dataset fetched from tensorflow-datasets: the first local
    folder of the resolution order ($TF_ASSIGN2_DATA/<FOLDER>, else ./data/<FOLDER>)."""
    return local_candidates(dataset)[0]


def per_class(x, y, limit):
    """The first ``limit`` images of each class, in the source's order (all of a class that has fewer)."""
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:limit] for c in np.unique(y)]))
    return x[keep], y[keep]


def write_png_layout(root, train_x, train_y, test_x, test_y):
    """The assignment's layout, ROOT/{Train,Test}/<class>/ImageNNNNN.png (8-bit gray, numbered from 0
    per class), written into a temporary folder renamed into place: a kill leaves no half data set."""
    from PIL import Image

    root = Path(root)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for split, x, y in (("Train", train_x, train_y), ("Test", test_x, test_y)):
            for label in np.unique(y):
                folder = tmp / split / str(int(label))
                folder.mkdir(parents=True)
                for i, image in enumerate(x[y == label]):
                    Image.fromarray(image[..., 0], "L").save(folder / f"Image{i:05d}.png")
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def fetch_assignment_subset(config):
    """``--subset assignment`` from tensorflow-datasets: the first 1000 training and 100 test images of
    each class, converted to 28x28 gray, written once in the PNG layout (``assignment_folder``);
    returns that folder. Offline, tfds' reader says so in one line."""
    target = assignment_folder(config.dataset)
    if target.is_dir() and _folder_format(target) == "png":  # written by an earlier run
        return target
    if target.exists():
        raise UsageError(f"--subset assignment: {target} exists and is not the PNG layout; move it away or set "
                         f"${ENV_VAR} to another folder")
    train_x, train_y, test_x, test_y = read_tfds(config.dataset, config.tfds_data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    write_png_layout(target, *per_class(train_x, train_y, ASSIGNMENT["train"]),
                     *per_class(test_x, test_y, ASSIGNMENT["test"]))
    print(f"wrote the assignment's subset of tensorflow-datasets {config.dataset} (at most {ASSIGNMENT['train']} "
          f"train / {ASSIGNMENT['test']} test images per class, 28x28 gray) to {target}; later runs read it there",
          flush=True)
    return target


def _located(config):
    """(source, location) of the run's data, fetching the assignment's subset from tfds when asked."""
    source, location = resolve_location(config.dataset, config.data_dir, config.source)
    if config.subset == "assignment":
        if config.native:
            raise UsageError("--subset assignment is the assignment's 28x28 gray images; drop --native")
        if source == "tfds":
            return "png", str(fetch_assignment_subset(config))
    return source, location


def _as_assignment(config, location, x, y, split):
    """``--subset assignment`` on local data: at most the assignment's images per class, of its shape."""
    if config.subset != "assignment":
        return x, y
    if x.shape[1:] != ASSIGNMENT["shape"]:
        raise UsageError(f"--subset assignment: {location} holds images of {'x'.join(map(str, x.shape[1:]))}; "
                         "the assignment's are 28x28x1 (gray)")
    return per_class(x, y, ASSIGNMENT[split])


def split_validation(x, y, fraction, seed):
    """Stratified, seeded validation split carved from train: (train_x, train_y, val_x, val_y)."""
    if fraction <= 0:
        return x, y, x[:0], y[:0]
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_val = int(round(len(idx) * fraction))
        if n_val >= len(idx):
            raise UsageError(f"--val-split {fraction}: leaves no training images in class {c}")
        val_idx.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val_idx))
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[val_idx] = False
    return x[train_mask], y[train_mask], x[val_idx], y[val_idx]


def _read_png(location, config, splits):
    mode = "RGB" if config.native else "L"
    if splits == ("train", "test"):
        return read_png_layout(location, config.ntrain, config.ntest, mode)
    if not (Path(location) / "Test").is_dir():
        raise UsageError(f"{location}: no Test/ folder; expected ROOT/Test/<class 0..K-1>/*.png")
    return read_png_split(Path(location) / "Test", config.ntest, mode)


def _read_idx(location, config, splits):
    return read_idx_folder(location, config.ntrain, config.ntest, splits)


def _read_tfds(location, config, splits):
    train_x, train_y, test_x, test_y = read_tfds(config.dataset, config.tfds_data_dir, config.native)
    test = _per_class(test_x, test_y, config.ntest)
    return (*_per_class(train_x, train_y, config.ntrain), *test) if "train" in splits else test


# The data source registry: name -> reader(location, config, splits) returning the splits' arrays
# (train_x, train_y, test_x, test_y, or test_x, test_y for splits=("test",)). Adding a source is
# one entry here, plus its detection in ``_folder_format`` if it is a local folder format.
READERS = {"png": _read_png, "idx": _read_idx, "tfds": _read_tfds}
SOURCES = ("auto", *READERS)


def load_arrays(config):
    """Read the configured dataset into memory -> (Arrays, DataInfo)."""
    source, location = _located(config)
    train_x, train_y, test_x, test_y = READERS[source](location, config, ("train", "test"))
    train_x, train_y = _as_assignment(config, location, train_x, train_y, "train")
    test_x, test_y = _as_assignment(config, location, test_x, test_y, "test")
    num_classes = check_labels(train_y, test_y, location)
    train_x, train_y, val_x, val_y = split_validation(train_x, train_y, config.val_split, config.seed)
    info = _info(config.dataset, source, location, num_classes, train_x.shape, len(train_y), len(val_y), len(test_y))
    return Arrays(train_x, train_y, val_x, val_y, test_x, test_y), info


def check_labels(train_y, test_y, location):
    """The number of classes K, after checking the labels are a classification: K >= 2, every class
    0..K-1 present in training, no test label outside them (a stray idx byte of 200 would otherwise
    make a 201-class model)."""
    if len(train_y) == 0 or len(test_y) == 0:
        raise UsageError(f"{location}: no {'training' if len(train_y) == 0 else 'test'} images")
    present = np.unique(train_y)
    num_classes = int(present.max()) + 1
    if num_classes < 2:
        raise UsageError(f"{location}: only one class (0) in the training data; a classifier needs at least 2")
    if len(present) != num_classes or present.min() < 0:
        missing = sorted(set(range(num_classes)) - set(present.tolist()))[:5]
        raise UsageError(f"{location}: training labels must be 0..K-1 with every class present; found "
                         f"{len(present)} distinct labels up to {num_classes - 1} (missing {missing})")
    outside = test_y[(test_y < 0) | (test_y >= num_classes)]
    if len(outside):
        raise UsageError(f"{location}: test label {int(outside[0])} is not one of the {num_classes} training classes")
    return num_classes


def _info(dataset, source, location, num_classes, shape, n_train, n_val, n_test):
    names = CLASS_NAMES.get(dataset, [])
    return DataInfo(
        dataset=dataset,
        source=source,
        location=location,
        num_classes=num_classes,
        class_names=names if len(names) == num_classes else [str(i) for i in range(num_classes)],
        image_shape=tuple(int(d) for d in shape[1:]),
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
    )


def test_fingerprint(test_x, test_y, info):
    """What identifies the test split a run was scored on, for config.json: where it came from (the
    folder as an absolute path, so it is found from any working directory), its size, and a SHA-256 of
    its images and labels. ``evaluate`` compares it with the data it reads."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(test_x, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(test_y, dtype=np.int32).tobytes())
    location = info.location if info.source == "tfds" else os.path.abspath(info.location)
    return {"dataset": info.dataset, "source": info.source, "location": location, "n_test": int(len(test_y)),
            "image_shape": list(info.image_shape), "sha256": digest.hexdigest()}


def fingerprint_difference(recorded, found):
    """'' when two fingerprints name the same test split, else what differs, in a few words."""
    if recorded.get("sha256") == found.get("sha256"):
        return ""
    parts = [f"{key} {recorded.get(key)} -> {found.get(key)}" for key in ("dataset", "source", "location", "n_test")
             if recorded.get(key) != found.get(key)]
    return ", ".join(parts) or "other images or labels (SHA-256)"


def load_test_split(config):
    """Only the test split (for evaluation) -> (test_x, test_y, DataInfo)."""
    source, location = _located(config)
    test_x, test_y = _as_assignment(config, location, *READERS[source](location, config, ("test",)), "test")
    info = _info(config.dataset, source, location, int(test_y.max()) + 1, test_x.shape, 0, 0, len(test_y))
    return test_x, test_y, info


def _per_class(x, y, limit):
    return per_class(x, y, limit) if limit else (x, y)
