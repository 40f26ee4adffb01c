"""The errors a user can fix, each shown as one line without a traceback, and the exit codes of a
command that a signal stopped."""


class UserError(Exception):
    """A problem the user can fix; the message is one line, shown without a traceback."""


class OptionError(UserError, ValueError):
    """Options that cannot go together, or a value this machine cannot train: one line on the
    command line, a ValueError to a caller of train()."""


class DataError(UserError):
    """The data is missing, corrupt or unsafe."""


class TrainingDiverged(UserError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, the way a cluster scheduler ends a job: handled as Ctrl-C is, but named apart."""


EXIT_CODES = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + the signal's number


def out_of_memory(what, other_way=""):
    """The UserError of a MemoryError while doing what, which says where the memory went (the
    data, a copy of it), so that no advice about the model's size misleads; other_way: another
    way out than more memory."""
    return UserError(f"out of memory while {what}: free memory, or raise the memory limit "
                     f"(ulimit -v, a job's --mem){other_way}, and run again")
