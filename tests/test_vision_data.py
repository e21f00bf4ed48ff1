"""Image folders, transforms, the ConvClassifier and the classification task."""

import numpy as np
import pytest
import torch
from PIL import Image
from vision_helpers import write_colour_folder

from toytorch.errors import ToytorchError
from toytorch.models import (
    ConvClassifier,
    ConvConfig,
    config_to_dict,
    model_from_config,
)
from toytorch.training import TrainConfig
from toytorch.vision import transforms
from toytorch.vision.data import ImageData, Split, load_image_data
from toytorch.vision.imagefolder import load_image, read_image_folder
from toytorch.vision.task import ClassificationTask, confusion_matrix

# ------------------------------------------------------------------ image folders


def test_image_folder_reads_png_and_jpeg_of_any_size(tmp_path):
    root = write_colour_folder(tmp_path / "imgs", per_class=5)
    images, labels, names = read_image_folder(root, image_size=6)
    assert names == ["blue", "red"]
    assert images.shape == (10, 3, 6, 6) and images.dtype == torch.uint8
    assert labels.tolist() == [0] * 5 + [1] * 5
    means = images.float().mean(dim=(2, 3))  # (N, 3)
    assert (means[:5, 2] > means[:5, 0]).all() and (means[5:, 0] > means[5:, 2]).all()


def test_load_image_resizes_and_converts_grey_to_rgb(tmp_path):
    grey = np.full((5, 7), 90, dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    x = load_image(tmp_path / "g.png", 4)
    assert x.shape == (3, 4, 4) and (x == 90).all()


def test_bad_images_and_folders_are_one_line_errors(tmp_path):
    with pytest.raises(ToytorchError, match="does not exist"):
        load_image(tmp_path / "nope.png", 8)
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(ToytorchError, match="not a readable image"):
        load_image(tmp_path / "fake.png", 8)
    (tmp_path / "one").mkdir()
    with pytest.raises(ToytorchError, match="at least 2"):
        read_image_folder(tmp_path, 8)


def test_image_folder_splits(tmp_path):
    """A flat folder is split train / val / test by the seed, with nothing shared."""
    root = write_colour_folder(tmp_path / "imgs", per_class=10)
    d = load_image_data(str(root), image_size=8, val_fraction=0.1, seed=1)
    assert (len(d.train), len(d.val), len(d.test)) == (16, 2, 2)
    rows = [bytes(r) for s in (d.train, d.val, d.test) for r in s.images.view(-1, 192)]
    assert len(set(rows)) == 20
    (tmp_path / "split").mkdir()
    (root).rename(tmp_path / "split" / "train")
    write_colour_folder(tmp_path / "split" / "test", per_class=3)
    d = load_image_data(str(tmp_path / "split"), image_size=8, val_fraction=0.1)
    assert (len(d.train), len(d.val), len(d.test)) == (18, 2, 6)


# --------------------------------------------------------------------- transforms


def test_channel_stats_and_normalize_match_torch():
    images = torch.randint(0, 256, (50, 3, 5, 4), dtype=torch.uint8)
    mean, std = transforms.channel_stats(images, chunk=7)
    x = images.double() / 255
    ref_mean = x.mean(dim=(0, 2, 3))
    ref_std = x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False)
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), ref_mean)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), ref_std)
    z = transforms.normalize(images, mean, std)
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        z.double().std(dim=(0, 2, 3), unbiased=False).float(), torch.ones(3)
    )


def test_random_crop_cuts_a_window_of_the_padded_image():
    images = torch.randint(1, 256, (20, 3, 6, 5), dtype=torch.uint8)
    out = transforms.random_crop(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = torch.zeros(20, 3, 10, 9, dtype=torch.uint8)
    padded[:, :, 2:8, 2:7] = images
    for n in range(20):  # some offset (dy, dx) in 0..4 reproduces the crop
        windows = [
            padded[n, :, dy : dy + 6, dx : dx + 5] for dy in range(5) for dx in range(5)
        ]
        assert any(torch.equal(out[n], w) for w in windows)
    assert not torch.equal(out, images)  # 20 images: some offset is not (2, 2)
    again = transforms.random_crop(images, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_random_flip_mirrors_some_images_exactly():
    images = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8)
    out = transforms.random_flip(images, torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 5 < sum(flipped) < 35


# -------------------------------------------------------------------------- model


def test_conv_classifier_shapes_and_registry():
    model = ConvClassifier(ConvConfig())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    d = config_to_dict(model.config)
    assert d["arch"] == "cnn" and d["channels"] == [16, 32]
    rebuilt = model_from_config(d)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    assert len(model.blocks) == 2 and len(model.blocks[0].convs) == 2
    small = ConvClassifier(ConvConfig(num_classes=4, in_channels=1, image_size=8))
    assert small(torch.randn(5, 1, 8, 8)).shape == (5, 4)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        small(torch.randn(5, 3, 8, 8))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=2), "too small"),
        (dict(kernel_size=4), "odd"),
        (dict(channels=[]), "at least one block"),
        (dict(dropout=1.5), "dropout"),
        (dict(pooling="median"), "pooling"),
    ],
)
def test_conv_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvConfig(**kwargs)


# --------------------------------------------------------------------------- task


def _data(n_train=24) -> ImageData:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(
            torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
            torch.arange(n) % 3,
        )

    return ImageData("toy", ["a", "b", "c"], split(n_train), split(6), split(6))


def _task(augment=False, batch_size=8) -> ClassificationTask:
    task = ClassificationTask(_data(), augment=augment, crop_padding=1)
    model = ConvClassifier(ConvConfig(num_classes=3, image_size=8))
    task.setup(model, TrainConfig(batch_size=batch_size, seed=5), torch.device("cpu"))
    return task


def test_task_epochs_visit_every_image_once_and_batches_are_repeatable():
    task = _task()
    assert task.steps_per_epoch() == 3
    seen = torch.cat([task.train_batch(step)[0] for step in range(3)])  # one epoch
    expected = transforms.normalize(task.data.train.images, task.mean, task.std)
    assert sorted(map(bytes, seen.view(24, -1).numpy())) == sorted(
        map(bytes, expected.view(24, -1).numpy())
    )
    x4, y4 = task.train_batch(4)
    again = _task().train_batch(4)
    assert torch.equal(x4, again[0]) and torch.equal(y4, again[1])
    aug = _task(augment=True)
    assert torch.equal(aug.train_batch(4)[0], _task(augment=True).train_batch(4)[0])
    assert not torch.equal(aug.train_batch(4)[0], x4)


def test_task_evaluate_and_info():
    task = _task()
    model = ConvClassifier(ConvConfig(num_classes=3, image_size=8)).eval()
    metrics = task.evaluate(model)
    assert set(metrics) == {"val_loss", "val_accuracy"}
    assert 0 <= metrics["val_accuracy"] <= 1
    info = task.info()
    assert info["kind"] == "classify" and info["label_names"] == ["a", "b", "c"]
    assert len(info["mean"]) == 3 and info["image_size"] == 8
    with pytest.raises(ToytorchError, match="4 classes but the data has 3"):
        wrong = ConvClassifier(ConvConfig(num_classes=4, image_size=8))
        task.setup(wrong, TrainConfig(), torch.device("cpu"))


def test_confusion_matrix_by_hand():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 2, 0, 2])
    expected = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert torch.equal(confusion_matrix(labels, predicted, 3), expected)
