"""Self-distillation (--distill): a teacher made of the run's own checkpoints, at the price of a
few passes over the training images. After the middle epoch of the run and after every tenth of
it from there, the model predicts each training image alone, unaugmented, in evaluation mode;
from the first of these snapshots on, the target of training image i is

    T_i = (1 - β) e_(y_i) + β q_i,

e_y the one-hot label and q_i the mean of the snapshots' probabilities for image i. The loss is
the cross-entropy against T_i, and its gradient with respect to the logits is (Y - T) / S, as for
any soft target (modules.CrossEntropyModule). β is at most 0.45: the label keeps the largest share
of its target, by 0.1 at least, so the label is still what a step's prediction is counted correct
against, in float32 too."""
import numpy as np

from dataset.cifar10 import NUM_CLASSES
from dataset.loaders import EVAL_BATCH_SIZE, DataLoader
from dataset.tensors import as_tensor


def snapshot_epochs(epochs):
    """The epochs after which the teacher takes a snapshot: the middle one, then one every tenth
    of the run before its last epoch (150 epochs: 75, 90, 105, 120, 135)."""
    middle, stride = max(1, epochs // 2), max(1, epochs // 10)
    return list(range(middle, epochs, stride))


class Teacher:
    """The run's teacher: weight β (0: none, and it does nothing), the training images in their
    order, unaugmented, and the snapshots' summed probabilities (N, C) in float64."""

    def __init__(self, weight, epochs, training_loader):
        self.weight = weight
        self.epochs = set(snapshot_epochs(epochs)) if weight else set()
        self.images = DataLoader(training_loader.split, EVAL_BATCH_SIZE,
                                 preprocess=training_loader.preprocess)
        self.probability_sum, self.snapshots = None, 0

    def teach(self, epoch, predict):
        """After a snapshot's epoch, add predict(loader)'s probabilities (N, C) of the training
        images to the teacher."""
        if epoch in self.epochs:
            probabilities = np.asarray(predict(self.images), np.float64)
            self.probability_sum = probabilities + (0 if self.probability_sum is None
                                                    else self.probability_sum)
            self.snapshots += 1

    def targets(self, labels, rows):
        """The targets T (B, C) of a batch: labels (B,) of the training images at rows (B,),
        NumPy or torch (then on their device, in float32), or labels as they are before the
        first snapshot."""
        if not self.snapshots:
            return labels
        on_torch = not isinstance(labels, np.ndarray)
        hard, rows = (np.asarray(part.cpu()) if on_torch else part for part in (labels, rows))
        targets = self.weight / self.snapshots * self.probability_sum[rows]
        targets[np.arange(len(hard)), hard] += 1 - self.weight
        targets = targets.astype(np.float32)
        return as_tensor(targets, labels.device) if on_torch else targets

    def state(self):
        """What a checkpoint keeps of it: (the summed probabilities, an empty array before the
        first snapshot; the count of snapshots)."""
        return (np.zeros((0, 0)) if self.probability_sum is None else self.probability_sum,
                self.snapshots)

    def load(self, probability_sum, snapshots, epoch):
        """Take up the state a checkpoint kept after epoch: ValueError where the run cannot have
        written it (a sum of that many snapshots' probabilities of every training image)."""
        images, due = len(self.images.split), sum(1 for each in self.epochs if each <= epoch)
        fits = snapshots == due and type(snapshots) is int and (not snapshots or (
            np.shape(probability_sum) == (images, NUM_CLASSES)
            # a float32 softmax may round a probability a hair past 1
            and np.all((0 <= probability_sum) & (probability_sum <= 1.001 * snapshots))))
        if not fits:
            raise ValueError(f"a teacher of {snapshots!r} snapshots and "
                             f"{np.shape(probability_sum)} probabilities, not the {due} snapshots "
                             f"of {images} training images that {epoch} epochs take, each a "
                             f"probability of each of {NUM_CLASSES} classes")
        self.probability_sum = np.asarray(probability_sum, np.float64) if snapshots else None
        self.snapshots = snapshots
