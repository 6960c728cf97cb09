"""Recipe options, each off by default: horizontal flips, warm-up and one-cycle schedules, the moving
average of the weights, test-time augmentation and the batchnorm LeNet5 - checked on the real data,
down to the exact images flipped and the exact weights exported, and an averaged run resumed."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import copy_run
from helpers import StopAt, resume_run, run_history

from tf_assign2 import config as settings
from tf_assign2 import data, models
from tf_assign2.cli import training_parser
from tf_assign2.cli.tune import build_parser as tune_parser
from tf_assign2.data import pipeline
from tf_assign2.errors import UsageError
from tf_assign2.training import ema, schedules
from tf_assign2.training import tta as test_time
from tf_assign2.training.trainer import Trainer

SEED, BATCH = 3, 45  # 180 training images (20 per class less the validation split): 4 full batches


@pytest.fixture(scope="module")
def cifar_arrays(data_root):
    cfg = settings.build("cifar", {"data_dir": str(data_root / "CIFAR10"), "ntrain": 20, "ntest": 5})
    arrays, _ = data.load_arrays(cfg)
    assert len(arrays.train_y) == 180
    return arrays


def _epochs(x, y, epochs, start_epoch=0, **augment):
    """[(epoch, batch index, sample indices, images)] of the training pipeline's first ``epochs`` epochs."""
    steps = data.steps_per_epoch(len(y), BATCH)
    ds = data.train_dataset(x, y, BATCH, SEED, start_epoch, **augment)
    batches = [b[0].numpy() for b in ds.take(epochs * steps)]
    found = []
    for k, images in enumerate(batches):
        epoch, i = start_epoch + k // steps, k % steps
        idx = pipeline.epoch_order(len(y), SEED, epoch).numpy()[i * BATCH:(i + 1) * BATCH]
        found.append((epoch, i, idx, images))
    return found


def _seen_flipped(originals, images):
    """Per image: True if it came out mirrored, False if as it was (asserting it is one of the two);
    None for an image equal to its own mirror, which cannot tell."""
    states = []
    for original, image in zip(originals, images):
        mirror = original[:, ::-1]
        if np.array_equal(original, mirror):
            states.append(None)
            continue
        assert np.array_equal(image, original) or np.array_equal(image, mirror)
        states.append(bool(np.array_equal(image, mirror)))
    return states


def test_random_flip_mirrors_exactly_the_images_it_draws_and_new_ones_each_epoch(cifar_arrays):
    x, y = cifar_arrays.train_x, cifar_arrays.train_y
    flipped_by_epoch = {0: set(), 1: set()}
    for epoch, i, idx, images in _epochs(x, y, 2, flip="random"):
        seen = _seen_flipped(x[idx].astype(np.float32) / 255, images)
        batch_seed = tf.random.experimental.stateless_fold_in(tf.constant([SEED, epoch], tf.int64),
                                                              tf.constant(i, tf.int64))  # as tf.data counts
        drawn = pipeline.flip_mask("random", tf.constant(idx), epoch, batch_seed).numpy()
        assert [s for s in seen if s is not None] == [bool(d) for s, d in zip(seen, drawn) if s is not None]
        flipped_by_epoch[epoch] |= {int(j) for j, s in zip(idx, seen) if s}
    for flipped in flipped_by_epoch.values():
        assert 0.3 < len(flipped) / len(y) < 0.7  # a coin per image
    assert flipped_by_epoch[0] != flipped_by_epoch[1]  # new draws every epoch
    # the same (seed, epoch) flips the same images: a second pipeline gives identical batches
    again = _epochs(x, y, 1, flip="random")
    assert all(np.array_equal(a[3], b[3]) for a, b in zip(again, _epochs(x, y, 1, flip="random")))


def test_alternate_flip_mirrors_each_image_in_every_other_epoch(cifar_arrays):
    x, y = cifar_arrays.train_x, cifar_arrays.train_y
    state = {}  # (epoch, sample index) -> flipped
    for epoch, _, idx, images in _epochs(x, y, 3, flip="alternate"):
        for j, s in zip(idx, _seen_flipped(x[idx].astype(np.float32) / 255, images)):
            if s is not None:
                state[epoch, int(j)] = s
    images = {j for _, j in state}
    assert len(images) > 170  # every image is used each epoch at batch 45 (a few are symmetric)
    for j in images:
        assert state[0, j] != state[1, j] and state[1, j] != state[2, j] and state[0, j] == state[2, j]
    assert abs(sum(state[0, j] for j in images) - len(images) / 2) <= 10  # a fixed half: 90 of the 180


def test_flip_acts_on_recurrent_rows_too():
    rows = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    flipped = pipeline.flip_images(tf.constant(rows), tf.constant([True, False])).numpy()
    assert np.array_equal(flipped[0], rows[0][:, ::-1]) and np.array_equal(flipped[1], rows[1])


@pytest.mark.parametrize("flip", ["random", "alternate"])
def test_flipped_and_shifted_pipeline_resumes_exactly(cifar_arrays, flip):
    x, y = cifar_arrays.train_x, cifar_arrays.train_y
    steps = data.steps_per_epoch(len(y), BATCH)
    uninterrupted = _epochs(x, y, 3, flip=flip, shift=2)[steps:]  # epochs 1 and 2
    resumed = _epochs(x, y, 2, start_epoch=1, flip=flip, shift=2)
    assert len(resumed) == len(uninterrupted) == 2 * steps
    for a, b in zip(uninterrupted, resumed):
        assert a[:2] == b[:2] and np.array_equal(a[3], b[3])


# --------------------------------------------------------------------------- schedules


def test_schedules_follow_their_formulas():
    lr, total = 0.01, 100
    one = schedules.learning_rate(settings.build("cifar", {"schedule": "onecycle", "warmup": 0.25, "lr": lr}), total)
    values = {step: float(one(step)) for step in (0, 10, 25, 60, 99, 100)}
    assert values[0] == pytest.approx(lr / 10)  # warm-up start
    assert values[10] == pytest.approx(lr / 10 + (lr - lr / 10) * 10 / 25)
    assert values[25] == pytest.approx(lr)  # the peak
    assert values[60] == pytest.approx(lr * 40 / 75)
    assert values[99] == pytest.approx(lr / 75) and values[100] == 0.0  # down to ~0 at the end

    cosine = schedules.learning_rate(settings.build("cifar", {"schedule": "cosine", "warmup": 0.1, "lr": lr}), total)
    assert float(cosine(0)) == pytest.approx(lr / 10)
    assert float(cosine(5)) == pytest.approx((lr / 10 + lr) / 2)
    assert float(cosine(10)) == pytest.approx(lr)
    assert float(cosine(55)) == pytest.approx(lr / 2, rel=1e-5)  # half-way down the cosine
    assert float(cosine(100)) == pytest.approx(0.0, abs=1e-9)
    plain = schedules.learning_rate(settings.build("cifar", {"schedule": "cosine", "lr": lr}), total)
    assert float(plain(0)) == pytest.approx(lr) and float(plain(50)) == pytest.approx(lr / 2, rel=1e-5)
    assert schedules.learning_rate(settings.build("cifar", {"lr": lr}), total) == lr  # constant: a number

    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(one))
    assert float(restored(60)) == values[60]  # model.keras saves and loads it with the optimizer


# --------------------------------------------------------------------------- EMA


def test_exact_swap_gives_the_weights_back_bit_for_bit():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(keras.optimizers.SGD(0.1, use_ema=True), "mse")
    model.optimizer.build(model.trainable_variables)
    small = np.full((3, 4), 1e-3, np.float32) + np.float32(1e-9) * np.arange(12, dtype=np.float32).reshape(3, 4)
    model.trainable_variables[0].assign(small)  # adding 1.0 and subtracting it again would lose its low bits
    averages = [v for v in model.optimizer.variables if v.path.endswith("_average")]
    averages[0].assign(np.ones((3, 4), np.float32))
    before = [v.numpy().copy() for v in model.trainable_variables + averages]
    ema.swap_weights(model.optimizer)
    assert np.array_equal(model.trainable_variables[0].numpy(), before[2])
    ema.swap_weights(model.optimizer)
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(model.trainable_variables + averages, before))


class _Record(keras.callbacks.Callback):
    """After each training step, the training weights and the optimizer's averages (the last ones are
    kept); at each epoch's end, the weights an extra callback (the figures) sees."""

    def on_train_batch_end(self, batch, logs=None):
        self.weights = [v.numpy().copy() for v in self.model.trainable_variables]
        averages = [v for v in self.model.optimizer.variables if v.path.endswith("_average")]
        self.averages = [v.numpy().copy() for v in averages]

    def on_epoch_end(self, epoch, logs=None):
        self.seen_at_epoch_end = [v.numpy().copy() for v in self.model.trainable_variables]


EMA_EPOCHS = 4


def _ema_config(data_root, runs_dir):
    return settings.build("cifar", {"data_dir": str(data_root / "CIFAR10"), "ntrain": 20, "ntest": 5,
                                    "conv_filters": [4, 8], "fc_units": 16, "epochs": EMA_EPOCHS, "lr": 0.01,
                                    "deterministic": True, "visualize": False, "ema": 0.9, "flip": "random",
                                    "schedule": "onecycle", "warmup": 0.25, "runs_dir": str(runs_dir)})


@pytest.fixture(scope="module")
def ema_run(data_root, tmp_path_factory):
    cfg = _ema_config(data_root, tmp_path_factory.mktemp("ema") / "runs")
    keras.config.disable_interactive_logging()
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    record = _Record()
    summary = trainer.run(trainer.new_run_dir(), extra_callbacks=[record])
    assert summary["status"] == "completed"
    return cfg, arrays, info, summary, record


@pytest.mark.slow
def test_an_averaged_run_evaluates_and_exports_the_averages(ema_run):
    cfg, arrays, _, summary, record = ema_run
    exported = keras.saving.load_model(f"{summary['run_dir']}/model.keras")
    weights = [v.numpy() for v in exported.trainable_variables]
    assert all(np.array_equal(w, a) for w, a in zip(weights, record.averages))
    assert not any(np.array_equal(w, r) for w, r in zip(weights, record.weights))  # not the training weights
    assert all(np.array_equal(w, a) for w, a in zip(weights, record.seen_at_epoch_end))  # the figures' view
    history = run_history(summary["run_dir"])
    # the last epoch's test curve and validation scored the averages, as the final test does
    assert float(history[-1]["test_loss"]) == summary["test_loss"]
    probs = exported.predict(arrays.val_x.astype(np.float32) / 255, verbose=0)
    assert float(history[-1]["val_accuracy"]) == pytest.approx((probs.argmax(1) == arrays.val_y).mean(), abs=1e-6)
    assert exported.optimizer.use_ema and exported.optimizer.ema_momentum == cfg.ema


@pytest.mark.slow
def test_an_averaged_run_stopped_and_resumed_equals_the_uninterrupted_one(ema_run):
    cfg, arrays, info, reference, _ = ema_run
    trainer = Trainer(cfg, arrays, info)
    run_dir = trainer.new_run_dir()
    assert trainer.run(run_dir, extra_callbacks=[StopAt(3)])["status"] == "interrupted"
    summary = resume_run(cfg, arrays, info, run_dir)
    assert summary["status"] == "completed" and summary["epochs_completed"] == EMA_EPOCHS
    for key in ("test_accuracy", "test_loss", "final_train_loss", "final_val_accuracy"):
        assert summary[key] == reference[key], key
    assert run_history(run_dir) == run_history(reference["run_dir"])


# --------------------------------------------------------------------------- test-time augmentation


def test_tta_flip_averages_the_probabilities_of_the_image_and_its_mirror(small_config):
    cfg = small_config(conv_filters=(4, 8), fc_units=16, tta="flip", precision="float32")
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    model = trainer.build_model()
    loss, accuracy = trainer.test_metrics(model)
    images = arrays.test_x.astype(np.float32) / 255
    views = [tf.nn.softmax(model(v, training=False)).numpy().astype(np.float64) for v in (images, images[:, :, ::-1])]
    probs = (views[0] + views[1]) / 2
    assert accuracy == (probs.argmax(1) == arrays.test_y).mean()
    assert loss == pytest.approx(-np.log(probs[np.arange(len(probs)), arrays.test_y]).mean(), rel=1e-6)
    plain_loss, _ = trainer.test_metrics(model, tta="none")
    assert plain_loss == pytest.approx(-np.log(views[0][np.arange(len(probs)), arrays.test_y]).mean(), rel=1e-5)
    assert plain_loss != pytest.approx(loss, rel=1e-6)  # the mirror view counts


def test_flip_shift_views_are_the_mirror_and_one_pixel_diagonal_moves(cifar_arrays):
    images = cifar_arrays.test_x[:4]
    views = test_time.tta_views(images, "flip-shift")
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125] and sum(w for w, _ in views) == 1
    plain, mirror, down_right, up_left = (v for _, v in views[:4])
    assert np.array_equal(plain, images) and np.array_equal(mirror, images[:, :, ::-1])
    assert np.array_equal(down_right[:, 1:, 1:], images[:, :-1, :-1])
    assert np.array_equal(down_right[:, 0, 1:], images[:, 1, :-1])  # the uncovered edge: reflected
    assert np.array_equal(up_left[:, :-1, :-1], images[:, 1:, 1:])
    assert np.array_equal(views[4][1][:, 1:, 1:], mirror[:, :-1, :-1])


def test_evaluate_tta_flip_on_a_run(cifar_run, tmp_path, cli):
    run_dir = copy_run(cifar_run.run_dir, tmp_path)
    done = cli("tf_assign2.evaluate", run_dir, "--tta", "flip", "--out", tmp_path / "e")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "e" / "eval.json").read_text())
    images = cifar_run.arrays.test_x.astype(np.float32) / 255
    probs = sum(tf.nn.softmax(cifar_run.model.predict(v, verbose=0)).numpy() for v in (images, images[:, :, ::-1]))
    assert result["tta"] == "flip" and result["accuracy"] == (probs.argmax(1) == cifar_run.arrays.test_y).mean()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["accuracy_no_tta"] == summary["test_accuracy"]  # the run itself had no TTA
    assert result["run_test_accuracy"] is None  # and so no figure under TTA to compare with
    assert f"test accuracy {result['accuracy']:.4f}" in done.stdout
    assert f"test-time augmentation flip; without it: {summary['test_accuracy']:.4f}" in done.stdout


# --------------------------------------------------------------------------- batchnorm


def test_batchnorm_is_a_lenet5_variant_the_default_network_is_unchanged():
    default = models.build(settings.build("cifar"), (28, 28, 1), 10)
    variant = models.build(settings.build("cifar", {"batchnorm": True}), (28, 28, 1), 10)
    assert default.count_params() == 3_274_634 and variant.count_params() == 3_277_994
    assert [layer.name for layer in default.layers] == ["images", "conv1", "pool1", "conv2", "pool2", "flatten",
                                                        "fc1", "dropout", "logits"]
    assert {"conv1_bn", "conv2_bn", "fc1_bn"} <= {layer.name for layer in variant.layers}
    assert not settings.ignored_by_model("lenet5", "batchnorm") and settings.ignored_by_model("rnn", "batchnorm")


@pytest.mark.slow
def test_a_batchnorm_run_completes(small_config):
    cfg = small_config(batchnorm=True, conv_filters=(4, 8), fc_units=16, deterministic=True)
    arrays, info = data.load_arrays(cfg)
    trainer = Trainer(cfg, arrays, info)
    summary = trainer.run(trainer.new_run_dir())
    assert summary["status"] == "completed" and summary["parameters"] == trainer.build_model().count_params()
    assert (Path(summary["run_dir"]) / "saved_model" / "saved_model.pb").is_file()


# --------------------------------------------------------------------------- the schema

NEW_FLAGS = {"flip": ("--flip", "alternate", "alternate"), "ema": ("--ema", "0.99", 0.99),
             "warmup": ("--warmup", "0.2", 0.2), "tta": ("--tta", "flip-shift", "flip-shift"),
             "batchnorm": ("--batchnorm", None, True), "schedule": ("--schedule", "onecycle", "onecycle")}


def test_the_new_settings_are_flags_of_the_training_clis_and_tune():
    for parser in (training_parser("cifar"), training_parser("mnist"), tune_parser()):
        for name, (flag, text, value) in NEW_FLAGS.items():
            args = [flag] if text is None else [flag, text]
            if parser.prog.endswith("tune"):
                args = ["cifar", *args]
            assert getattr(parser.parse_args(args), name) == value, (parser.prog, name)
    assert set(NEW_FLAGS) <= set(settings.TUNE_FLAGS) and set(NEW_FLAGS) <= set(settings.COLUMNS)
    defaults = settings.build("cifar")
    assert (defaults.flip, defaults.ema, defaults.warmup, defaults.tta, defaults.batchnorm, defaults.schedule) == \
        ("none", 0.0, 0.0, "none", False, "constant")


@pytest.mark.parametrize("args, words", [
    (("--flip", "sideways"), "--flip: invalid choice: 'sideways'"),
    (("--ema", "1"), "--ema: expected a momentum in [0, 1), got 1"),
    (("--warmup", "-0.1"), "--warmup: expected a fraction in [0, 1), got -0.1"),
    (("--tta", "maybe"), "--tta: invalid choice: 'maybe'"),
    (("--warmup", "0.1"), "--warmup is for --schedule cosine or onecycle; add one, or drop --warmup"),
])
def test_bad_values_are_one_line_errors(cli, args, words):
    for command in ("tf_assign2.cifar", "tf_assign2.mnist"):
        done = cli(command, *args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and words in done.stderr


def test_bad_values_in_files_and_evaluate(cli):
    with pytest.raises(UsageError, match=r"f\.yaml: ema: 1\.5: expected a momentum in \[0, 1\)"):
        settings.file_values({"ema": 1.5}, "f.yaml")
    with pytest.raises(UsageError, match=r"f\.yaml: flip: sideways: expected one of none, random, alternate"):
        settings.file_values({"flip": "sideways"}, "f.yaml")
    done = cli("tf_assign2.evaluate", "somewhere", "--tta", "twice")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--tta: invalid choice" in done.stderr
