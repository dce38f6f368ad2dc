"""The tooling for a lent GPU machine: the compact data bundle and members trained side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion.training.bundle import main as bundle
from emotion.training.data import load_split, save_compact
from emotion.training.members import main as members
from emotion.training.train import holdout_split

from .conftest import SHARED_DATA
from .test_training import _tiny_split


def test_a_compact_split_reads_back_exactly_and_smaller(tmp_path) -> None:
    """Row deltas wrap modulo 256 (0 next to 255 both ways) and sum back to the same pixels; on smooth
    faces the file is smaller than the plain compressed one."""
    rng = np.random.default_rng(1)
    smooth = np.cumsum(rng.integers(-3, 4, (40, 48, 48)), axis=2) + rng.integers(0, 256, (40, 48, 1))
    smooth = (smooth % 256).astype(np.uint8)  # random walks along each row, as neighbouring pixels are
    edges = rng.choice(np.array([0, 255], dtype=np.uint8), (8, 48, 48))
    x = np.concatenate([smooth, edges])
    y = np.arange(len(x)) % 7
    save_compact(tmp_path / "compact.npz", x, y)
    back_x, back_y = load_split(tmp_path / "compact.npz")
    np.testing.assert_array_equal(back_x, x)
    np.testing.assert_array_equal(back_y, y)
    np.savez_compressed(tmp_path / "plain.npz", x=x, y=y.astype(np.uint8))
    assert (tmp_path / "compact.npz").stat().st_size < (tmp_path / "plain.npz").stat().st_size


def test_the_bundle_leaves_out_the_faces_the_long_run_holds_out(tmp_path) -> None:
    _tiny_split(tmp_path / "train.npz", 140, 11)
    _tiny_split(tmp_path / "val.npz", 30, 12)
    out = tmp_path / "bundle"
    argv = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--out", str(out)]
    bundle([*argv, "--holdout", "0.2", "--seed", "5", "--val-images", "10", "--no-wheels"])
    x, y = load_split(tmp_path / "train.npz")
    kept, held = holdout_split(y, 0.2, 5)
    packed_x, packed_y = load_split(out / "train.npz")
    np.testing.assert_array_equal(packed_x, x[kept])
    np.testing.assert_array_equal(packed_y, y[kept])
    assert len(held) and not any((packed_x == face).all(axis=(1, 2)).any() for face in x[held])
    assert len(load_split(out / "val.npz")[1]) == 10
    assert not (out / "whl").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_members_train_side_by_side_and_come_back_as_weights(tmp_path, capfd) -> None:
    """Two members with their own seeds: both finish, each comes back as its own weights with its history,
    and their output is relayed with the seed in front."""
    import keras

    _tiny_split(tmp_path / "train.npz", 48, 13)
    _tiny_split(tmp_path / "val.npz", 16, 14)
    out = tmp_path / "out"
    argv = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--members", "2"]
    argv += ["--first-seed", "40", "--epochs", "2", "--batch", "16", "--run-root", str(tmp_path / "runs")]
    assert members([*argv, "--out-dir", str(out)]) == 0
    report = json.loads((out / "members.json").read_text())
    assert sorted(report["members"]) == ["40", "41"]
    assert all(m["exit_code"] == 0 and len(m["history"]) == 2 for m in report["members"].values())
    first, second = (keras.saving.load_model(out / f"member-{seed}.keras") for seed in (40, 41))
    assert not np.allclose(first.get_weights()[0], second.get_weights()[0])
    assert all((tmp_path / "runs" / f"member-{seed}" / "emotion.tflite").is_file() for seed in (40, 41))
    printed = capfd.readouterr().out
    assert "[40] Epoch 2/2" in printed and "[41] Epoch 2/2" in printed


def test_a_failing_member_fails_the_run(tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["--train", str(tmp_path / "missing.npz"), "--val", str(tmp_path / "missing.npz"), "--members", "1"]
    assert members([*argv, "--run-root", str(tmp_path / "runs"), "--out-dir", str(out)]) == 1
    report = json.loads((out / "members.json").read_text())
    assert report["members"]["3001"]["exit_code"] != 0 and report["members"]["3001"]["weights"] is None


def _served_network(tmp_path):
    """A network whose batch normalisations hold real statistics and random scales and shifts, exported as the
    service's int8 file: the network, faces its answers differ on, and the file."""
    import keras

    from emotion.training.train import build_model, export_tflite

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    ramp = np.linspace(-1, 1, 48)
    slopes, levels = rng.uniform(-100, 100, (64, 2, 1, 1)), rng.uniform(40, 215, (64, 1, 1))
    faces = levels + slopes[:, 0] * ramp[None, :, None] + slopes[:, 1] * ramp[None, None, :]  # lit from anywhere
    batch = np.clip(faces, 0, 255).astype(np.float32)[..., None]
    original = build_model(8)
    for layer in original.layers:  # statistics of what reaches each normalisation, so activations keep scale
        if isinstance(layer, keras.layers.BatchNormalization):
            seen = keras.Model(original.input, layer.input).predict(batch, verbose=0)
            mean, variance = seen.mean(axis=tuple(range(seen.ndim - 1))), seen.var(axis=tuple(range(seen.ndim - 1)))
            gamma, beta = rng.uniform(0.5, 2.0, mean.shape), rng.normal(0, 0.5, mean.shape)
            layer.set_weights([gamma, beta, mean, variance])
    logits = original.get_layer("logits")
    logits.set_weights([logits.kernel.numpy(), rng.normal(0, 0.5, 7)])
    export_tflite(original, tmp_path / "net.tflite", "int8")
    return original, batch, tmp_path / "net.tflite"


def test_weights_recovered_from_a_served_file_compute_what_it_computes(tmp_path) -> None:
    """The recovered Keras network agrees with both the file and the original network, on faces for which
    the network's answers differ."""
    from emotion.training.recover import recover

    original, batch, path = _served_network(tmp_path)
    recovered = recover(path, width=8)

    want = original.predict(batch, verbose=0)
    got = recovered.predict(batch, verbose=0)
    served = np.concatenate([_raw(path, face) for face in batch])
    assert want.std(axis=0).mean() > 0.05  # else any network would agree
    assert np.abs(got - want).max() < 0.05 and np.abs(got - served).max() < 0.05
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.9


def test_recovered_normalisations_train_from_where_the_file_serves(tmp_path) -> None:
    """With the statistics measured on faces, each batch normalisation computes the same in training (batch
    statistics) as in serving, and serving is unchanged; without them training starts from another function."""
    import keras

    from emotion.training.recover import recover, restore_statistics

    _, batch, path = _served_network(tmp_path)
    plain, restored = recover(path, width=8), recover(path, width=8)
    restore_statistics(restored, batch)
    np.testing.assert_allclose(restored.predict(batch, verbose=0), plain.predict(batch, verbose=0), atol=1e-4)

    def gap(model) -> float:
        """The largest difference, over the normalisations, between training and serving on their inputs."""
        norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        seen = keras.Model(model.inputs, [bn.input for bn in norms]).predict(batch, verbose=0)
        serving = [np.asarray(bn(x, training=False)) for bn, x in zip(norms, seen, strict=True)]
        training = [np.asarray(bn(x, training=True)) for bn, x in zip(norms, seen, strict=True)]
        pairs = zip(serving, training, strict=True)
        return max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-6)) for a, b in pairs)

    assert gap(restored) < 0.01
    assert gap(plain) > 0.1


def _raw(path, face: np.ndarray) -> np.ndarray:
    """The file's own output for one face, no test-time views."""
    from emotion.litert import load_interpreter

    interpreter = load_interpreter(path)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], face[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.skipif(not (SHARED_DATA / "fer2013" / "val.npz").is_file(), reason="needs ../shared/data/fer2013/val.npz")
def test_export_takes_test_time_views_only_within_the_per_face_budget() -> None:
    """The served network gains from its views on the validation faces, so with no budget they are taken;
    with a budget no view fits in, none is, whatever they gain."""
    from emotion.classifier import DEFAULT_MODEL
    from emotion.training.export import choose

    faces, truth = load_split(SHARED_DATA / "fer2013" / "val.npz")
    faces, truth = faces[:1200], truth[:1200]  # the views gain more than MIN_GAIN on these too
    candidates = {"int8": DEFAULT_MODEL}
    assert choose(candidates, faces, truth)[1] != (False, False)
    assert choose(candidates, faces, truth, max_face_ms=0.0)[1] == (False, False)


def test_averaging_copies_of_one_network_gives_it_back(tmp_path) -> None:
    """The mean of one network's weights and statistics is that network."""
    from emotion.training.average import average

    original, batch, _ = _served_network(tmp_path)
    original.save_weights(tmp_path / "one.weights.h5")
    averaged = average([tmp_path / "one.weights.h5"] * 3, width=8)
    want = original.predict(batch, verbose=0)
    assert want.std(axis=0).mean() > 0.05
    np.testing.assert_allclose(averaged.predict(batch, verbose=0), want, atol=1e-4)


def test_a_run_keeps_its_last_epochs_and_averages_them(tmp_path) -> None:
    """``--constant --keep-epochs 2`` of 3 epochs: a flat learning rate, and the weights of epochs 2 and 3 kept.
    Their average holds the mean of each weight and of each normalisation's moving statistics."""
    from emotion.training.average import main as average
    from emotion.training.train import build_model, learning_rate, main, parse_args

    _tiny_split(tmp_path / "train.npz", 64, 21)
    _tiny_split(tmp_path / "val.npz", 16, 22)
    run = tmp_path / "run"
    args = ["--train", str(tmp_path / "train.npz"), "--val", str(tmp_path / "val.npz"), "--run-dir", str(run)]
    args += ["--epochs", "3", "--steps", "2", "--batch", "16", "--width", "8", "--verbose", "0", "--lr", "0.02"]
    assert learning_rate(parse_args([*args, "--constant"]), 2) == 0.02
    main([*args, "--constant", "--keep-epochs", "2"])
    kept = sorted(run.glob("epoch-*.weights.h5"))
    assert [path.name for path in kept] == ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]
    info = json.loads((run / "train_info.json").read_text())
    assert info["constant"] is True and info["keep_epochs"] == 2

    average(["--weights", *map(str, kept), "--out", str(tmp_path / "mean.weights.h5"), "--width", "8"])
    averaged, *members = (build_model(8) for _ in range(3))
    for network, path in zip([averaged, *members], [tmp_path / "mean.weights.h5", *kept], strict=True):
        network.load_weights(path)
    for name in ("conv1_0", "bn2_0"):
        values = [m.get_layer(name).get_weights() for m in members]
        assert not np.allclose(values[0][-1], values[1][-1])  # the kernel; the moving variance
        for got, *each in zip(averaged.get_layer(name).get_weights(), *values, strict=True):
            np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-7)
