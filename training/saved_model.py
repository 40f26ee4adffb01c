"""A saved model: the MLP its architecture record describes, the record's checks, and the
refusal of files that are not this trainer's model."""
import math
import os
import zipfile

from dataset.cifar10 import NUM_CLASSES, PIXEL_VALUES
from safety.errors import UserError
from training.options import ARCHITECTURE, BY_NAME, DEFAULTS, RECORDED, contradictions


# what each trainer writes after every epoch for --resume, beside the model it keeps
CHECKPOINTS = {"numpy": "checkpoint.npz", "pytorch": "checkpoint.pt"}

# the architecture options whose default, 0, means the model has no such part: a record that
# lacks one (a run or model of a version of this project without that option) lacks that part
PARTS = ("projection", "bottleneck", "blocks", "block_width")


def with_parts(record):
    """record (a run's config or a saved model's) with each of PARTS it lacks at its default."""
    return {**{name: DEFAULTS[name] for name in PARTS}, **record}


def build_mlp(mlp_class, architecture, components=None, **settings):
    """The MLP for CIFAR-10 that an architecture record (options.ARCHITECTURE) describes, built
    whole: a projection's components (PIXEL_VALUES, K), fitted by the run or saved with the
    model, are given where the record has --projection K."""
    projection = architecture["projection"]
    if projection and getattr(components, "shape", None) != (PIXEL_VALUES, projection):
        raise ValueError(f"--projection {projection} needs components of shape "
                         f"({PIXEL_VALUES}, {projection}), not {components!r}")
    return mlp_class(PIXEL_VALUES, architecture["hidden_dims"],
                     NUM_CLASSES, architecture["use_batch_norm"],
                     architecture["activation"], architecture["dropout"],
                     bottleneck=architecture["bottleneck"], blocks=architecture["blocks"],
                     block_width=architecture["block_width"],
                     projection=components if projection else None, **settings)


def parameter_count(architecture):
    """The weights and biases of the MLP an architecture record describes, and its residual
    blocks' LayerNorm γ and β: all of its parameters but BatchNorm's γ and β."""
    hidden_dims = architecture["hidden_dims"]
    bottleneck = [architecture["bottleneck"]] if architecture["bottleneck"] else []
    sizes = [architecture["projection"] or PIXEL_VALUES, *bottleneck, *hidden_dims, NUM_CLASSES]
    parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if hidden_dims:  # each block: LayerNorm's γ and β, W₁ and W₂ with their biases
        width = hidden_dims[-1]
        inner = architecture["block_width"] or width
        parameters += architecture["blocks"] * (2 * width + 2 * width * inner + inner + width)
    return parameters


def saved_components(path, state, record):
    """The projection's components a saved model holds, to build it with; None without one."""
    if not record["projection"]:
        return None
    components = state.get("layers.0.components")
    found = None if components is None else tuple(components.shape)
    expected = (PIXEL_VALUES, record["projection"])
    if found != expected:
        raise UserError(f"{path} holds projection components of shape {found}, but the model its "
                        f"record describes (--projection {record['projection']}) has {expected}")
    return components


def not_a_saved_model(path, reason):
    return UserError(f"{path} is not a saved model of this trainer ({reason})")


def saved_by(path):
    """'numpy' or 'pytorch' where path is a zip archive such as that trainer saves, else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if any(name.endswith("/data.pkl") for name in names):
        return "pytorch"
    return "numpy" if "architecture.npy" in names else None


def refuse_the_other_trainers_model(path, framework):
    """Refuse what is not a file (a device such as /dev/zero is endless, a FIFO blocks), a run's
    checkpoint and a model of the other trainer, each by name."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise not_a_saved_model(path, "it is not a regular file")
    written_by = {name: trainer for trainer, name in CHECKPOINTS.items()}
    if os.path.basename(path) in written_by:
        trainer = written_by[os.path.basename(path)]
        raise not_a_saved_model(path, f"it is a run's checkpoint, which train_mlp_{trainer}.py "
                                      f"--resume {os.path.dirname(path) or '.'} goes on from; "
                                      f"--evaluate the model saved beside it")
    other = saved_by(path)
    if other not in (None, framework):
        name = {"numpy": "NumPy", "pytorch": "PyTorch"}[other]
        raise not_a_saved_model(path, f"it is a {name} model: use train_mlp_{other}.py")


def resolve_record(path, saved, flags, given_flags):
    """The record (options.RECORDED) to rebuild and measure a saved model with: the one saved
    with it, each value checked as a flag is, which flags (the record that the flags describe)
    the user chose must not contradict; flags alone only for a file that records none."""
    if saved is None:
        return {name: flags[name] for name in RECORDED}
    saved = with_parts(saved) if isinstance(saved, dict) else saved
    if not isinstance(saved, dict) or set(saved) != set(RECORDED):
        raise not_a_saved_model(path, "its architecture record is not one this trainer writes")
    try:
        saved = {name: BY_NAME[name].check(value) for name, value in saved.items()}
    except (TypeError, ValueError) as error:
        raise UserError(f"{path} records {error}: this version cannot rebuild that model (the "
                        f"file was edited, or another version of this project wrote it)") from None
    conflicts = contradictions(flags, saved, [key for key in RECORDED if key in given_flags],
                               "the model")
    if conflicts:
        raise UserError(f"{path} records other settings than {conflicts}; leave these flags "
                        f"out: the model records its own")
    return saved


def check_holds_its_parameters(path, state, record):
    """Refuse a file that holds fewer numbers than its record's model has parameters (a record
    edited by hand), before that model is built: it may not fit in memory."""
    parameters = parameter_count(record)
    held = sum(math.prod(value.shape) for value in state.values())
    if parameters > held:
        raise UserError(f"{path} records a model of {parameters:,} parameters but holds "
                        f"{held:,} numbers: the file was edited, or another program wrote it")


def load_weights(model, state, path, recorded):
    """Load a state (NumPy arrays or tensors) into model; one of another architecture is
    refused with both sets of shapes named. recorded: whether the file's own record built the
    model, which no flag can change, or the flags did."""
    saved, expected = ({name: tuple(value.shape) for name, value in tensors.items()}
                       for tensors in (state, model.state_dict()))
    if saved != expected and recorded:
        raise UserError(f"{path} holds {saved}, but the model its record describes has "
                        f"{expected}: the file was edited, or another program wrote it")
    if saved != expected:
        raise UserError(f"{path} holds {saved}, but the model these flags build has "
                        f"{expected}: pass the architecture flags it was "
                        f"trained with ({', '.join(f'--{name}' for name in ARCHITECTURE)}) or "
                        f"its --preset")
    model.load_state_dict(state)
