"""The experiment sets from the command line, run from the repository's root:

    python -m experiments bn              # train one set: results/bn/ (runs, summary.json)
    python -m experiments all             # every set, then the report
    python -m experiments report          # redraw figures, rewrite results/README.md; no training
"""
from training import threads

threads.let_blas_threads_sleep()  # before the imports below load NumPy, for the NumPy trainer

from experiments.runner import __doc__ as RUNNER_DOC
from experiments.runner import main
from experiments.sets import SETS
from experiments.store import DATA_DIR, RESULTS, Results
from safety.checks import folder
from safety.console import OneLineParser
from training.cli import run_cli

parser = OneLineParser(description=RUNNER_DOC.split("\n")[0])
parser.add_argument("what", choices=[*SETS, "all", "report"])
parser.add_argument("--data_dir", default=DATA_DIR, type=folder)
parser.add_argument("--data_note", default="",
                    help="what the data is, for the report (default: from its md5)")
parser.add_argument("--results_dir", default=RESULTS, type=folder,
                    help="where the sets' results and the report are (default: results/ "
                         "beside this file)")
parser.add_argument("--list", action="store_true",
                    help="print the set's runs as trainer commands, one a line, for a job "
                         "array (slurm/experiments.job), instead of running them")
args = parser.parse_args()
run_cli(main, "(a set not finished keeps its earlier results; `python -m experiments report` "
        "rewrites the report from those saved)", what=args.what,
        data_dir=args.data_dir, data_note_text=args.data_note, list_commands=args.list,
        results=Results(args.results_dir))
