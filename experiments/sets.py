"""The experiment sets, each declared once (ExperimentSet): its runs, what it measures on them or
computes, its figure and its section of the report, and how it may run. The runner, the job
arrays, the report and the tests derive from SETS; .gitignore keeps each set's results folder
(tests/test_experiments.py checks that its list is exactly SETS)."""
import dataclasses
from typing import Callable, Optional, Tuple

from experiments import figures, measures
from experiments.runs import (
    AVERAGING_SEARCH,
    BUDGET_SEARCH,
    DEFORM_SEARCH,
    DISTILLATION_SEARCH,
    DROPOUT_SEARCH,
    EPOCHS_SEARCH,
    FAST_DEFORM_SEARCH,
    FAST_DROPOUT_SEARCH,
    FAST_REGULARIZATION_SEARCH,
    FAST_REST_SEARCH,
    FAST_RESIDUAL_SEARCH,
    FAST_SEARCH,
    FAST_VIEWS_SEARCH,
    HORIZON_SEARCH,
    LADDER_RECIPE,
    LADDER_RECIPE_KEY,
    LADDER_RECIPE_NAME,
    LADDER_RECIPE_PERCENT,
    LONG_SEARCH,
    MIXUP_SEARCH,
    PROJECTION_SEARCH,
    REGULARIZATION_SEARCH,
    RESIDUAL_SEARCH,
    SEARCH,
    VIEWS_SEARCH,
    WIDTH_SEARCH,
    WITH_MIXUP_SEARCH,
    Run,
    ladder,
    run,
    seeded,
)
from experiments.sections import course, presets, questions, recipe, search, search_best
from training.options import DEFAULTS, PRESET_BUDGET_MINUTES, PRESETS


@dataclasses.dataclass(frozen=True)
class ExperimentSet:
    """One set. section(summary, experiment_set, results): its part of the report; figure(summary,
    path): the figure <name>/<name>.png it shows; measure(model, flags, data_dir): what each
    trained model adds to its summary entry; compute(): what the set adds to its summary without
    training; greedy: each run is a change tried on top of the changes kept so far; budget_preset:
    the preset whose budget on this machine each greedy row must keep to; one_process: measured on
    what only its training process holds, never a job array; timed: its runs' minutes are held
    against the budget of the machine that runs the report, so they run on that machine, in one
    job; shown_after: the set whose section this one's follows in the report, where that is not
    the set declared before it."""
    name: str
    title: str
    runs: Tuple[Run, ...]
    section: Callable
    figure: Optional[Callable] = None
    measure: Optional[Callable] = None
    compute: Optional[Callable] = None
    greedy: bool = False
    budget_preset: Optional[str] = None
    one_process: bool = False
    timed: bool = False
    shown_after: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "runs", tuple(self.runs))
        settings = {}
        for one in self.runs:  # a key names one run, or the seeds of one setting
            setting = (one.label, one.trainer, dict(one.flags, seed=None), one.figures, one.source)
            if settings.setdefault(one.key, setting) != setting:
                raise ValueError(f"the {self.name} set's runs {one.key} differ in more than their "
                                 "seed")


def evaluated(one, source=None):
    """The run, its model --evaluate'd and its figures shown; trained by the source (set, key)
    instead where one is given."""
    return dataclasses.replace(one, figures=True, source=source)


def declare(*experiment_sets):
    return {experiment_set.name: experiment_set for experiment_set in experiment_sets}


SETS = declare(
    ExperimentSet(
        "bn", "BatchNorm or not (2025 Q5f)",
        [*seeded("without-batchnorm", "without BatchNorm", use_batch_norm=False),
         *seeded("with-batchnorm", "with BatchNorm", use_batch_norm=True)],
        course.section_bn,
        figures.curves("PyTorch MLP at the course's defaults, with and without BatchNorm")),
    ExperimentSet(
        "activations", "ELU, Tanh or ReLU (2021 Q2.2)",
        [one for activation in ("elu", "tanh", "relu")
         for one in seeded(activation, activation, activation=activation)],
        course.section_activations,
        figures.curves("ELU vs Tanh vs ReLU at equal budget (course defaults otherwise)")),
    ExperimentSet(
        "numpy-vs-torch", "NumPy and PyTorch side by side",
        [run("numpy", "NumPy", trainer="numpy"), run("pytorch", "PyTorch")],
        course.section_numpy_vs_torch, figures.numpy_vs_torch_figure),
    ExperimentSet(
        "dead-neurons", "Dead ReLU units, with and without BatchNorm (2025 Q5d/e)",
        [run(f"{key}{'-batchnorm' if bn else ''}", f"{name}{' + BatchNorm' if bn else ''}",
             activation="relu", hidden_dims=[512, 256, 128], use_batch_norm=bn, **optimizer)
         for key, name, optimizer in [("sgd", "SGD lr 0.1", {}),
                                      ("adam", "Adam lr 0.01", dict(optimizer="adam", lr=0.01))]
         for bn in (False, True)],
        course.section_dead_neurons, figures.dead_neurons_figure,
        measure=measures.measure_dead_neurons),
    ExperimentSet(
        "best", f"How the {LADDER_RECIPE_PERCENT} % recipe was built", ladder(),
        recipe.section_best, figures.best_figure),
    ExperimentSet(
        "best-numpy-vs-torch", f"The {LADDER_RECIPE_PERCENT} % recipe in NumPy and in PyTorch",
        [run("numpy", "NumPy (hand-written backprop)", trainer="numpy", **LADDER_RECIPE),
         run("pytorch", "PyTorch (autograd)", **LADDER_RECIPE)],
        recipe.section_best_numpy_vs_torch, figures.best_numpy_vs_torch_figure),
    # measured before the searches: the stages that build the presets keep within its budgets
    ExperimentSet(
        "budget-reference", "The budget on this machine",
        [run(LADDER_RECIPE_KEY, LADDER_RECIPE_NAME, **LADDER_RECIPE)],
        presets.section_budget_reference, timed=True, shown_after="search-regularization-fast"),
    ExperimentSet(
        "search", "The best pure MLP, searched on validation accuracy", SEARCH,
        search.section_search, figures.greedy_figure, greedy=True),
    ExperimentSet(
        "search-long", "The search's second stage: twice the epochs", LONG_SEARCH,
        search.section_search_long, figures.greedy_figure, greedy=True),
    ExperimentSet(
        "search-projection",
        "The search's third stage: a cheaper first layer, then more epochs", PROJECTION_SEARCH,
        search.section_search_projection, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-fast", "The search's fourth stage: the minutes of --preset fast", FAST_SEARCH,
        search.section_search_fast, figures.every_row_figure, greedy=True, budget_preset="fast"),
    ExperimentSet(
        "search-epochs", "The search's fifth stage: epochs bought with width, at the minutes of "
        "--preset best", EPOCHS_SEARCH, search.section_search_epochs, figures.every_row_figure,
        greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-horizon", "The search's sixth stage: the rest of the budget of --preset best",
        HORIZON_SEARCH, search.section_search_horizon, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-views", "The search's seventh stage: views at test time, for --preset best",
        VIEWS_SEARCH, search.section_search_views, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-views-fast", "The seventh stage for --preset fast", FAST_VIEWS_SEARCH,
        search.section_search_views, figures.every_row_figure, greedy=True,
        budget_preset="fast"),
    ExperimentSet(
        "search-deform", "The search's eighth stage: deformations, for --preset best",
        DEFORM_SEARCH, search.section_search_deform, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-deform-fast", "The eighth stage for --preset fast", FAST_DEFORM_SEARCH,
        search.section_search_deform, figures.every_row_figure, greedy=True,
        budget_preset="fast"),
    ExperimentSet(
        "search-residual", "The search's ninth stage: residual blocks, for --preset best",
        RESIDUAL_SEARCH, search.section_search_residual, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-residual-fast", "The ninth stage for --preset fast", FAST_RESIDUAL_SEARCH,
        search.section_search_residual, figures.every_row_figure, greedy=True,
        budget_preset="fast"),
    ExperimentSet(
        "search-dropout", "The search's tenth stage: no dropout, then the rest of the budget, for "
        "--preset best", DROPOUT_SEARCH, search.section_search_dropout, figures.every_row_figure,
        greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-dropout-fast", "The tenth stage for --preset fast", FAST_DROPOUT_SEARCH,
        search.section_search_dropout, figures.every_row_figure, greedy=True,
        budget_preset="fast"),
    ExperimentSet(
        "search-rest-fast", "The search's eleventh stage, for --preset fast: the rest of its "
        "budget", FAST_REST_SEARCH, search.section_search_rest, figures.every_row_figure,
        greedy=True, budget_preset="fast"),
    ExperimentSet(
        "search-regularization", "The search's twelfth stage: less regularization, for "
        "--preset best", REGULARIZATION_SEARCH, search.section_search_regularization,
        figures.every_row_figure, greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-regularization-fast", "The twelfth stage for --preset fast",
        FAST_REGULARIZATION_SEARCH, search.section_search_regularization,
        figures.every_row_figure, greedy=True, budget_preset="fast"),
    ExperimentSet(
        "search-mixup", "The search's thirteenth stage: mixup, for --preset best", MIXUP_SEARCH,
        search_best.section_search_mixup, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-averaging", "The search's fourteenth stage: 50 views at test time, for "
        "--preset best", AVERAGING_SEARCH, search_best.section_search_averaging,
        figures.every_row_figure, greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-with-mixup", "The search's fifteenth stage: the other regularizers with "
        "mixup, and an average of the weights, for --preset best", WITH_MIXUP_SEARCH,
        search_best.section_search_with_mixup, figures.every_row_figure, greedy=True,
        budget_preset="best"),
    ExperimentSet(
        "search-distillation", "The search's sixteenth stage: self-distillation, for --preset "
        "best", DISTILLATION_SEARCH, search_best.section_search_distillation,
        figures.every_row_figure, greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-budget", "The search's seventeenth stage: the recipe within its budget, for "
        "--preset best", BUDGET_SEARCH, search_best.section_search_budget,
        figures.every_row_figure, greedy=True, budget_preset="best"),
    ExperimentSet(
        "search-width", "The search's eighteenth stage: wider hidden layers at fewer epochs, for "
        "--preset best", WIDTH_SEARCH, search_best.section_search_width,
        figures.every_row_figure, greedy=True, budget_preset="best"),
    ExperimentSet(
        "presets", "The presets against their budgets ("
        f"{PRESET_BUDGET_MINUTES['best']:g} and {PRESET_BUDGET_MINUTES['fast']:g} minutes, "
        "scaled to this machine)",
        [*[run(name, f"--preset {name}", **preset) for name, preset in PRESETS.items()],
         run("best-numpy", "--preset best, NumPy", trainer="numpy", **PRESETS["best"])],
        presets.section_presets, figures.presets_figure, timed=True),
    # --preset best again at other seeds: how far apart one recipe's runs land
    ExperimentSet(
        "preset-seeds", "--preset best at other seeds", seeded("best", "--preset best",
                                                                **PRESETS["best"]),
        presets.section_preset_seeds),
    # the course's NumPy model is trained here; the best one is the presets set's, evaluated
    ExperimentSet(
        "learned", "What the models learned",
        [evaluated(run("course-numpy", "the course's NumPy MLP", trainer="numpy")),
         evaluated(run("best-mlp", "the best MLP", **PRESETS["best"]), ("presets", "best"))],
        presets.section_learned),
    # Question 4: the course's NumPy MLP at three points of its default run (--epochs 0 tests
    # the initial weights), then GOE matrices and saddles, which train nothing
    ExperimentSet(
        "hessian", "The Hessian of the course's MLP: negative eigenvalues (2025 Q4a)",
        [run("initialization", "initialization", trainer="numpy", epochs=0),
         run("one-epoch", "after one epoch", trainer="numpy", epochs=1),
         run("best-epoch", f"the best epoch of {DEFAULTS['epochs']}", trainer="numpy")],
        questions.section_hessian, figures.hessian_figure, measure=measures.measure_hessian,
        one_process=True),
    ExperimentSet(
        "saddles", "Saddle points: how many, and how slow to leave (2025 Q4b, Q4c)", [],
        questions.section_saddles, figures.saddles_figure, compute=measures.compute_saddles,
        one_process=True),
    # Question 5c: a BatchNorm model tested with running and with batch statistics
    ExperimentSet(
        "bn-test-time", "BatchNorm at test time with batch statistics (2025 Q5c)",
        [run("batchnorm", "BatchNorm at the course's defaults", use_batch_norm=True)],
        questions.section_bn_test_time, figures.batch_statistics_figure,
        measure=measures.measure_batch_statistics),
)


def report_order(experiment_sets):
    """The sets in the order of their sections: as declared, each shown_after set moved after
    the set it names."""
    order = [one for one in experiment_sets.values() if one.shown_after is None]
    for one in experiment_sets.values():
        if one.shown_after is not None:
            order.insert(order.index(experiment_sets[one.shown_after]) + 1, one)
    return order
