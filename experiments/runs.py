"""The runs the experiment sets train: a Run each, found by its key (never by its label, which is
only what the report shows), and the recipes and search rows they are built from."""
import dataclasses
from typing import Optional, Tuple

from training.options import DEFAULTS

SEEDS = (0, 1, 2)
COURSE_FLAGS = ("hidden_dims", "lr", "batch_size", "epochs", "seed")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a set. key: how the runner, the summary and the report name it within its set
    (the seeds of one setting share it, as they share the label); flags: the trainer's flags (a
    greedy search's row: only its change); figures: --evaluate its model and show the figures in
    <set>/<key>/; source: (set, key) of a run another set trained, evaluated instead of trained."""
    key: str
    label: str
    trainer: str
    flags: dict
    figures: bool = False
    source: Optional[Tuple[str, str]] = None


def run(key, label, trainer="pytorch", **flags):
    """A run at the course's flags but for flags."""
    return Run(key, label, trainer, {**{name: DEFAULTS[name] for name in COURSE_FLAGS}, **flags})


def seeded(key, label, **flags):
    """The same run once per seed of SEEDS."""
    return [run(key, label, **flags, seed=seed) for seed in SEEDS]


def greedy_search(start, changes):
    """A greedy search set's rows: its starting run, then a row for each (key, label, change),
    which the runner applies on top of every change kept so far."""
    return (start, *[Run(key, label, "pytorch", change) for key, label, change in changes])


# The recipe the ladder of the best set builds by hand, one change a row: what NumPy and PyTorch
# are compared on, where the greedy search starts and what the presets' budgets are measured
# with. Its name is its test accuracy, which the best set's last row and both runs of
# best-numpy-vs-torch round down to.
LADDER_RECIPE_PERCENT = 61
LADDER_RECIPE_NAME = f"the {LADDER_RECIPE_PERCENT} % recipe"
LADDER_RECIPE_KEY = "ladder-recipe"  # the key of its run in the best and budget-reference sets
LADDER_RECIPE = dict(hidden_dims=[1024, 1024], use_batch_norm=True, optimizer="adamw", lr=2e-3,
                    weight_decay=0.05, schedule="cosine", warmup=1.0, label_smoothing=0.1,
                    dropout=0.1, augment="flip", batch_size=512, epochs=90)


def ladder():
    """How LADDER_RECIPE is built: one change a row, each row keeping the last's; rows marked
    'not kept' try an alternative that the next row drops again."""
    steps = [
        ("course", "the course's MLP (PyTorch defaults)", {}),
        ("wide-batchnorm", "2 x 1024 hidden units, BatchNorm",
         dict(hidden_dims=[1024, 1024], use_batch_norm=True)),
        ("batch-512", "batch 512", dict(batch_size=512)),
        ("sgd-momentum", "SGD momentum 0.9, lr 0.05 (not kept)", dict(momentum=0.9, lr=0.05)),
        ("adamw", "AdamW (lr 2e-3, weight decay 0.05) instead",
         dict(optimizer="adamw", lr=2e-3, weight_decay=0.05, momentum=0.0)),
        ("cosine", "cosine schedule, 1 warm-up epoch", dict(schedule="cosine", warmup=1.0)),
        ("dropout-smoothing", "dropout 0.1, label smoothing 0.1",
         dict(dropout=0.1, label_smoothing=0.1)),
        ("crops", "random crops (4-pixel padding) and flips (not kept)",
         dict(augment="crop+flip")),
        ("flips", "random horizontal flips only", dict(augment="flip")),
        ("30-epochs", "30 epochs", dict(epochs=30)),
        (LADDER_RECIPE_KEY, f"{LADDER_RECIPE['epochs']} epochs: {LADDER_RECIPE_NAME}",
         dict(LADDER_RECIPE)),
    ]
    flags, runs = {}, []
    for key, label, change in steps:
        flags.update(change)
        runs.append(run(key, label, **flags))
    return runs


# What each stage of the greedy search below kept: the recipe the stage after it starts from,
# each the one before it with the changes its stage kept (results/<stage>/summary.json, which
# tests/test_experiments.py checks them against). The stages without a budget leave the epochs
# to the stage after them. A one-cycle schedule warms up by itself: the row that takes it leaves
# out the warm-up epoch of the ladder's recipe (its runs, which recorded warmup 1.0, trained the
# same steps).
SEARCH_KEPT = dict(hidden_dims=[1024, 1024], use_batch_norm=True, activation="gelu", dropout=0.25,
                   optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="onecycle",
                   label_smoothing=0.1, augment="flip", normalize="zca", zca_epsilon=1.0,
                   tta="flip", batch_size=256)
SEARCH_LONG_KEPT = dict(SEARCH_KEPT, augment="crop+flip", dropout=0.1, hidden_dims=[2048, 1024])
SEARCH_PROJECTION_KEPT = dict(SEARCH_LONG_KEPT, projection=512, epochs=70)
SEARCH_FAST_KEPT = dict(SEARCH_PROJECTION_KEPT, hidden_dims=[1024, 1024], batch_size=512,
                        lr=4e-3, epochs=26)
SEARCH_EPOCHS_KEPT = dict(SEARCH_FAST_KEPT, epochs=120)
SEARCH_HORIZON_KEPT = dict(SEARCH_EPOCHS_KEPT, epochs=130)
SEARCH_VIEWS_KEPT = dict(SEARCH_HORIZON_KEPT, tta="flip+shift")
SEARCH_VIEWS_FAST_KEPT = dict(SEARCH_FAST_KEPT, tta="flip+shift", epochs=29)

# One change a row, tried on top of every change kept so far; kept only where it raises the best
# validation accuracy. Test accuracy is recorded for every row and never looked at to decide.
SEARCH_EPOCHS = 15
SEARCH = greedy_search(
    run("start", f"start: {LADDER_RECIPE_NAME} at {SEARCH_EPOCHS} epochs",
        **{**LADDER_RECIPE, "epochs": SEARCH_EPOCHS}),
    [
        ("pixel", "per-pixel standardization", dict(normalize="pixel")),
        ("zca-0.1", "ZCA whitening, epsilon 0.1", dict(normalize="zca", zca_epsilon=0.1)),
        ("zca-0.01", "ZCA whitening, epsilon 0.01", dict(normalize="zca", zca_epsilon=0.01)),
        ("zca-1", "ZCA whitening, epsilon 1", dict(normalize="zca", zca_epsilon=1.0)),
        ("gelu", "GELU", dict(activation="gelu")),
        ("first-2048", "first hidden layer 2048 units", dict(hidden_dims=[2048, 1024])),
        ("dropout-0.25", "dropout 0.25", dict(dropout=0.25)),
        ("onecycle", "one-cycle schedule", dict(schedule="onecycle", warmup=0.0)),
        ("weight-decay-0.1", "weight decay 0.1", dict(weight_decay=0.1)),
        ("batch-256", "batch 256", dict(batch_size=256)),
        ("crop-flip", "random crops (4-pixel padding) and flips", dict(augment="crop+flip")),
        ("mirror-tta", "mirror averaging at test time", dict(tta="flip")),
    ],
)

# The second stage: what the first one kept, at twice its length, where the first stage's
# recipe overfits; the same greedy rule. Regularizers that cost epochs are tried again here.
LONG_SEARCH_EPOCHS = 2 * SEARCH_EPOCHS
LONG_SEARCH = greedy_search(
    run("start", f"start: the first stage's recipe at {LONG_SEARCH_EPOCHS} epochs",
        **{**SEARCH_KEPT, "epochs": LONG_SEARCH_EPOCHS}),
    [
        ("crop-flip", "random crops (4-pixel padding) and flips", dict(augment="crop+flip")),
        ("dropout-0.1", "dropout 0.1", dict(dropout=0.1)),
        ("ema", "moving average of the weights, decay 0.999", dict(ema=0.999)),
        ("mixup", "mixup, alpha 0.2", dict(mixup=0.2)),
        ("first-2048", "first hidden layer 2048 units", dict(hidden_dims=[2048, 1024])),
        ("bottleneck-256", "a linear bottleneck of 256 units, then 2048 and 1024 (less work than "
         "1024 and 1024)", dict(bottleneck=256, hidden_dims=[2048, 1024])),
    ],
)

# The third stage: the second stage's recipe at the epochs that fit the budget of --preset best,
# its first layer made cheap by a projection onto principal components, then what the time saved
# buys; rows compare at their minutes.
PROJECTION_SEARCH_EPOCHS = 40
PROJECTION_SEARCH = greedy_search(
    run("start", f"start: the second stage's recipe at {PROJECTION_SEARCH_EPOCHS} epochs, each "
        "image projected onto its top 512 principal components",
        **{**SEARCH_LONG_KEPT, "projection": 512, "epochs": PROJECTION_SEARCH_EPOCHS}),
    [
        ("components-256", "256 principal components", dict(projection=256)),
        ("70-epochs", "70 epochs: what the cheaper first layer buys within the budget",
         dict(epochs=70)),
    ],
)

# The fourth stage: the third stage's recipe at the horizon of --preset fast, as many epochs as
# fit its budget on a 2-core CPU. Each row spends what its change saves per epoch on more
# epochs, so that rows compare at about the same minutes.
FAST_SEARCH_EPOCHS = 16
FAST_SEARCH = greedy_search(
    run("start", f"start: the third stage's recipe at {FAST_SEARCH_EPOCHS} epochs",
        **{**SEARCH_PROJECTION_KEPT, "epochs": FAST_SEARCH_EPOCHS}),
    [
        ("first-1024", "first hidden layer 1024 units, 24 epochs",
         dict(hidden_dims=[1024, 1024], epochs=24)),
        ("components-256", "256 principal components, 28 epochs", dict(projection=256, epochs=28)),
        ("batch-512", "batch 512 at learning rate 4e-3, 26 epochs",
         dict(batch_size=512, lr=4e-3, epochs=26)),
    ],
)

# The fifth stage: the third stage's recipe at the minutes of --preset best, where 70 epochs
# instead of 40 raised validation accuracy by about three points. Each row makes an epoch cheaper
# and spends what that saves on more epochs, so that every row takes about the minutes of the
# first; the last row regularizes what the longer horizon may overfit, at no cost in minutes.
EPOCHS_SEARCH_EPOCHS = 70
EPOCHS_SEARCH = greedy_search(
    run("start", f"start: the third stage's recipe at {EPOCHS_SEARCH_EPOCHS} epochs",
        **{**SEARCH_PROJECTION_KEPT, "epochs": EPOCHS_SEARCH_EPOCHS}),
    [
        ("first-1024", "first hidden layer 1024 units, 100 epochs",
         dict(hidden_dims=[1024, 1024], epochs=100)),
        ("batch-512", "batch 512 at learning rate 4e-3, 120 epochs",
         dict(batch_size=512, lr=4e-3, epochs=120)),
        ("cutout", "an 8x8 cutout in each training image", dict(augment="crop+flip+cutout")),
    ],
)

# The sixth stage: the fifth stage's recipe, which took less than its budget, and the epochs the
# rest of that budget holds.
HORIZON_SEARCH_EPOCHS = 120
HORIZON_SEARCH = greedy_search(
    run("start", f"start: the fifth stage's recipe at {HORIZON_SEARCH_EPOCHS} epochs",
        **{**SEARCH_EPOCHS_KEPT, "epochs": HORIZON_SEARCH_EPOCHS}),
    [("130-epochs", "130 epochs: the rest of the budget", dict(epochs=130))],
)

# The seventh stage, for each preset: the recipe the stages before it kept, its kept model
# then validated and tested on 18 views (mirrored or not, moved by -2, 0 or 2 pixels down and
# right) instead of 2, its epochs on the image alone; its training stays as it was. --preset fast
# left a tenth of its budget unused, which its last row spends on epochs.
VIEWS_CHANGE = ("flip-shift", "18 views at test time: mirrors and shifts of 2 pixels",
                dict(tta="flip+shift"))
VIEWS_SEARCH = greedy_search(
    run("start", "start: the sixth stage's recipe", **SEARCH_HORIZON_KEPT),
    [VIEWS_CHANGE])
FAST_VIEWS_SEARCH = greedy_search(
    run("start", f"start: the fourth stage's recipe at {SEARCH_FAST_KEPT['epochs']} epochs",
        **SEARCH_FAST_KEPT),
    [VIEWS_CHANGE, ("29-epochs", "29 epochs: the rest of the budget", dict(epochs=29))])

# The eighth stage, for each preset: Lin, Memisevic & Konda's deformations instead of the crop,
# each image turned within 10 degrees and zoomed within 10 % as well as moved, at the crop's cost
# per batch, so at the same epochs
DEFORM_CHANGE = ("deform", "turns within 10 degrees and zooms within 10 %, as well as the move",
                 dict(augment="deform+flip"))
DEFORM_SEARCH = greedy_search(
    run("start", "start: the seventh stage's recipe", **SEARCH_VIEWS_KEPT), [DEFORM_CHANGE])
FAST_DEFORM_SEARCH = greedy_search(
    run("start", "start: the seventh stage's recipe for --preset fast", **SEARCH_VIEWS_FAST_KEPT),
    [DEFORM_CHANGE])
SEARCH_DEFORM_KEPT = dict(SEARCH_VIEWS_KEPT, augment="deform+flip")

# The ninth stage, for each preset: residual blocks with LayerNorm, x + W2 act(W1 LN(x)), as
# Bachmann et al. stack them. A block costs more than its multiply-adds (LayerNorm, the activation
# and dropout over every unit): each row trains fewer epochs, as many as the seconds per epoch of
# a few epochs of the preset, timed with the block and without, said would take its start's
# minutes.
RESIDUAL_CHANGES = {
    "best": [
        ("residual-second", "the second hidden layer a residual block of 1024 units, 110 epochs",
         dict(hidden_dims=[1024], blocks=1, block_width=0, epochs=110)),
        ("block-256", "a residual block of 256 units after both hidden layers, 85 epochs",
         dict(hidden_dims=[1024, 1024], blocks=1, block_width=256, epochs=85)),
    ],
    "fast": [
        ("residual-second", "the second hidden layer a residual block of 1024 units, 24 epochs",
         dict(hidden_dims=[1024], blocks=1, block_width=0, epochs=24)),
    ],
}
RESIDUAL_SEARCH = greedy_search(
    run("start", "start: the eighth stage's recipe", **SEARCH_DEFORM_KEPT),
    RESIDUAL_CHANGES["best"])
FAST_RESIDUAL_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept for --preset fast",
        **SEARCH_VIEWS_FAST_KEPT),
    RESIDUAL_CHANGES["fast"])

# The tenth stage, for each preset: no dropout, the deformed or moved images regularizing enough
# on their own (the kept run's training accuracy, dropout and augmentations on, is level with its
# validation accuracy), which also makes each step cheaper; then what is left of the budget spent
# on epochs
DROPOUT_CHANGE = ("no-dropout", "no dropout", dict(dropout=0.0))
DROPOUT_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_DEFORM_KEPT),
    [DROPOUT_CHANGE, ("140-epochs", "140 epochs: the rest of the budget", dict(epochs=140))])
FAST_DROPOUT_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept for --preset fast",
        **SEARCH_VIEWS_FAST_KEPT),
    [DROPOUT_CHANGE, ("33-epochs", "33 epochs: the rest of the budget", dict(epochs=33))])
SEARCH_DROPOUT_FAST_KEPT = dict(SEARCH_VIEWS_FAST_KEPT, dropout=0.0, epochs=33)

# The eleventh stage, for --preset fast: its epochs without dropout proved cheaper than the
# tenth stage's 33 reckoned, and the part of the budget they left is spent on epochs
FAST_REST_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept for --preset fast",
        **SEARCH_DROPOUT_FAST_KEPT),
    [("36-epochs", "36 epochs: the rest of the budget", dict(epochs=36))])
SEARCH_DROPOUT_KEPT = dict(SEARCH_DEFORM_KEPT, dropout=0.0, epochs=140)
SEARCH_REST_FAST_KEPT = dict(SEARCH_DROPOUT_FAST_KEPT, epochs=36)

# The twelfth stage, for each preset: less regularization, at no cost in minutes. The label
# smoothing and the weight decay were chosen with dropout on and at fewer epochs; without dropout
# each is tried lower, then a higher peak learning rate.
LESS_REGULARIZATION_CHANGES = [
    ("no-smoothing", "no label smoothing", dict(label_smoothing=0.0)),
    ("weight-decay-0.02", "weight decay 0.02", dict(weight_decay=0.02)),
    ("lr-6e-3", "peak learning rate 6e-3", dict(lr=6e-3)),
]
REGULARIZATION_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_DROPOUT_KEPT),
    LESS_REGULARIZATION_CHANGES)
FAST_REGULARIZATION_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept for --preset fast",
        **SEARCH_REST_FAST_KEPT),
    LESS_REGULARIZATION_CHANGES)
SEARCH_REGULARIZATION_KEPT = dict(SEARCH_DROPOUT_KEPT, label_smoothing=0.0, weight_decay=0.02)

# The thirteenth stage, for --preset best: its kept recipe ends scoring about nine points more on
# its augmented training images than on validation, so mixup is tried on top of the deformations,
# at two strengths, at no cost in minutes; then the rest of the budget on epochs
MIXUP_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_REGULARIZATION_KEPT),
    [("mixup-0.2", "mixup, alpha 0.2", dict(mixup=0.2)),
     ("mixup-0.5", "mixup, alpha 0.5", dict(mixup=0.5)),
     ("150-epochs", "150 epochs: the rest of the budget", dict(epochs=150))])
SEARCH_MIXUP_KEPT = dict(SEARCH_REGULARIZATION_KEPT, mixup=0.2, epochs=150)

# The fourteenth stage, for --preset best: more views. The kept model's 18 views of each image
# score well above the image alone, so 50 views, moved twice as far too, are tried; their minutes
# count against the budget
AVERAGING_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_MIXUP_KEPT),
    [("wide-shift", "50 views at test time, moved by up to 4 pixels",
      dict(tta="flip+wide-shift"))])
SEARCH_AVERAGING_KEPT = dict(SEARCH_MIXUP_KEPT, tta="flip+wide-shift")

# The fifteenth stage, for --preset best: the deformations and the weight decay were chosen
# before mixup, so each is tried lighter with it; then a moving average of the weights, whose
# updates count against the budget
WITH_MIXUP_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_AVERAGING_KEPT),
    [("crops", "random crops instead of deformations", dict(augment="crop+flip")),
     ("weight-decay-0.01", "weight decay 0.01", dict(weight_decay=0.01)),
     ("ema-0.999", "a moving average of the weights, decay 0.999", dict(ema=0.999))])
# The sixteenth stage, for --preset best: self-distillation (--distill), the teacher the run's own
# snapshots, whose passes over the training images count against the budget
DISTILLATION_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_AVERAGING_KEPT),
    [("distill-0.3", "self-distillation from the run's own snapshots, weight 0.3",
      dict(distill=0.3)),
     ("distill-0.15", "self-distillation, weight 0.15", dict(distill=0.15))])
# The seventeenth stage, for --preset best: the kept recipe ran past its budget in the sixteenth
# stage; 130 epochs cost about an eighth less
BUDGET_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_AVERAGING_KEPT),
    [("130-epochs", "130 epochs", dict(epochs=130))])

# The eighteenth stage, for --preset best: wider hidden layers. The kept recipe fits its deformed
# and blended training images only a few points better than the validation images, a sign that
# capacity holds it back; a wider layer's epoch costs more, so the wider row trains the epochs
# that three-epoch timings of each width, beforehand, said would take at most the start's minutes
WIDTH_SEARCH = greedy_search(
    run("start", "start: the recipe the stages before kept", **SEARCH_AVERAGING_KEPT),
    [("1536-units", "2 x 1536 hidden units, 100 epochs",
      dict(hidden_dims=[1536, 1536], epochs=100))])
