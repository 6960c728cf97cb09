"""The data module on the real assignment PNGs, idx files written here, and bad inputs."""

import shutil
import struct

import numpy as np
import pytest
from helpers import write_idx_folder
from PIL import Image

from tf_assign2 import data
from tf_assign2.data import sources
from tf_assign2.errors import UsageError


def test_png_layout_counts_shapes_label_order_and_values(data_root):
    train_x, train_y, test_x, test_y = data.read_png_layout(data_root / "CIFAR10", ntrain=5, ntest=2)
    assert train_x.shape == (50, 28, 28, 1) and train_x.dtype == np.uint8
    assert test_x.shape == (20, 28, 28, 1)
    assert train_y.tolist() == [c for c in range(10) for _ in range(5)]
    assert test_y.tolist() == [c for c in range(10) for _ in range(2)]
    # Same pixels as the starter reads them: class 3's second training image.
    expected = np.asarray(Image.open(data_root / "CIFAR10/Train/3/Image00001.png"))
    np.testing.assert_array_equal(train_x[3 * 5 + 1, :, :, 0], expected)


def test_full_split_sizes(data_root):
    train_x, train_y, test_x, test_y = data.read_png_layout(data_root / "MNIST")
    assert len(train_y) == 10000 and len(test_y) == 1000
    assert np.bincount(train_y).tolist() == [1000] * 10


def test_pipeline_floats_in_unit_range(small_config):
    cfg = small_config(val_split=0.2)
    arrays, info = data.load_arrays(cfg)
    assert (info.n_train, info.n_val, info.n_test) == (160, 40, 50)
    assert np.bincount(arrays.val_y).tolist() == [4] * 10  # stratified
    images, labels = next(iter(data.train_dataset(arrays.train_x, arrays.train_y, 32, seed=0)))
    assert images.shape == (32, 28, 28, 1) and images.dtype.name == "float32"
    assert float(images.numpy().min()) >= 0.0 and float(images.numpy().max()) <= 1.0
    assert labels.dtype.name == "int32"
    test_images, _ = next(iter(data.eval_dataset(arrays.test_x, arrays.test_y, 50)))
    np.testing.assert_allclose(test_images.numpy(), arrays.test_x / 255.0, atol=1e-7)


def test_pipelines_run_without_the_autotune_thread_whose_teardown_stalls_a_run(small_config):
    """Both pipelines that a fit keeps open for the whole run have tf.data's autotuning model off
    (``without_autotune_thread``): its thread made the end of fit wait 15-25 s in half the runs."""
    arrays, _ = data.load_arrays(small_config())
    for ds in (data.train_dataset(arrays.train_x, arrays.train_y, 32, seed=0),
               data.train_dataset(arrays.train_x, arrays.train_y, 32, seed=0, shift=2, flip="random"),
               data.eval_dataset(arrays.test_x, arrays.test_y, 50)):
        assert ds.options().autotune.enabled is False
        assert next(iter(ds))[0].shape[0] > 0  # still a working pipeline


def test_validation_split_is_seeded(small_config):
    a, _ = data.load_arrays(small_config(seed=1))
    b, _ = data.load_arrays(small_config(seed=1))
    c, _ = data.load_arrays(small_config(seed=2))
    np.testing.assert_array_equal(a.val_x, b.val_x)
    assert not np.array_equal(a.val_x, c.val_x)


def test_epoch_order_depends_only_on_seed_and_epoch():
    x = np.arange(10 * 28 * 28, dtype=np.uint8).reshape(10, 28, 28, 1) % 251
    y = np.arange(10, dtype=np.int32)
    from_start = data.train_dataset(x, y, 4, seed=7)
    assert data.steps_per_epoch(10, 4) == 2  # full batches only
    batches = [b.numpy().tolist() for _, b in from_start.take(6)]  # epochs 0, 1 and 2, 2 batches each
    resumed = [b.numpy().tolist() for _, b in data.train_dataset(x, y, 4, seed=7, start_epoch=1).take(4)]
    assert resumed == batches[2:]
    assert all(len(b) == 4 for b in batches)
    epochs = [sum(batches[i:i + 2], []) for i in (0, 2, 4)]
    assert all(len(set(e)) == 8 for e in epochs)  # an epoch sees 8 different images once each
    assert epochs[0] != epochs[1] and len(set(sum(epochs, []))) == 10  # reshuffled; over epochs, every image


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1)])
def test_shift_augmentation_moves_each_image_whole_and_resumes_exactly(data_root, shape):
    """Real MNIST digits (rows for the RNN, HxWx1 for LeNet5): every augmented image is its original
    moved by whole pixels, |dy|, |dx| <= 2 (found by matching against all 25 shifts), the shifts
    differ between images, and a run resumed at epoch 1 sees the same augmented batches."""
    x, y, _, _ = data.read_png_layout(data_root / "MNIST")
    keep = np.random.default_rng(0).permutation(len(y))[:16]
    x, y = x[keep].reshape(16, *shape), y[keep]
    plain = x.astype(np.float32) / 255.0
    augmented = list(data.train_dataset(x, y, 8, seed=3, shift=2).take(4))  # epochs 0 and 1
    order = list(data.train_dataset(x, y, 8, seed=3).take(4))
    shifts = set()
    for (images, labels), (_, same_labels) in zip(augmented, order):
        assert labels.numpy().tolist() == same_labels.numpy().tolist()  # augmentation keeps the order
        for image, label in zip(images.numpy(), labels.numpy()):
            original = plain[np.flatnonzero(y == label)]
            found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) for o in original
                     if np.array_equal(_shifted(o, dy, dx), image)]
            assert found, "an augmented image is not a whole-pixel shift of a training image"
            shifts.add(found[0])
    assert len(shifts) >= 5
    resumed = list(data.train_dataset(x, y, 8, seed=3, start_epoch=1, shift=2).take(2))
    for (a, _), (b, _) in zip(augmented[2:], resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _shifted(image, dy, dx):
    """``image`` moved down dy and right dx pixels, zeros coming in."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _copy_layout(src, dst, classes, per_class=3):
    for split in ("Train", "Test"):
        for c in range(classes):
            (dst / split / str(c)).mkdir(parents=True)
            for i in range(per_class):
                shutil.copy(src / split / str(c) / f"Image{i:05d}.png", dst / split / str(c))
    return dst


def test_any_number_of_classes(data_root, tmp_path):
    root = _copy_layout(data_root / "CIFAR10", tmp_path / "three", classes=3)
    train_x, train_y, _, test_y = data.read_png_layout(root)
    assert sorted(set(train_y.tolist())) == [0, 1, 2] and len(train_x) == 9 and len(test_y) == 9


def test_rgb_png_is_converted_to_grayscale(data_root, tmp_path):
    root = _copy_layout(data_root / "CIFAR10", tmp_path / "rgb", classes=2)
    path = root / "Train/1/Image00000.png"
    gray = np.asarray(Image.open(path))
    Image.open(path).convert("RGB").save(path)
    train_x, _, _, _ = data.read_png_layout(root)
    np.testing.assert_array_equal(train_x[3, :, :, 0], gray)


def test_non_png_files_are_ignored_with_a_warning(data_root, tmp_path):
    root = _copy_layout(data_root / "CIFAR10", tmp_path / "notes", classes=2)
    (root / "Train/0/notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="ignoring 1 non-PNG"):
        train_x, _, _, _ = data.read_png_layout(root)
    assert len(train_x) == 6


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: shutil.rmtree(r / "Test"), "no Test/ folder"),
        (lambda r: [p.unlink() for p in (r / "Train/1").iterdir()], "empty class folder"),
        (lambda r: (r / "Train/1").rename(r / "Train/cat"), "must be named 0..1"),
        (lambda r: (r / "Train/0/Image00001.png").write_bytes((r / "Train/0/Image00001.png").read_bytes()[:60]),
         "Image00001.png: not a valid PNG"),
        (lambda r: Image.new("L", (32, 32)).save(r / "Train/1/Image00002.png"), "is 32x32x1, expected 28x28x1"),
    ],
    ids=["no-test-dir", "empty-class", "class-names", "corrupt-png", "wrong-size"],
)
def test_bad_layouts_raise_a_clear_error(data_root, tmp_path, breakage, message):
    root = _copy_layout(data_root / "CIFAR10", tmp_path / "bad", classes=2)
    breakage(root)
    with pytest.raises(UsageError, match=message):
        data.read_png_layout(root)


# --------------------------------------------------------------------------- idx


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_agrees_with_png_reader(data_root, tmp_path, gz):
    png = data.read_png_layout(data_root / "MNIST", ntrain=4, ntest=2)
    folder = write_idx_folder(tmp_path / "idx", *png, gz=gz)
    idx = data.read_idx_folder(folder)
    for a, b in zip(png, idx):
        np.testing.assert_array_equal(a, b)
    limited = data.read_idx_folder(folder, ntrain=2, ntest=1)
    assert np.bincount(limited[1]).tolist() == [2] * 10 and np.bincount(limited[3]).tolist() == [1] * 10


def test_idx_errors(data_root, tmp_path):
    png = data.read_png_layout(data_root / "MNIST", ntrain=2, ntest=1)
    folder = write_idx_folder(tmp_path / "idx", *png, gz=False)
    images = folder / "train-images-idx3-ubyte"
    raw = images.read_bytes()
    images.write_bytes(raw[:-100])
    with pytest.raises(UsageError, match="truncated"):
        data.read_idx_folder(folder)
    images.write_bytes(struct.pack(">I", 2049) + raw[4:])
    with pytest.raises(UsageError, match="magic number is 2049, expected 2051"):
        data.read_idx_folder(folder)
    images.unlink()
    with pytest.raises(UsageError, match="missing train-images-idx3-ubyte"):
        data.read_idx_folder(folder)


# --------------------------------------------------------------------------- resolution


def test_resolution_order(data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(data.ENV_VAR, str(data_root))
    assert data.resolve_location("cifar10") == ("png", str(data_root / "CIFAR10"))
    # --data-dir wins over the environment, and may name the folder holding CIFAR10/ and MNIST/.
    assert data.resolve_location("mnist", data_dir=str(data_root)) == ("png", str(data_root / "MNIST"))
    monkeypatch.delenv(data.ENV_VAR)
    _copy_layout(data_root / "CIFAR10", tmp_path / "data" / "CIFAR10", classes=2)
    assert data.resolve_location("cifar10") == ("png", "data/CIFAR10")
    # Nothing local and a local source forced: one error naming what was tried.
    with pytest.raises(UsageError, match="tried data/MNIST"):
        data.resolve_location("mnist", source="png")
    assert data.resolve_location("mnist") == ("tfds", "mnist")


def test_tfds_missing_gives_a_clear_error(tmp_path):
    # download=False: the same failure as offline, without fetching 170 MB where a network exists.
    with pytest.raises(UsageError, match="tensorflow-datasets could not load 'cifar10': Dataset cifar10: could not find"):
        data.read_tfds("cifar10", data_dir=str(tmp_path / "tfds"), download=False)


def test_offline_with_nothing_found_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_online", lambda: False)  # read_tfds looks it up in data.sources
    with pytest.raises(UsageError, match="no mnist data in .*data/MNIST, and no network"):
        data.read_tfds("mnist", data_dir=str(tmp_path / "tfds"))


# --------------------------------------------------------------------------- the assignment's subset


def test_the_assignment_subset_of_local_data_keeps_1000_and_100_per_class_in_order(data_root, tmp_path, cli):
    """A folder with more than the assignment's images (MNIST's 1000 train + 100 test per class as 1100
    training images, written by ``write_png_layout``): ``subset="assignment"`` keeps the first 1000 / 100
    of each class, in the folder's order, as written and read back."""
    from tf_assign2 import api

    train_x, train_y, test_x, test_y = data.read_png_layout(data_root / "MNIST")
    more_x, more_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    order = np.argsort(more_y, kind="stable")  # per class: the 1000 training images, then the 100 test ones
    root = data.write_png_layout(tmp_path / "MNIST", more_x[order], more_y[order], *data.per_class(more_x, more_y, 150))
    assert not list(tmp_path.glob(".MNIST.tmp-*"))  # written through a temporary folder, renamed into place
    assert len(list((root / "Train" / "7").iterdir())) == 1100 and (root / "Test/7/Image00149.png").is_file()

    arrays, info = data.load_arrays(api.settings("mnist", data_dir=str(root), subset="assignment", val_split=0))
    assert (info.n_train, info.n_test) == (10000, 1000)  # of 11,000 and 1,500
    np.testing.assert_array_equal(arrays.train_x, train_x)  # the first 1000 per class: MNIST's training images
    np.testing.assert_array_equal(arrays.test_x, data.per_class(more_x, more_y, 100)[0])
    everything, _ = data.load_arrays(api.settings("mnist", data_dir=str(root), val_split=0))
    assert len(everything.train_y) == 11000  # "all", the default, is every image of the folder
    with pytest.raises(UsageError, match="--subset assignment is the assignment's 28x28 gray images; drop --native"):
        data.load_arrays(api.settings("cifar", data_dir=str(data_root), subset="assignment", native=True))


@pytest.mark.slow
def test_the_assignment_subset_from_tensorflow_datasets_is_written_once_then_read_from_disk(tmp_path, monkeypatch):
    """tfds' own code path on generated data (``tfds.testing.mock_data``: no download): 28x28 gray, at most
    1000 / 100 per class, in the PNG layout under $TF_ASSIGN2_DATA; the next run reads that folder."""
    import tensorflow_datasets as tfds

    from tf_assign2 import api

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "data"))
    monkeypatch.setattr(sources, "_online", lambda: True)  # tfds' download path, served by mock_data
    config = api.settings("cifar", subset="assignment", tfds_data_dir=str(tmp_path / "tfds"), val_split=0)
    assert data.resolve_location("cifar10") == ("tfds", "cifar10")
    with tfds.testing.mock_data(num_examples=3000):  # random labels: about 300 images per class and split
        arrays, info = data.load_arrays(config)
    assert (info.source, info.location) == ("png", str(tmp_path / "data" / "CIFAR10"))
    assert arrays.train_x.shape[1:] == (28, 28, 1) and arrays.train_x.dtype == np.uint8
    assert np.bincount(arrays.test_y).tolist() == [100] * 10 and np.bincount(arrays.train_y).max() <= 1000
    assert data.resolve_location("cifar10") == ("png", str(tmp_path / "data" / "CIFAR10"))  # found from now on

    def no_tfds(*args, **kwargs):
        raise AssertionError("tensorflow-datasets read again")

    monkeypatch.setattr(tfds, "load", no_tfds)
    again, _ = data.load_arrays(config)
    np.testing.assert_array_equal(again.train_x, arrays.train_x)
    np.testing.assert_array_equal(again.test_y, arrays.test_y)


def test_offline_the_assignment_subset_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "_online", lambda: False)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nothing"))  # no local data anywhere
    done = cli("tf_assign2.cifar", "--subset", "assignment", "--tfds-data-dir", tmp_path / "tfds",
               "--runs-dir", tmp_path / "runs")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no cifar10 data in" in done.stderr and "and no network for tensorflow-datasets" in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "nothing").exists()
