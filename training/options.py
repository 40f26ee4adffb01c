"""Every option of the two trainers, written once (Config's fields): its default, type and
range, help, and whether a saved model records it. Both command lines, the defaults of train()
and the checks of its arguments, the run's name and record, a saved model's record and its
checks, the presets' check and the options page's flag table (docs/options.md, printed by
`python -m training.options`) derive from it."""
import argparse
import shlex
from dataclasses import dataclass, field, fields

from dataset.cifar10 import CIFAR10_URL, DATA_DIR, FOLDER_NAME, TARBALL_NAME
from dataset.splits import VALIDATION_SIZE
from safety import checks
from safety.console import OneLineParser, say
from safety.errors import OptionError
from training.preprocessing import AUGMENTATIONS, TTA_SHIFT, TTA_VIEWS


def comma_separated_dims(text):
    """The 2021 edition's --dnn_hidden_units "100,50"; "" means no hidden layer, and an empty part
    of a list ("8,,4", ",") is no size."""
    return [checks.positive_int(part) for part in text.split(",")] if text.strip() else []


class Option:
    """One flag. group: 'course' (the course's own), 'training' (beyond the course; named in the
    run's folder when changed), 'setup' (data, results, device), 'run' (what to run; no part of
    the run's record); architecture: a saved model records it; trainer: the only one taking it;
    spells: the option this one is another spelling of; where: it says where the run finds or
    leaves things, not what it computes, so a resumed run may change it."""

    def __init__(self, name, default, help, group, architecture=False, trainer=None, spells=None,
                 where=False, **argparse_settings):
        self.name, self.default, self.help, self.group = name, default, help, group
        self.architecture, self.trainer, self.spells = architecture, trainer, spells
        self.where = where
        self.settings = argparse_settings

    def check(self, value):
        """value as train() takes it, checked as the command line checks the flag's text:
        TypeError or ValueError naming the option."""
        if self.settings.get("action") is argparse.BooleanOptionalAction:
            return checks.check_flag(self.name, value)
        if "choices" in self.settings:
            return checks.check_choice(self.name, value, self.settings["choices"])
        if self.settings.get("nargs") == "+":
            return checks.check_sizes(self.name, value, self.settings["type"])
        return self.settings["type"].check(self.name, value)

    @property
    def allowed(self):
        """The allowed values in words, for help texts and the options page."""
        if "choices" in self.settings:
            return ", ".join(self.settings["choices"])
        return getattr(self.settings.get("type"), "allowed", "")

    def flag(self):
        """The flag as a user types it, e.g. --hidden_dims N [N ...]."""
        if self.settings.get("action") is argparse.BooleanOptionalAction:
            return f"--{self.name} / --no-{self.name}"
        metavar = self.settings.get("metavar", "")
        return f"--{self.name} {metavar} [{metavar} ...]" if self.settings.get("nargs") == "+" \
            else f"--{self.name} {metavar}".strip()


# What --preset trains: each the recipe the greedy search on validation accuracy ended with for
# it, the last row its last stage kept (a change kept only within the preset's budget, or else
# the stage's start) (experiments/runs.py; every stage is in results/README.md, and
# tests/test_experiments.py checks each preset against its stage's summary)
PRESETS = {
    # chosen by the search-averaging stage, which the search-with-mixup, search-distillation,
    # search-budget and search-width stages after it kept as it was (experiments/runs.py and their
    # folders under results/)
    "best": dict(hidden_dims=[1024, 1024], use_batch_norm=True, activation="gelu",
                 optimizer="adamw", lr=4e-3, weight_decay=0.02, schedule="onecycle",
                 augment="deform+flip", normalize="zca", zca_epsilon=1.0, tta="flip+wide-shift",
                 mixup=0.2, batch_size=512, projection=512, epochs=150),
    # chosen by the search-regularization-fast stage (results/search-regularization-fast/)
    "fast": dict(hidden_dims=[1024, 1024], use_batch_norm=True, activation="gelu",
                 optimizer="adamw", lr=4e-3, weight_decay=0.05, schedule="onecycle",
                 augment="crop+flip", normalize="zca", zca_epsilon=1.0, tta="flip+shift",
                 batch_size=512, projection=512, epochs=36),
}
# each preset's budget in minutes on the 2-core Intel Xeon that ran the experiments' best set,
# where that set's last run took experiments.budget.PRESET_REFERENCE_MINUTES; the
# budget-reference set times the same run on the machine at hand, which scales the budgets
PRESET_BUDGET_MINUTES = {"best": 10, "fast": 2.5}

def option(default, help, group, architecture=False, trainer=None, where=False,
           **argparse_settings):
    """A field of Config carrying its Option; a list default is copied for each Config."""
    declared = Option(None, default, help, group, architecture, trainer, None, where,
                      **argparse_settings)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"option": declared})
    return field(default=default, metadata={"option": declared})


@dataclass(frozen=True)
class Config:
    """A run's options, each checked as its flag is (Config.of), read as config.lr. The fields'
    order is the order of the flag table, of metrics.json's config and of the run's name."""
    hidden_dims: list = option(
        [128], "hidden layer sizes; none at all (--dnn_hidden_units \"\") is logistic regression",
        "course", architecture=True, type=checks.positive_int, nargs="+", metavar="N")
    lr: float = option(0.1, "learning rate", "course", type=checks.positive_float)
    batch_size: int = option(128, "images per training step (2 or more with BatchNorm)", "course",
                             type=checks.positive_int)
    epochs: int = option(10, "passes over the training split", "course",
                         type=checks.nonnegative_int)
    seed: int = option(42, "random seed: the same seed gives the same numbers on one machine "
                       "and library build", "course", type=checks.seed)
    use_batch_norm: bool = option(False, "BatchNorm after each hidden Linear", "course",
                                  architecture=True, action=argparse.BooleanOptionalAction)
    activation: str = option("elu", "hidden-layer nonlinearity; gelu is its tanh form",
                             "training", architecture=True, choices=("elu", "gelu", "relu", "tanh"))
    optimizer: str = option("sgd", "each with torch.optim's exact update rule (NumPy: "
                            "training/optim_numpy.py)", "training",
                            choices=("sgd", "adam", "adamw"))
    momentum: float = option(0.0, "SGD momentum", "training", type=checks.fraction)
    weight_decay: float = option(0.0, "L2 for sgd and adam, decoupled for adamw", "training",
                                 type=checks.nonnegative_float)
    dropout: float = option(0.0, "inverted dropout after each hidden activation", "training",
                            architecture=True, type=checks.fraction)
    schedule: str = option("none", "learning rate per step: constant, cosine decay to 0, or "
                           "one-cycle (up from lr/25 for 30% of the steps, then down to 0)",
                           "training", choices=("none", "cosine", "onecycle"))
    warmup: float = option(0.0, "epochs of linear learning-rate warm-up before none or cosine",
                           "training", type=checks.nonnegative_float)
    label_smoothing: float = option(0.0, "mixes each target with the uniform distribution",
                                    "training", type=checks.fraction)
    augment: str = option("none", "flip: random horizontal flips; crop+flip: also random 32x32 "
                          "crops of the 4-pixel zero-padded image; crop+flip+cutout: also an 8x8 "
                          "square of the mean colour at a random place; deform+flip: a random "
                          "turn within 10 degrees, zoom within 10% and move within 4 pixels, "
                          "then a random flip", "training",
                          choices=tuple(AUGMENTATIONS))
    normalize: str = option("channel", "input preprocessing: the course's per-channel mean and "
                            "std, each pixel's own training-set mean and std, or ZCA whitening "
                            "fitted on the training split", "training", architecture=True,
                            choices=("channel", "pixel", "zca"))
    zca_epsilon: float = option(0.1, "added to the covariance's eigenvalues by --normalize zca, "
                                "on pixels scaled to [0, 1]", "training",
                                type=checks.positive_float)
    tta: str = option("none", "flip: predict with the mean of each image's and its mirror's "
                      "probabilities, in validation and test; flip+shift: the kept model is "
                      f"validated and tested on {len(TTA_VIEWS['flip+shift'])} views, both "
                      f"images moved by -{TTA_SHIFT}, 0 or {TTA_SHIFT} pixels down and right "
                      "(each epoch validated on the image alone); flip+wide-shift: the same on "
                      f"{len(TTA_VIEWS['flip+wide-shift'])} views, moved by -{2 * TTA_SHIFT}, "
                      f"-{TTA_SHIFT}, 0, {TTA_SHIFT} or {2 * TTA_SHIFT} pixels",
                      "training", architecture=True, choices=tuple(TTA_VIEWS))
    mixup: float = option(0.0, "train on blends of each batch with a shuffled copy of itself, "
                          "x~ = w x + (1-w) x[perm], loss w L(y) + (1-w) L(y[perm]), one w ~ "
                          "Beta(ALPHA, ALPHA) per batch; 0 is off", "training",
                          type=checks.mixup_alpha, metavar="ALPHA")
    ema: float = option(0.0, "validate, keep and test an exponential moving average of the "
                        "weights (and BatchNorm's statistics; a projection stays as fitted), "
                        "a <- d a + (1-d) w after every step, d = min(DECAY, (1+t)/(10+t)); 0 is "
                        "off", "training", type=checks.fraction, metavar="DECAY")
    distill: float = option(0.0, "self-distillation: once snapshots of the run's own model (after "
                            "the middle epoch and every tenth of the run after it) have predicted "
                            "the training images, each image's target is (1-BETA) its label + "
                            "BETA their mean probabilities for it; 0 is off", "training",
                            type=checks.teacher_weight, metavar="BETA")
    projection: int = option(0, "a fixed first layer: each whitened image, after augmentation, "
                             "projected onto the top K principal components that --normalize zca "
                             "fitted; 0 is none", "training", architecture=True,
                             type=checks.nonnegative_int, metavar="K")
    bottleneck: int = option(0, "a linear layer of N units (no BatchNorm, activation or dropout) "
                             "before the first hidden layer, so that layer's weights have rank "
                             "<= N; 0 is none", "training", architecture=True,
                             type=checks.nonnegative_int, metavar="N")
    blocks: int = option(0, "residual blocks after the last hidden layer, each x + W2 act(W1 "
                         "LayerNorm(x)) [with dropout after act]; 0 is none", "training",
                         architecture=True, type=checks.nonnegative_int, metavar="R")
    block_width: int = option(0, "units of W1 in each residual block; 0: the last hidden width",
                              "training", architecture=True, type=checks.nonnegative_int,
                              metavar="N")
    data_dir: str = option(DATA_DIR, f"folder holding {FOLDER_NAME}/ or {TARBALL_NAME}", "setup",
                           where=True, type=checks.folder)
    data_url: str = option(CIFAR10_URL, "where to download CIFAR-10 if it is "
                           "missing (a mirror, or a plain path to the tarball); '' never "
                           "downloads", "setup", where=True, type=checks.location_or_nothing)
    validation_size: int = option(VALIDATION_SIZE, "training images held out for "
                                  "validation", "setup", type=checks.validation_size)
    results_dir: str = option("results", "each run writes a folder of curves, metrics and its "
                              "model here", "setup", where=True, type=checks.folder)
    device: str = option("auto", "auto picks CUDA, then MPS, then the CPU, and says which",
                         "setup", trainer="pytorch", where=True,
                         choices=("auto", "cpu", "cuda", "mps"))

    @classmethod
    def of(cls, framework, values):
        """The Config of a trainer's options (options_of; framework None: those both trainers
        take) given as a dict, defaults for those left out, each checked as the command line
        checks it (TypeError or ValueError naming it); an unknown one is a TypeError."""
        unknown = set(values) - set(options_of(framework))
        if unknown:
            raise TypeError(f"unknown options: {sorted(unknown)}")
        return cls(**{name: BY_NAME[name].check(values[name]) for name in options_of(framework)
                      if name in values})

    def as_dict(self, framework):
        """The options framework takes, by name, in the table's order (metrics.json's config)."""
        return {name: getattr(self, name) for name in options_of(framework)}

    def record(self):
        """What a saved model records (RECORDED)."""
        return {name: getattr(self, name) for name in RECORDED}


for _field in fields(Config):
    _field.metadata["option"].name = _field.name
# the 2021 edition's spelling of --hidden_dims, shown after it; train() takes it too
SPELLINGS = [Option("dnn_hidden_units", None, "the 2021 edition's spelling of --hidden_dims: "
                    "\"100,50\"", "course", spells="hidden_dims", type=comma_separated_dims,
                    metavar='"N,N"')]
# what to run, no part of the run's record
COMMANDS = [
    Option("preset", None, "start from a named recipe of results/README.md; flags given as "
           "well override it", "run", choices=tuple(sorted(PRESETS))),
    Option("evaluate", None, "instead of training, test the model a run saved", "run",
           type=checks.saved_model, metavar="MODEL"),
    Option("figures_dir", None, "with --evaluate: the folder its figures go to (made if "
           "missing); beside the model if left out", "run", type=checks.folder, metavar="DIR"),
    Option("resume", None, "continue a stopped run from its last finished epoch, with its own "
           "flags, to the numbers it would have reached uninterrupted", "run", type=checks.run_dir,
           metavar="RUN_DIR"),
]
# every flag, in the table's order
OPTIONS = [shown for declared in fields(Config) for shown in
           [declared.metadata["option"], *[s for s in SPELLINGS if s.spells == declared.name]]]
OPTIONS += COMMANDS
BY_NAME = {option.name: option for option in OPTIONS}
DEFAULTS = {declared.name: declared.metadata["option"].default for declared in fields(Config)}
TRAINING_OPTIONS = tuple(option.name for option in OPTIONS if option.group == "training")
ARCHITECTURE = tuple(option.name for option in OPTIONS if option.architecture)
WHERE = tuple(option.name for option in OPTIONS if option.where)
# A saved model's record: its architecture and the validation split its epoch was chosen on,
# which --evaluate measures again (the file calls the whole record its "architecture")
RECORDED = (*ARCHITECTURE, "validation_size")


def from_python(values):
    """train()'s keyword arguments as the flags they stand for, as the command line reads them: an
    option's other spelling as the option (text as typed after its flag, or the option's value),
    a preset's options under those given, and one given as None (as the course's template passes
    those left out) at its default: no option takes None as a value. Returns (those flags, the
    names whose value came from the preset)."""
    values = {name: value for name, value in values.items() if value is not None}
    for spelling in SPELLINGS:
        if spelling.name in values:
            if spelling.spells in values:
                raise TypeError(f"{spelling.name} and {spelling.spells} are two spellings of one "
                                f"option: give one of them")
            value = values.pop(spelling.name)
            try:
                values[spelling.spells] = (spelling.settings["type"](value)
                                           if isinstance(value, str) else value)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"{spelling.name} {value!r}: {error}") from None
    preset = values.pop("preset", None)
    if preset is None:
        return values, set()
    preset = checks.check_choice("preset", preset, tuple(sorted(PRESETS)))
    return {**PRESETS[preset], **values}, set(PRESETS[preset]) - set(values)


def options_of(trainer):
    """The run options (DEFAULTS's) that trainer takes."""
    return [name for name in DEFAULTS if BY_NAME[name].trainer in (None, trainer)]


assert all(set(preset) <= set(DEFAULTS) for preset in PRESETS.values())


def shown_default(option):
    """The default as help texts and the options page show it: a switch's as on or off."""
    if isinstance(option.default, bool):
        return "on" if option.default else "off"
    return "" if option.default is None else flag_text(option.default)


def help_text(option):
    shown = shown_default(option) and f"default: {shown_default(option)}"
    details = "; ".join(part for part in (option.allowed, shown) if part)
    return (f"{option.help} ({details})" if details else option.help).replace("%", "%%")


def build_parser(trainer, description):
    """The trainer's command line: every option of OPTIONS it takes, grouped as in the table."""
    parser = OneLineParser(description=description)
    groups = {option.group: parser.add_argument_group(f"{option.group} options")
              for option in OPTIONS}
    for option in OPTIONS:
        if option.trainer in (None, trainer):
            groups[option.group].add_argument(f"--{option.name}", help=help_text(option),
                                              default=option.default, **option.settings)
    return parser


def parse_with_preset(parser, argv=None):
    """Parse argv, with a --preset's flags as the defaults that flags given on the line override.

    args.given_flags names the flags the user chose: typed, or set by the preset. A flag typed
    in two spellings is refused: which one was meant cannot be known."""
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    args = parser.parse_args(argv)
    # argparse fills in a default only where the namespace lacks the name: start from markers
    not_given = object()
    typed = parser.parse_args(argv, argparse.Namespace(**{key: not_given for key in vars(args)}))
    typed = {key for key, value in vars(typed).items() if value is not not_given}
    for option in OPTIONS:
        if option.spells and option.name in typed:
            if option.spells in typed:
                parser.error(f"--{option.name} and --{option.spells} are two spellings of one "
                             f"option: give one of them")
            setattr(args, option.spells, getattr(args, option.name))
            typed.add(option.spells)
        if option.spells:
            delattr(args, option.name)
            typed.discard(option.name)
    args.given_flags = typed | set(PRESETS.get(preset, {}))
    # a training run takes the preset by name, as train(preset=...) does, and the flags typed
    args.from_preset = set(PRESETS.get(preset, {})) - typed
    if args.resume is not None and args.evaluate is not None:
        parser.error("--resume continues a run and --evaluate tests a saved model: give one")
    if args.figures_dir is not None and args.evaluate is None:
        parser.error("--figures_dir says where --evaluate draws its figures: give --evaluate")
    return args


def check_batch_norm_batch(use_batch_norm, batch_size):
    """BatchNorm's rule, which a run checks once a preset's options that do nothing are left
    out (--preset fast --dnn_hidden_units "" has no BatchNorm)."""
    if use_batch_norm and batch_size < 2:
        raise OptionError(f"--use_batch_norm needs --batch_size 2 or more, not {batch_size}: "
                        f"BatchNorm cannot normalize a batch of one sample")


def flag_text(value):
    """A value as it is typed after its flag: a float short (4e-3 as 0.004) where that is
    still the value, else with every digit it needs."""
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    if isinstance(value, float):
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return str(value)


def typed_flag(name, value):
    """The flag with its value as a user types it: --hidden_dims 8 4, --no-use_batch_norm."""
    if isinstance(value, bool):
        return f"--{name}" if value else f"--no-{name}"
    if value == []:  # only the other spelling can say "none"
        return f'--{next(o.name for o in OPTIONS if o.spells == name)} ""'
    if isinstance(value, list):
        return " ".join([f"--{name}", *map(str, value)])
    return f"--{name} {shlex.quote(flag_text(value))}"  # '' for an empty text, as a shell needs


def command_line(trainer, flags):
    """The trainer command line that gives these flags: a preset they contain, then every other
    flag that differs from its default."""
    preset = next((name for name, values in PRESETS.items() if {**flags, **values} == flags), None)
    in_preset = PRESETS.get(preset, {})
    words = ["python", f"train_mlp_{trainer}.py", *([f"--preset {preset}"] if preset else [])]
    return " ".join(words + [typed_flag(key, value) for key, value in flags.items()
                             if key not in in_preset and value != DEFAULTS.get(key)])


def contradictions(flags, recorded, names, whose):
    """Each of names whose flag differs from what recorded holds, both as typed, e.g.
    '--lr 0.5 (the run: --lr 0.1)', joined by commas; '' where none differs."""
    return ", ".join(f"{typed_flag(name, flags[name])} ({whose}: "
                     f"{typed_flag(name, recorded.get(name))})"
                     for name in names if flags[name] != recorded.get(name))


def markdown_table():
    """The flag table of docs/options.md."""
    rows = ["| flag | default | allowed | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        default = shown_default(option) and f"`{shown_default(option)}`"
        only = f" ({option.trainer} only)" if option.trainer else ""
        rows.append(f"| `{option.flag()}`{only} | {default} | {option.allowed} | {option.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    say(markdown_table())  # a reader that stops early (`| head`) ends it, with no traceback
