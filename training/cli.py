"""The trainers' command line: one line and an exit code for every way a command can end."""
import sys

from safety.console import say
from safety.errors import EXIT_CODES, UserError
from safety.signals import handle_stop_signals
from training.run_folder import ENDINGS, close_progress_bars


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
        if not getattr(stop, "reported", False):
            close_progress_bars()
            say(f"{ENDINGS[type(stop)]} {stopped}", sys.stderr)
        sys.exit(EXIT_CODES[type(stop)])
    except (UserError, OSError) as error:
        sys.exit(f"error: {error}")
    except MemoryError:
        sys.exit("error: out of memory; try smaller --hidden_dims or --batch_size")


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
        run_cli(evaluate_saved, "before the evaluation finished; figures already drawn are "
                "whole", path=saved_model, given_flags=given_flags, figures_dir=figures_dir,
                **args)
    else:
        run_cli(train, "before the first epoch finished; no run folder was made", preset=preset,
                **{name: value for name, value in args.items() if name not in from_preset})
