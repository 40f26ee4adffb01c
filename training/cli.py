"""The trainers' command line: one line and an exit code for every way a command can end."""
import sys

from safety.console import say
from safety.errors import EXIT_CODES, UserError
from safety.signals import disregard_stop_signals, handle_stop_signals, ignore_stop_signals
from training.options import DEFAULTS, RECORDED
from training.run_folder import ENDINGS, close_progress_bars

# what --evaluate reads of the flags: the model's record (for a file that holds none; the ones
# given must agree with a file's own), where the data is and the device
READ_BY_EVALUATE = {*RECORDED, "data_dir", "data_url", "device"}


def run_cli(function, stopped="before any result was written", **kwargs):
    """Call function(**kwargs); a user-facing error, Ctrl-C or SIGTERM ends with one line (the
    run's own, or error: ..., or the stop and when it came: stopped) and an exit code: 1, 130
    or 143.

    OSErrors (a full disk, a missing or unreadable file) are the machine's state, not bugs, so
    they get one line too; so does running out of memory."""
    handle_stop_signals()
    try:
        function(**kwargs)
    except KeyboardInterrupt as stop:
        ignore_stop_signals()
        if not getattr(stop, "reported", False):
            close_progress_bars()
            say(f"{ENDINGS[type(stop)]} {stopped}", sys.stderr)
        sys.exit(EXIT_CODES[type(stop)])
    except (UserError, OSError) as error:
        sys.exit(f"error: {error}")
    except MemoryError:
        sys.exit("error: out of memory; try smaller --hidden_dims or --batch_size")
    disregard_stop_signals()


def train_or_evaluate(args, train, evaluate_saved):
    """Train with the parsed flags or, given --evaluate PATH, test the weights saved there."""
    args = vars(args)
    saved_model, resume, figures_dir = (args.pop(name) for name in
                                        ("evaluate", "resume", "figures_dir"))
    given_flags, preset, from_preset = (args.pop(name) for name in
                                        ("given_flags", "preset", "from_preset"))
    if resume is not None:  # the run's own flags fill in the rest (TrainingRun)
        run_cli(lambda: train(**{name: args[name] for name in given_flags if name in args},
                              resume=resume),
                "before the resumed run finished an epoch; its checkpoint is as it was")
    elif saved_model is not None:
        run_cli(check_read_by_evaluate, typed=given_flags - from_preset)
        run_cli(evaluate_saved, "before the evaluation finished; figures already drawn are "
                "whole", path=saved_model, given_flags=given_flags, figures_dir=figures_dir,
                **args)
    else:
        run_cli(train, "before the first epoch finished; no run folder was made", preset=preset,
                **{name: value for name, value in args.items() if name not in from_preset})


def check_read_by_evaluate(typed):
    """UserError naming the flags typed with --evaluate that it would not read: a saved model is
    tested, nothing is trained or written to a results folder."""
    unread = [f"--{name}" for name in DEFAULTS if name in typed and name not in READ_BY_EVALUATE]
    if unread:
        raise UserError(f"--evaluate tests a saved model and trains nothing, so "
                        f"{', '.join(unread)} would do nothing (its figures go beside the model, "
                        f"or to --figures_dir): leave {'it' if len(unread) == 1 else 'them'} out")
