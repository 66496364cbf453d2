"""Training: the `Learner` loop, metrics, callbacks (progress, early stopping, checkpoints, history).

from agnostic.train import Learner, Accuracy, EarlyStopping
learner = Learner(model, optimizer, ag.cross_entropy, metrics=[Accuracy()],
                  checkpoint_dir="runs/digits")
history = learner.fit(train_loader, epochs=10, val_loader=val_loader)
"""

from agnostic.train.callbacks import Callback, Checkpoint, CSVLogger, EarlyStopping, PlotHistory
from agnostic.train.learner import Learner, fit
from agnostic.train.metrics import Accuracy, Mean, Metric, TopKAccuracy
from agnostic.train.plot import plot_history
from agnostic.train.progress import ProgressBar

__all__ = [
    "Learner",
    "fit",
    "Metric",
    "Mean",
    "Accuracy",
    "TopKAccuracy",
    "Callback",
    "ProgressBar",
    "EarlyStopping",
    "Checkpoint",
    "CSVLogger",
    "PlotHistory",
    "plot_history",
]
