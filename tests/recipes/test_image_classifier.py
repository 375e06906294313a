import csv
import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import recipes
from recipes import fit_image_classifier
from recipes.backbones import build_backbone, small_cnn
from recipes.image_classifier import (
    check_image_classifier_args,
    resolve_epochs,
)
from recipes.optimizers import DiscriminativeOptimizer
from tests.helpers import (
    assert_keras_round_trip,
    assert_seed_determines_weights,
)

FAST = dict(verbose=0, seed=0)


def _three_digits(digits_8x8, per_class=None):
    (x, y), (xv, yv) = digits_8x8
    keep, keep_v = np.flatnonzero(y < 3), np.flatnonzero(yv < 3)
    if per_class:
        keep = np.concatenate([np.flatnonzero(y == c)[:per_class]
                               for c in range(3)])
    return (x[keep], y[keep]), (xv[keep_v], yv[keep_v])


@pytest.fixture(scope="module")
def pretrained_cnn(tmp_path_factory, digits_8x8):
    """small_cnn weights trained here on real digits (a local weights file)."""
    (x, y), (xv, yv) = digits_8x8
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  epochs=3, **FAST)
    path = str(tmp_path_factory.mktemp("pretrained") / "cnn.weights.h5")
    result.model.get_layer("small_cnn").save_weights(path)
    return path


def test_digits_end_to_end_from_arrays(digits_8x8, tmp_path):
    (x, y), (xv, yv) = digits_8x8
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  test_data=(xv, yv), epochs=4, **FAST)
    # Chance is 10%; a pipeline that scrambled images or labels cannot
    # reach this on held-out digits.
    assert result.metrics["val_accuracy"] > 0.85
    assert result.metrics["test_accuracy"] == pytest.approx(
        result.metrics["val_accuracy"])
    assert result.config["backbone"] == "small_cnn"
    assert result.config["steps_per_execution"] == 32  # 47 steps, capped
    assert len(result.history["val_accuracy"]) == 4
    # The plan the run trained is what run.json records.
    plan = result.plan
    assert (plan.backbone, plan.epochs, plan.steps_per_execution) == (
        "small_cnn", 4, 32)
    assert plan.patience == result.config["patience"] == 3
    # Planning the same call without training gives the same plan.
    assert recipes.plan_image_classifier(
        (x, y), validation_data=(xv, yv), test_data=(xv, yv), epochs=4,
        **FAST) == plan
    predicted = result.predict(xv[..., 0])  # also without channel axis
    probabilities = result.model.predict(xv, verbose=0)
    np.testing.assert_array_equal(
        predicted, np.array(result.class_names)[probabilities.argmax(-1)])
    assert np.mean(predicted == yv.astype(str)) > 0.85
    assert len(result.plot()) == 2
    assert_keras_round_trip(result.model, xv[:16], tmp_path)


def test_plan_settles_auto_by_the_documented_rules(digits_8x8, tmp_path):
    (x, y), _ = digits_8x8
    out = tmp_path / "never"
    plan = recipes.plan_image_classifier((x, y), batch_size=32,
                                         output_dir=out)
    # 1,500 digits, 20% held out: ceil(1200 / 32) = 38 steps per epoch;
    # epochs="auto" is ceil(1000 / 38) = 27 epochs, patience 27 // 4 = 6.
    assert plan.steps_per_epoch == 38
    assert (plan.epochs, plan.fine_tune_epochs, plan.patience) == (27, 0, 6)
    assert (plan.backbone, plan.pretrained, plan.augment) == (
        "small_cnn", False, "none")
    assert plan.input_shape == (8, 8, 1)
    assert not out.exists()  # nothing written
    with pytest.raises(TypeError, match="epoch"):
        recipes.plan_image_classifier((x, y), epoch=3)
    with pytest.raises(ValueError, match="Received: dropout=2"):
        recipes.plan_image_classifier((x, y), dropout=2.0)


@pytest.mark.slow
def test_mnist_5k_default_recipe(mnist_5k):
    (x, y), (xv, yv) = mnist_5k
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  epochs=3, **FAST)
    assert result.metrics["val_accuracy"] > 0.95


def test_directory_of_uint8_images(tmp_path, digits_8x8):
    (x, y), (xv, yv) = _three_digits(digits_8x8)
    for root, images, labels in (("train", x, y), ("val", xv, yv)):
        for i, (image, label) in enumerate(zip(images, labels,
                                               strict=True)):
            folder = tmp_path / root / f"digit{label}"
            folder.mkdir(parents=True, exist_ok=True)
            keras.utils.save_img(folder / f"{i}.png",
                                 (image * 255).round().astype("uint8"),
                                 scale=False)
    result = fit_image_classifier(str(tmp_path / "train"),
                                  validation_data=str(tmp_path / "val"),
                                  epochs=4, batch_size=32, **FAST)
    assert result.class_names == ["digit0", "digit1", "digit2"]
    assert result.config["input_shape"] == (8, 8, 3)
    assert result.metrics["val_accuracy"] > 0.9  # chance: 1/3
    raw = np.repeat((xv * 255).round().astype("uint8"), 3, axis=-1)
    assert np.mean(result.predict(raw) == np.array(
        [f"digit{v}" for v in yv])) > 0.9


def test_tf_data_source(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    result = fit_image_classifier(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(50),
        validation_data=tf.data.Dataset.from_tensor_slices((xv, yv)),
        epochs=4, **FAST)
    assert result.config["data_source"] == "dataset"
    assert result.metrics["val_accuracy"] > 0.85


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=64):
        result = fit_image_classifier("mnist", test_data="test", epochs=1,
                                      **FAST)
    assert result.config["data_source"] == "tfds"
    assert result.class_names == [str(i) for i in range(10)]
    assert {"val_accuracy", "test_accuracy"} <= set(result.metrics)


def test_phase_two_unfreezes_only_requested_layers_bn_stays_frozen(
        pretrained_cnn, digits_8x8, tmp_path):
    (x, y), (xv, yv) = digits_8x8
    reference = small_cnn((8, 8, 1))
    reference.load_weights(pretrained_cnn)
    before = {v.path: np.array(v.numpy()) for v in reference.weights}

    result = fit_image_classifier(
        (x, y), validation_data=(xv, yv), backbone="small_cnn",
        weights=pretrained_cnn, epochs=1, fine_tune_epochs=1,
        fine_tune_layers=1, optimizer="sgd", schedule="constant",
        learning_rate=0.5, early_stopping=False,
        output_dir=str(tmp_path / "run"), **FAST)
    assert result.config["pretrained"] is True
    assert result.config["fine_tune_layers"] == ["features"]
    assert len(result.history["loss"]) == 2
    after = {v.path: np.array(v.numpy())
             for v in result.model.get_layer("small_cnn").weights}
    changed = sorted(p for p in before
                     if not np.array_equal(before[p], after[p]))
    # Only the requested top layer moved; conv layers and every BN
    # variable (moving statistics included: inference mode) did not.
    assert changed == ["features/bias", "features/kernel"]
    optimizer = result.model.optimizer
    assert isinstance(optimizer, DiscriminativeOptimizer)
    # Phase 2: head at a tenth of the phase-1 peak, backbone a tenth more.
    assert float(optimizer.inner_optimizer.learning_rate) == pytest.approx(
        0.05)
    (backbone,) = optimizer.group_optimizers
    assert float(backbone.learning_rate) == pytest.approx(0.005)
    assert optimizer.lr_mult == [pytest.approx(0.1)]
    assert "features/kernel" in optimizer.groups[0]
    # The phase-2 model (two optimizers) reloads in safe mode.
    loaded = keras.saving.load_model(str(tmp_path / "run" / "model.keras"),
                                     safe_mode=True)
    assert isinstance(loaded.optimizer, DiscriminativeOptimizer)
    np.testing.assert_allclose(loaded.predict(xv, verbose=0),
                               result.model.predict(xv, verbose=0),
                               atol=1e-6)


def _user_cnn():
    """A user's own (untrained) classifier for 8x8 digits."""
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def test_user_model_with_weights_none_trains_from_scratch(digits_8x8,
                                                          tmp_path):
    (x, y), (xv, yv) = digits_8x8
    keras.utils.set_random_seed(0)
    user = _user_cnn()
    before = [np.array(v.numpy()) for v in user.weights]
    # A new architecture: weights=None means untrained, so one phase with
    # every layer learning, the from-scratch default rate (2e-3 for AdamW
    # at batch 32) and no augmentation.
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  backbone=user, weights=None, epochs=4,
                                  early_stopping=False, **FAST)
    assert result.config["pretrained"] is False
    assert result.config["fine_tune_epochs"] == 0
    assert result.config["augment"] == "none"
    assert result.config["learning_rate"] == pytest.approx(2e-3)
    assert len(result.history["loss"]) == 4
    # Every kernel and bias of the user's features moved (the classifier
    # layer it came with is dropped).
    after = [np.array(v.numpy()) for v in user.weights[:-2]]
    assert all(not np.array_equal(b, a)
               for b, a in zip(before[:-2], after, strict=True))
    assert result.metrics["val_accuracy"] > 0.85
    # With weights="auto" the same kind of model counts as pretrained, and
    # fine-tuning epochs are refused for an untrained one.
    assert build_backbone(_user_cnn(), "auto")[2] is True
    assert build_backbone(_user_cnn(), None)[2] is False
    # Refused before the data is read: this directory does not exist.
    missing = str(tmp_path / "missing")
    with pytest.raises(ValueError, match="fine_tune_epochs=2"):
        fit_image_classifier(missing, backbone=_user_cnn(), weights=None,
                             fine_tune_epochs=2, **FAST)
    with pytest.raises(ValueError, match="keeps its own weights"):
        fit_image_classifier(missing, backbone=_user_cnn(),
                             weights="imagenet", **FAST)
    with pytest.raises(ValueError, match="weights='imagenet'"):
        fit_image_classifier(missing, backbone="small_cnn",
                             weights="imagenet", **FAST)


def test_output_dir_contents_and_finished_run_protection(digits_8x8,
                                                         tmp_path):
    (x, y), (xv, yv) = digits_8x8
    run = tmp_path / "run"
    result = fit_image_classifier((x, y), validation_data=(xv, yv),
                                  epochs=2, output_dir=str(run), **FAST)
    # A finished run keeps no crash-resume checkpoints; best.keras is a link
    # to model.keras (early stopping restored the best epoch).
    assert set(os.listdir(run)) == {
        "best.keras", "model.keras", "history.csv", "run.json",
        "training_curves.png", "logs", ".keras-recipes.json"}
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    # Counted from 1, as the progress bar counts.
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    np.testing.assert_allclose([float(r["val_accuracy"]) for r in rows],
                               result.history["val_accuracy"], rtol=1e-6)
    with open(run / "run.json") as f:
        saved = json.load(f)
    assert saved["status"] == "finished"
    assert saved["config"]["learning_rate"] == result.config["learning_rate"]
    assert saved["metrics"] == pytest.approx(result.metrics)
    assert os.listdir(run / "logs")  # TensorBoard event folders
    assert saved["best_model"] == "best.keras"
    best = keras.saving.load_model(str(run / "best.keras"), safe_mode=True)
    assert best.predict(xv[:4], verbose=0).shape == (4, 10)
    np.testing.assert_allclose(best.predict(xv, verbose=0),
                               result.model.predict(xv, verbose=0),
                               atol=1e-5)

    stamp = os.path.getmtime(run / "model.keras")
    with pytest.raises(ValueError, match="finished run"):
        fit_image_classifier((x, y), epochs=1, output_dir=str(run), **FAST)
    assert os.path.getmtime(run / "model.keras") == stamp
    fit_image_classifier((x[:300], y[:300]), epochs=1, output_dir=str(run),
                         overwrite=True, **FAST)
    with open(run / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_output_dir_never_overwrites_a_users_own_files(digits_8x8,
                                                      tmp_path):
    (x, y), (xv, yv) = digits_8x8
    mine = tmp_path / "mine"
    (mine / "logs").mkdir(parents=True)
    (mine / "logs" / "events.txt").write_text("my tensorboard logs")
    (mine / "model.keras").write_text("my model")
    (mine / "history.csv").write_text("epoch,loss\n0,9.9\n")
    with pytest.raises(ValueError, match=r"`output_dir`.*model\.keras.*"
                                         r"overwrite=True.*Received"):
        fit_image_classifier("no/such/dir", epochs=1, output_dir=str(mine),
                             **FAST)
    assert (mine / "model.keras").read_text() == "my model"
    assert (mine / "history.csv").read_text() == "epoch,loss\n0,9.9\n"
    # A directory of other files is fine, and so is overwrite=True, which
    # replaces the colliding files (the history is not appended to) and
    # leaves everything else alone.
    (tmp_path / "other" / "notes.txt").parent.mkdir()
    (tmp_path / "other" / "notes.txt").write_text("notes")
    fit_image_classifier((x[:200], y[:200]), validation_data=(xv, yv),
                         epochs=1, output_dir=str(tmp_path / "other"),
                         **FAST)
    assert (tmp_path / "other" / "notes.txt").read_text() == "notes"
    fit_image_classifier((x[:200], y[:200]), validation_data=(xv, yv),
                         epochs=1, output_dir=str(mine), overwrite=True,
                         **FAST)
    with open(mine / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1]
    assert (mine / "logs" / "events.txt").read_text() == "my tensorboard logs"
    keras.saving.load_model(str(mine / "model.keras"), safe_mode=True)


def test_predict_takes_one_image_or_a_batch(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    result = fit_image_classifier((x[:300], y[:300]), epochs=1, **FAST)
    batch = result.predict(xv[:5])
    assert batch.shape == (5,)
    # One image, with or without its channel axis, is a batch of one.
    assert list(result.predict(xv[0])) == [batch[0]]
    assert list(result.predict(xv[0, ..., 0])) == [batch[0]]
    np.testing.assert_array_equal(result.predict(xv[:5, ..., 0]), batch)
    with pytest.raises(ValueError, match=r"`images`.*\(8, 8, 1\).*"
                                         r"Received: images.shape=\(5, 9, 9\)"):
        result.predict(np.zeros((5, 9, 9)))


def test_bad_fine_tune_layers_fail_before_training(tmp_path, digits_8x8):
    (x, y), _ = digits_8x8
    for bad, error in [(-3, ValueError), (1.5, TypeError), ("", TypeError),
                       (None, TypeError)]:
        with pytest.raises(error, match="`fine_tune_layers`.*Received"):
            check_image_classifier_args(backbone="mobilenet_v2",
                                        fine_tune_layers=bad)
    # A misspelt layer name of a pretrained (user) backbone is caught when
    # the backbone is built, before phase 1 trains.
    pretrained = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, name="c1"),
        keras.layers.Flatten(),
        keras.layers.Dense(8, name="d1"),
    ])
    started = []

    class Started(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            started.append(True)

    with pytest.raises(ValueError, match="fine_tune_layers.*close names"):
        fit_image_classifier((x[:200], y[:200]), backbone=pretrained,
                             fine_tune_layers="c_typo", epochs=1,
                             callbacks=[Started()], **FAST)
    assert not started


def test_test_data_pixels_must_share_the_training_range(digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    as_uint8 = (x[:200] * 255).round().astype("uint8")
    with pytest.raises(ValueError, match=r"`test_data`.*\[0, 255\]"):
        fit_image_classifier((as_uint8, y[:200]), test_data=(xv, yv),
                             epochs=1, **FAST)


def test_lr_finder_and_bfloat16(digits_8x8):
    (x, y), _ = digits_8x8
    result = fit_image_classifier((x, y), epochs=1, learning_rate="auto",
                                  mixed_precision="mixed_bfloat16", **FAST)
    assert result.config["learning_rate_source"] == "lr_finder"
    assert 1e-6 < result.config["learning_rate"] < 1.0
    assert result.config["mixed_precision"] == "mixed_bfloat16"
    classifier = result.model.get_layer("recipe_classifier")
    assert classifier.dtype_policy.compute_dtype == "float32"
    conv = result.model.get_layer("small_cnn").get_layer("conv1")
    assert conv.dtype_policy.compute_dtype == "bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"


_STRATEGY_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from recipes import fit_image_classifier
    from recipes.datasets import load_digits_8x8
    (x, y), (xv, yv) = load_digits_8x8()
    out = {}
    # Same global batch (64) for both: per-replica 64 x 1 and 32 x 2.
    for strategy, per_replica in (("auto", 64), ("mirrored", 32)):
        r = fit_image_classifier((x, y), validation_data=(xv, yv), epochs=3,
                                 batch_size=per_replica, strategy=strategy,
                                 verbose=0, seed=0)
        out[strategy] = [r.config["strategy"], r.config["replicas"],
                         r.config["global_batch_size"],
                         r.config["steps_per_execution"],
                         r.metrics["val_accuracy"]]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_strategies_on_two_logical_cpus():
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _STRATEGY_SCRIPT],
                          capture_output=True, text=True, env=env,
                          timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # "auto" never mirrors CPU devices (the all-reduce costs more there).
    assert out["auto"][:4] == ["_DefaultDistributionStrategy", 1, 64, 24]
    assert out["mirrored"][:4] == ["MirroredStrategy", 2, 64, 1]
    assert out["mirrored"][4] > 0.8 and out["auto"][4] > 0.8


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": 0}, ValueError, "Received: epochs=0"),
    ({"epochs": "many"}, TypeError,
     r"Argument `epochs` must be 'auto' or an integer >= 1\. "
     r"Received: epochs='many'"),
    ({"epochs": 2.5}, TypeError, "epochs=2.5"),
    ({"epochs": True}, TypeError, "epochs=True"),
    ({"batch_size": 1.5}, TypeError, "batch_size"),
    ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ({"label_smoothing": 1.0}, ValueError, "label_smoothing"),
    ({"schedule": "linear"}, ValueError, "schedule"),
    ({"optimizer": "adamm"}, ValueError, "adam"),
    ({"backbone": "resnet"}, ValueError, "backbone"),
    ({"backbone": 3}, TypeError, "backbone"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"ema_momentum": 1.0}, ValueError, "ema_momentum=1.0"),
    ({"ema_momentum": -0.1}, ValueError, "ema_momentum"),
    ({"ema_momentum": "0.9"}, TypeError, "ema_momentum"),
    ({"fine_tune_epochs": -1}, ValueError, "fine_tune_epochs"),
    ({"augment": "heavy"}, ValueError, "augment"),
    ({"image_size": (8, 0)}, ValueError, "image_size"),
    ({"mixup": -0.1}, ValueError, "mixup"),
    ({"steps_per_execution": 0}, ValueError, "steps_per_execution"),
    ({"strategy": "gpu"}, ValueError, "strategy"),
    ({"mixed_precision": "half"}, ValueError, "mixed_precision"),
    ({"fine_tune_epochs": 2}, ValueError, "from scratch"),
    ({"fine_tune_layers": "abc"}, ValueError,
     "`fine_tune_layers`.*from scratch.*Received: fine_tune_layers='abc'"),
    ({"fine_tune_layers": 3}, ValueError, "fine_tune_layers=3"),
])
def test_bad_arguments_fail_before_any_work(kwargs, error, match, tmp_path,
                                            digits_8x8):
    (x, y), _ = digits_8x8
    run = tmp_path / "run"
    with pytest.raises(error, match=match):
        fit_image_classifier((x[:200], y[:200]), output_dir=str(run),
                             epochs=kwargs.pop("epochs", 1), **kwargs,
                             **FAST)
    assert not run.exists()


def test_bad_data_through_the_recipe(tmp_path):
    with pytest.raises(ValueError, match="existing directory"):
        fit_image_classifier(str(tmp_path / "missing" / "dir"), **FAST)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_image_classifier((np.zeros((10, 8, 8)), np.zeros(10)), **FAST)


def test_same_seed_gives_identical_weights(digits_8x8):
    """`seed=` makes two runs on CPU identical (weights, split, shuffles,
    dropout); a different seed does not."""
    (x, y), _ = digits_8x8

    def weights(seed):
        keras.backend.clear_session()
        result = fit_image_classifier(
            (x[:600], y[:600]), validation_split=0.2, epochs=2,
            batch_size=64, dropout=0.3, augment="default", verbose=0,
            seed=seed)
        return result.model.get_weights()

    assert_seed_determines_weights(weights, 7, 8)


def test_predict_warns_on_unit_floats_for_a_0_255_model():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    result = recipes.ImageClassifierResult(
        model, ["a", "b"], {}, {}, {"value_range": 255.0})
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match=r"floats in \[0, 1\]"):
        result.predict(rng.random((3, 4, 4, 1)).astype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result.predict(rng.random((3, 4, 4, 1)).astype("float32") * 255)


class _BackboneMoves(keras.callbacks.Callback):
    """Backbone layers whose weights changed in each epoch."""

    def on_train_begin(self, logs=None):
        self.epochs = getattr(self, "epochs", [])

    def _weights(self):
        backbone = self.model.get_layer("small_cnn")
        return {v.path: np.array(v.numpy()) for v in backbone.weights}

    def on_epoch_begin(self, epoch, logs=None):
        self.before = self._weights()

    def on_epoch_end(self, epoch, logs=None):
        after = self._weights()
        self.epochs.append(sorted({
            p.split("/")[-2] for p in after
            if not np.array_equal(after[p], self.before[p])}))


def test_gradual_unfreezing_unfreezes_one_stage_per_epoch(pretrained_cnn,
                                                          digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    moves = _BackboneMoves()
    result = fit_image_classifier(
        (x, y), validation_data=(xv, yv), backbone="small_cnn",
        weights=pretrained_cnn, epochs=1, fine_tune_epochs=2,
        fine_tune_layers=3, unfreeze="gradual", ema_momentum=None,
        early_stopping=False, callbacks=[moves], **FAST)
    # The top three layers with weights, less the BatchNormalization.
    top_two = result.config["fine_tune_layers"]
    assert len(top_two) == 2 and result.config["unfreeze"] == "gradual"
    # Phase 1: frozen backbone; phase 2: the top layer, then both.
    assert moves.epochs == [[], [top_two[1]], sorted(top_two)]
    with pytest.raises(ValueError, match="unfreeze='gradual'"):
        fit_image_classifier((x, y), backbone="small_cnn", weights=None,
                             unfreeze="gradual", **FAST)
    with pytest.raises(ValueError, match="unfreeze='slowly'"):
        fit_image_classifier((x, y), unfreeze="slowly", **FAST)


@pytest.mark.parametrize("num_train, batch_size", [
    (1, 32), (300, 32), (480, 32), (1500, 32), (4000, 32), (4000, 128),
    (10**6, 32), (999, 1), (1000, 1), (1001, 1), (60_000, 256)])
def test_auto_epochs_are_a_step_budget_between_10_and_60(num_train,
                                                         batch_size):
    # The documented rule: ceil(1000 / steps per epoch) epochs, clipped to
    # [10, 60], for backbones trained from scratch and pretrained alike.
    steps_per_epoch = -(-num_train // batch_size)
    expected = int(np.clip(-(-1000 // steps_per_epoch), 10, 60))
    assert resolve_epochs("auto", num_train, batch_size) == expected
    assert 10 <= expected <= 60
    assert resolve_epochs(7, num_train, batch_size) == 7
    # The budget is met or exceeded unless the ceiling cuts it.
    steps = resolve_epochs("auto", num_train, batch_size) * steps_per_epoch
    assert steps >= 1000 or expected == 60


def test_auto_epochs_bad_input():
    with pytest.raises(TypeError, match="Received: epochs='many'"):
        resolve_epochs("many", 100, 32)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        resolve_epochs(0, 100, 32)
    with pytest.raises(ValueError, match="Received: num_train=0"):
        resolve_epochs("auto", 0, 32)


def test_auto_epochs_are_recorded_in_the_config():
    # 24 training images in one batch: 1 step per epoch, so "auto" is the
    # ceiling, 60; early stopping (patience 0) on noise ends the run early.
    # `run.json` writes this config.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 8, 8, 1)).astype("uint8")
    y = np.arange(30) % 2
    result = fit_image_classifier((x, y), batch_size=32, patience=0,
                                  **FAST)
    assert result.config["epochs"] == 60
    assert result.config["epochs_run"] < 60
