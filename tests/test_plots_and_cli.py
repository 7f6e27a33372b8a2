import json

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from seedlings_utils import plots, seeding  # noqa: E402
from tools import check_env  # noqa: E402
from tools.lessons import lesson_notebooks, main  # noqa: E402

CLASSES = ["a", "b", "c"]


def bar_widths(ax):
    return [p.get_width() for p in ax.patches]


def test_plot_class_counts_draws_one_bar_per_class_with_its_count():
    fig = plots.plot_class_counts(np.array([0, 0, 2, 2, 2]), CLASSES)
    assert bar_widths(fig.axes[0]) == [2, 0, 3]


def test_plot_split_counts_shows_both_splits_and_shares():
    fig = plots.plot_split_counts(np.array([0, 0, 0, 1, 1, 1, 1]), np.array([0, 1]), CLASSES)
    counts, shares = fig.axes[0], fig.axes[1]
    assert bar_widths(counts) == [3, 4, 0, 1, 1, 0]
    assert bar_widths(shares) == pytest.approx([0.25, 0.2, 0.0])


def test_show_images_accepts_arrays_paths_and_pil(tmp_path):
    Image.new("RGB", (5, 5), (255, 0, 0)).save(tmp_path / "r.png")
    white = np.full((4, 4, 3), 255, dtype=np.uint8)
    images = [np.zeros((4, 4, 3)), white, tmp_path / "r.png", Image.new("RGB", (3, 3))]
    fig = plots.show_images(images, titles=["w", "x", "y", "z"], ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 4
    assert [ax.get_title() for ax in shown] == ["w", "x", "y", "z"]
    assert shown[2].images[0].get_array()[0, 0].tolist() == [255, 0, 0]


def test_plot_history_has_train_and_validation_curves():
    history = {"loss": [2, 1], "val_loss": [2.5, 1.5], "accuracy": [0.3, 0.6], "val_accuracy": [0.2, 0.5]}
    fig = plots.plot_history(history, class_count=4)
    assert [len(ax.lines) for ax in fig.axes] == [2, 3]  # accuracy also has the chance line, at 1/4
    assert list(fig.axes[1].lines[1].get_ydata()) == [0.2, 0.5]
    assert list(fig.axes[1].lines[2].get_ydata()) == [0.25, 0.25]
    assert [len(ax.lines) for ax in plots.plot_history(history).axes] == [2, 2]  # no class count, no chance line


def test_plot_confusion_matrix_normalises_rows():
    fig = plots.plot_confusion_matrix(np.array([[2, 2, 0], [0, 1, 0], [0, 0, 0]]), CLASSES)
    shown = fig.axes[0].images[0].get_array()
    assert shown[0].tolist() == [0.5, 0.5, 0] and shown[2].tolist() == [0, 0, 0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == CLASSES


def test_plot_images_per_second_and_sizes(tmp_path):
    fig = plots.plot_images_per_second({"one": 100.0, "two": 180.0})
    assert bar_widths(fig.axes[0]) == [100.0, 180.0]
    for k, size in enumerate([(10, 10), (30, 20)]):
        Image.new("RGB", size).save(tmp_path / f"{k}.png")
    fig = plots.plot_image_sizes(sorted(tmp_path.glob("*.png")))
    assert fig.axes[0].collections[0].get_offsets().tolist() == [[10, 10], [30, 20]]
    assert "50% square" in fig.axes[0].get_title()


def test_set_seed_makes_keras_repeatable():
    def draw():  # set_seed must also seed NumPy's legacy global generator, which old code uses
        return keras.random.uniform((3,)).numpy().tolist() + np.random.rand(2).tolist()  # noqa: NPY002

    seeding.set_seed(3)
    first = draw()
    seeding.set_seed(3)
    assert draw() == first


def test_set_seed_turns_op_determinism_on_only_when_asked(op_determinism_off):
    """It stays on for the rest of the process once on, so a default call must leave it off (lessons' speeds)."""
    seeding.set_seed(3)
    assert not op_determinism_off.is_op_determinism_enabled()
    seeding.set_seed(3, deterministic=True)
    assert op_determinism_off.is_op_determinism_enabled()


def test_start_lesson_returns_an_absolute_existing_folder(tmp_path, capsys):
    path = seeding.start_lesson(str(tmp_path / "d"), seed=1)
    assert path.is_absolute() and path.is_dir() and str(path) in capsys.readouterr().out


def test_environment_check_cli(capsys):
    assert check_env.main() == 0
    assert "OK   tensorflow" in capsys.readouterr().out


def test_lessons_cli_prepare_injects_parameters(tmp_path):
    assert main(["prepare", "--output-dir", str(tmp_path / "out"), "--lessons", "06",
                 "-p", "DATA_DIR", str(tmp_path / "d"), "-p", "EPOCHS", "2", "-p", "NOT_A_PARAMETER", "1"]) == 0
    nb = json.loads((tmp_path / "out" / lesson_notebooks(lessons=["06"])[0].name).read_text())
    injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    text = "".join(injected["source"])
    assert "EPOCHS = 2" in text and str(tmp_path / "d") in text and "NOT_A_PARAMETER" not in text
