"""The live loss plot of the Train tab (train and validation loss against step)."""

from __future__ import annotations

from textual_plotext import PlotextPlot


class LossPlot(PlotextPlot):
    """Keeps the loss history and redraws it; fed from the UI thread only."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []

    def on_mount(self) -> None:
        self.replot()

    def reset(self) -> None:
        """Forget the history (a new run starts a new plot)."""
        self.train_points.clear()
        self.val_points.clear()
        self.replot()

    def add(
        self, train: list[tuple[int, float]], val: list[tuple[int, float]] = ()
    ) -> None:
        self.train_points.extend(train)
        self.val_points.extend(val)
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        if self.train_points:
            steps, losses = zip(*self.train_points, strict=True)
            plt.plot(steps, losses, label="train", marker="braille")
        if self.val_points:
            steps, losses = zip(*self.val_points, strict=True)
            # evaluations are sparse: points, not a line
            plt.scatter(steps, losses, label="validation", marker="◆")
        self.refresh()
