"""Train the emotion CNN on FER2013 with Keras and export it for LiteRT serving.

Run as ``python -m emotion.training.train --train PATH/train.npz --val PATH/val.npz``. Training is
resumable: the run directory keeps a backup that ``--resume`` (the default) continues from.
TensorFlow is imported here only; the serving path never imports this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotion.labels import EMOTIONS, INPUT_SIZE
from emotion.training.cli import option, parse_config
from emotion.training.data import load_split


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) with ``fraction`` of each class held out, so calibration can be fitted on
    faces the network never trained on (and never on the validation split)."""
    rng = np.random.default_rng(seed)
    held = [
        rng.permutation(np.flatnonzero(labels == c))[: round(fraction * np.sum(labels == c))]
        for c in range(len(EMOTIONS))
    ]
    mask = np.zeros(len(labels), dtype=bool)
    mask[np.concatenate(held)] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def class_weights(labels: np.ndarray, power: float = 0.5) -> dict[int, float]:
    """Inverse-frequency weights softened by ``power`` so rare classes count without wrecking accuracy."""
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1.0)) ** power
    weights /= (weights * counts).sum() / counts.sum()
    return {i: float(w) for i, w in enumerate(weights)}


def build_model(width: int = 32, dropout: float = 0.4, name: str = "emotion_cnn"):
    """A VGG-style CNN sized for CPU training and ~1 ms serving: 4 blocks of two 3x3 convs."""
    import keras
    from keras import layers

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="faces")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for i, filters in enumerate((width, width * 2, width * 4, width * 8)):
        for j in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(name=f"bn{i}_{j}")(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.SpatialDropout2D(0.1 * (i + 1) / 2)(x) if i else x
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(len(EMOTIONS), dtype="float32", name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(outputs)
    return keras.Model(inputs, outputs, name=name)


def augmenter(seed: int, strength: float = 1.0):
    """Random shifts/zoom, flips, small rotations and brightness/contrast, applied on the fly;
    ``strength`` scales every range (a fine-tuning pass uses milder ones)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04 * strength, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom((-0.15 * strength, 0.1 * strength), fill_mode="reflect", seed=seed + 2),
            layers.RandomTranslation(0.1 * strength, 0.1 * strength, fill_mode="reflect", seed=seed + 3),
            layers.RandomBrightness(0.2 * strength, value_range=(0.0, 255.0), seed=seed + 4),
            layers.RandomContrast(0.3 * strength, value_range=(0.0, 255.0), seed=seed + 5),
        ],
        name="augment",
    )


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch: int, seed: int, train: bool, strength: float = 1.0, steps: int = 0
):
    """Float faces and one-hot labels: a tf.data pipeline that augments the training batches on the TensorFlow
    backend (parallel, measured fastest on this CPU), plain batches made in Python on the others (no TensorFlow
    needed, e.g. on a GPU machine with JAX or PyTorch), where ``trainable`` puts the augmentation inside the
    trained model instead. ``steps`` fixes the batches per epoch (else one pass)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return face_batches(x, y, batch, seed, train, steps)
    import tensorflow as tf

    onehot = np.eye(len(EMOTIONS), dtype=np.float32)[y]
    ds = tf.data.Dataset.from_tensor_slices((x[..., None].astype(np.float32), onehot))
    if train:
        aug = augmenter(seed, strength)
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch, drop_remainder=True)
        ds = ds.map(lambda a, b: (aug(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.repeat() if steps else ds
    else:
        ds = ds.batch(batch)
    return ds.prefetch(tf.data.AUTOTUNE)


def face_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int, train: bool, steps: int):
    """Plain batches made in Python (any Keras backend; shuffled anew each epoch)."""
    import keras

    onehot = np.eye(len(EMOTIONS), dtype=np.float32)[y]
    faces = x[..., None].astype(np.float32)
    rng = np.random.default_rng(seed)

    class FaceBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.order = rng.permutation(len(faces)) if train else np.arange(len(faces))

        def __len__(self) -> int:
            return steps or (len(faces) // batch if train else -(-len(faces) // batch))

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            span = np.arange(index * batch, (index + 1) * batch)
            pick = self.order[span % len(faces)] if train else self.order[span[span < len(faces)]]
            return faces[pick], onehot[pick]

        def on_epoch_end(self) -> None:
            if train:
                self.order = rng.permutation(len(faces))

    return FaceBatches()


def load_ensemble(weights: Sequence[str], width: int, name: str = "emotion_ensemble"):
    """One Keras model: the trained network, or the average of several trained copies of it."""
    import keras

    members = []
    for i, path in enumerate(weights):
        member = build_model(width, name=f"{name}_member_{i}")
        member.load_weights(path)
        members.append(member)
    if len(members) == 1:
        return members[0]
    inputs = keras.Input(members[0].input_shape[1:], name="faces")
    outputs = keras.layers.Average(name="probabilities")([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=name)


def trainable(model, seed: int, strength: float = 1.0, teacher=None):
    """The model that ``fit`` trains: ``model`` itself on TensorFlow (its tf.data pipeline augments), else the
    augmentation in front of it, so that it runs compiled on the device inside the training step rather than
    op by op in Python for every batch (the random layers pass faces through unchanged outside training).
    With a ``teacher`` (frozen) its probabilities of the same augmented faces follow the student's seven
    columns, for ``taught_loss``."""
    import keras

    if keras.backend.backend() == "tensorflow" and teacher is None:
        return model
    inputs = keras.Input(model.input_shape[1:], name="faces")
    faces = inputs if keras.backend.backend() == "tensorflow" else augmenter(seed, strength)(inputs)
    outputs = model(faces)
    if teacher is not None:
        teacher.trainable = False
        outputs = keras.layers.Concatenate(name="student_teacher")([outputs, teacher(faces, training=False)])
    return keras.Model(inputs, outputs, name=f"trained_{model.name}")


def taught_loss(share: float, label_smoothing: float):
    """Cross-entropy of the student's columns against ``share`` of the teacher's probabilities and the rest of
    the label-smoothed truth (distillation at temperature 1: the teacher's soft answers carry which wrong
    classes a face resembles, and temper FER2013's noisy labels)."""
    import keras
    from keras import ops

    classes = len(EMOTIONS)

    def loss(truth, predicted):
        student, teacher = predicted[:, :classes], ops.stop_gradient(predicted[:, classes:])
        target = (1.0 - share) * (truth * (1.0 - label_smoothing) + label_smoothing / classes) + share * teacher
        return keras.losses.categorical_crossentropy(target, student)

    return loss


def student_accuracy(truth, predicted):
    """Accuracy of the student's columns (named ``accuracy`` so that history.csv keeps its columns)."""
    import keras

    return keras.metrics.categorical_accuracy(truth, predicted[:, : len(EMOTIONS)])


student_accuracy.__name__ = "accuracy"


def export_tflite(model, path: Path, quantization: str) -> int:
    """Convert ``model`` to a .tflite file (``float16`` or ``int8`` dynamic range); returns its size."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantization != "int8":
            raise ValueError(f"unknown quantization {quantization!r}")
        path.write_bytes(converter.convert())
    return path.stat().st_size


def cycle_ends(first: int, epochs: int) -> set[int]:
    """The epochs at which a cosine-restart schedule (cycles of ``first``, 2x, 4x ... epochs) reaches zero."""
    ends, end, length = set(), first, first
    while end <= epochs:
        ends.add(end)
        length *= 2
        end += length
    return ends


def snapshots(model, run_dir: Path, ends: set[int], keep_from: int | None = None):
    """A callback saving ``snapshot-NNNN.keras`` at each cycle's end (members for an ensemble or export), and,
    from epoch ``keep_from`` on, every epoch's weights as ``epoch-NNNN.weights.h5`` (for
    ``emotion.training.average``)."""
    import keras

    def save(epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 in ends:
            model.save(run_dir / f"snapshot-{epoch + 1:04d}.keras")
        if keep_from is not None and epoch + 1 >= keep_from:
            model.save_weights(run_dir / f"epoch-{epoch + 1:04d}.weights.h5")

    return keras.callbacks.LambdaCallback(on_epoch_end=save)


def time_limit(model, seconds: float):
    """A callback that stops training after the epoch that would let the next one overrun ``seconds``
    (a lent GPU machine or a session has a fixed time; the backup resumes the rest later)."""
    import keras

    started = time.monotonic()
    last = [started]

    def check(epoch: int, logs: dict | None = None) -> None:
        now = time.monotonic()
        if now + (now - last[0]) > started + seconds:
            model.stop_training = callback.stopped = True
        last[0] = now

    callback = keras.callbacks.LambdaCallback(on_epoch_end=check)
    callback.stopped = False
    return callback


def resumed_epoch(backup: Path) -> int:
    """The epoch a ``BackupAndRestore`` backup will resume from (0 when there is none)."""
    metadata = backup / "training_metadata.json"
    return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0


def float32_copy(model, width: int):
    """Rebuild ``model`` in float32 (the bfloat16 training policy must not reach the export)."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    clone = build_model(width)
    clone.set_weights(model.get_weights())
    return clone


def compile_for_training(
    model, schedule, weight_decay: float, label_smoothing: float, jit: str, distill: float | None = None
) -> None:
    """SGD with Nesterov momentum on label-smoothed cross-entropy (``taught_loss`` when ``distill`` gives the
    teacher's share); ``jit`` is Keras's ``jit_compile`` ("auto", "on" or "off": which is fastest depends on
    the backend, see bench/training_speed.py)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=weight_decay),
        loss=(
            keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
            if distill is None
            else taught_loss(distill, label_smoothing)
        ),
        metrics=["accuracy" if distill is None else student_accuracy],
        jit_compile={"auto": "auto", "on": True, "off": False}[jit],
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run is told; ``python -m emotion.training.train --help`` lists it from here."""

    train: str = option(MISSING, "npz with x (N,48,48 uint8) and y")
    val: str = option(MISSING, "npz used for the progress display only")
    extra: tuple[str, ...] = option((), "more training data in the same npz format (repeatable)")
    extra_repeat: int = option(1, "how many times the --extra data is repeated")
    init: str | None = option(None, "start from these weights (.keras or .weights.h5) instead of random ones")
    teacher: tuple[str, ...] = option(
        (), "distil from these trained networks, averaged (.keras or .weights.h5, width as --width; repeatable)"
    )
    distill: float = option(0.5, "with --teacher: the teacher's share of each training target, the rest the label")
    out: str | None = option(
        None,
        "where to write the .tflite model (default: emotion.tflite in --run-dir; the served model and its card "
        "are written by emotion.training.export, never by a training run)",
    )
    run_dir: str = option("runs/emotion", "checkpoints, history.csv and the final .keras")
    epochs: int = option(60, "epochs in all (a resumed run counts those done)")
    batch: int = option(128, "batch size")
    lr: float = option(0.05, "peak learning rate")
    warmup: int = option(2, "warm-up epochs (plain cosine schedule only)")
    cycle: int = option(0, "cosine restarts: first cycle in epochs, each next one twice as long; 0: one cosine")
    constant: bool = option(False, "hold the learning rate at --lr throughout (for --keep-epochs averaging)")
    keep_epochs: int = option(0, "save the weights of each of the last N epochs, to average (emotion.training.average)")
    time_limit: float = option(0.0, "stop (resumably) before this many seconds; 0: no limit")
    holdout: float = option(0.0, "fraction of each class held out for calibration (written to holdout.npz)")
    holdout_seed: int | None = option(
        None,
        "seed of the held-out part (default --seed): runs that share it can be calibrated as one ensemble",
        type=int,
    )
    weight_decay: float = option(5e-4, "SGD weight decay")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    class_weight_power: float = option(0.35, "class weights: inverse frequency to this power")
    width: int = option(32, "filters of the first block")
    dropout: float = option(0.4, "dropout before and after the dense layer")
    augment: float = option(1.0, "scale of the augmentation ranges")
    quantization: str = option("float16", "quantization of the .tflite written", choices=("float16", "int8"))
    seed: int = option(1234, "random seed (weights, data order, and the holdout unless --holdout-seed)")
    limit: int = option(0, "use only the first N images (smoke tests)")
    steps: int = option(0, "steps per epoch instead of a full pass (smoke tests)")
    bf16: bool = option(True, "train in mixed bfloat16 (--no-bf16: float32)")
    jit: str = option("auto", "Keras jit_compile (XLA)", choices=("auto", "on", "off"))
    verbose: int = option(2, "Keras progress display: 0 silent, 1 bar, 2 per epoch")


def training_data(config: TrainConfig, run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training faces (less the held-out part, plus any extra data) and validation faces."""
    x_train, y_train = load_split(config.train)
    if config.holdout:  # the held-out faces are written beside the run, for fitting the temperature
        seed = config.seed if config.holdout_seed is None else config.holdout_seed
        kept, held = holdout_split(y_train, config.holdout, seed)
        np.savez_compressed(run_dir / "holdout.npz", x=x_train[held], y=y_train[held], index=held)
        x_train, y_train = x_train[kept], y_train[kept]
    for extra in config.extra:  # e.g. photo crops cut by emotion.training.photo_crops, repeated to weigh more
        x_extra, y_extra = load_split(extra)
        x_train = np.concatenate([x_train, *[x_extra] * config.extra_repeat])
        y_train = np.concatenate([y_train, *[y_extra] * config.extra_repeat])
    x_val, y_val = load_split(config.val)
    if config.limit:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
        x_val, y_val = x_val[: config.limit], y_val[: config.limit]
    if len(x_train) < config.batch:  # batches drop their remainder: there would be nothing to train on
        raise SystemExit(f"{len(x_train)} training images are fewer than one batch of {config.batch}")
    return x_train, y_train, x_val, y_val


def learning_rate(config: TrainConfig, steps: int):
    """Cosine restarts (``cycle``), one cosine decay to zero after a linear warm-up, or a constant rate."""
    import keras

    if config.constant:
        return config.lr
    if config.cycle:
        return keras.optimizers.schedules.CosineDecayRestarts(config.lr, steps * config.cycle, t_mul=2.0)
    warmup = steps * config.warmup
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.lr,
        decay_steps=max(1, steps * config.epochs - warmup),
        warmup_target=config.lr if warmup else None,
        warmup_steps=warmup,
    )


def train(config: TrainConfig) -> dict[str, Any]:
    """Train (resuming the run directory's backup if there is one), save the weights, export on TensorFlow;
    returns what ``train_info.json`` records (empty when stopped by the time limit, to be resumed)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    if config.bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_val, y_val = training_data(config, run_dir)
    # A resumed run must not replay the shuffling and augmentation of the epochs it already trained.
    data_seed = config.seed + resumed_epoch(run_dir / "backup")
    train_ds = make_dataset(x_train, y_train, config.batch, data_seed, True, config.augment, config.steps)
    val_ds = make_dataset(x_val, y_val, 256, config.seed, train=False)
    steps = config.steps or max(1, len(x_train) // config.batch)

    model = build_model(config.width, config.dropout)
    if config.init:  # fine-tuning starts from trained weights
        model.load_weights(config.init)
    teacher = load_ensemble(config.teacher, config.width, "teacher") if config.teacher else None
    fitted = trainable(model, data_seed, config.augment, teacher)
    schedule = learning_rate(config, steps)
    distill = config.distill if teacher is not None else None
    compile_for_training(fitted, schedule, config.weight_decay, config.label_smoothing, config.jit, distill)
    limit = time_limit(fitted, config.time_limit or float("inf"))
    callbacks = [
        # Kept after the last epoch too: a run stopped by its time limit must resume, and a finished one
        # run again only exports again.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        limit,
    ]
    if config.cycle or config.keep_epochs:
        ends = cycle_ends(config.cycle, config.epochs) if config.cycle else set()
        keep_from = config.epochs - config.keep_epochs + 1 if config.keep_epochs else None
        callbacks.append(snapshots(model, run_dir, ends, keep_from))
    started = time.time()
    fitted.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        steps_per_epoch=steps,
        class_weight=class_weights(y_train, config.class_weight_power),
        callbacks=callbacks,
        verbose=config.verbose,
    )
    seconds = time.time() - started
    if limit.stopped:
        model.save(run_dir / "last.keras")
        print(f"stopped by --time-limit after {seconds:.0f} s; the same command resumes from {run_dir / 'backup'}")
        return {}
    model.save(run_dir / "final.keras")
    size = None
    if keras.backend.backend() == "tensorflow":  # elsewhere there is no converter: export where TF is
        out = Path(config.out) if config.out else run_dir / "emotion.tflite"
        out.parent.mkdir(parents=True, exist_ok=True)
        size = export_tflite(float32_copy(model, config.width), out, config.quantization)
        print(f"exported {out} ({size} bytes, {config.quantization}) after {seconds:.0f} s")
    else:
        print(f"trained {run_dir / 'final.keras'} after {seconds:.0f} s; export it with emotion.training.export")
    recorded: tuple[str, ...] = ("epochs", "batch", "lr", "cycle", "constant", "holdout", "holdout_seed", "seed")
    recorded += ("width", "dropout", "augment", "keep_epochs")
    recorded += ("extra_repeat", "distill") if config.teacher else ("extra_repeat",)
    info = {name: getattr(config, name) for name in recorded} | {
        "backend": keras.backend.backend(),
        "train_seconds_this_process": round(seconds, 1),
        "train_images": len(x_train),
        "extra": list(config.extra),
        "init": config.init,
        "teacher": list(config.teacher),
        "quantization": config.quantization,
        "tflite_bytes": size,
    }
    (run_dir / "train_info.json").write_text(json.dumps(info, indent=2))
    return info


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return parse_config(TrainConfig, argv, __doc__.splitlines()[0])


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
