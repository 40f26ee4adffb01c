"""What a run is asked for, from the command line and from train(...) alike: options that the
others make do nothing are refused, a preset and the 2021 spelling are keywords too, every
refusal of an option is a ValueError or TypeError from Python and one line on the command line,
and nothing (no results folder, no run folder) is made before every check has passed."""
import pytest
import torch
from helpers import TINY, TRAINERS, assert_one_clear_line, run_script, train

from safety.errors import UserError
from training import cli
from training.options import PRESETS, Config, options_of
from training.run import TrainingRun, check_in_effect

# each: the flags, as typed and as train()'s keywords, and what the refusal says
DOING_NOTHING = [
    (["--warmup", "3", "--schedule", "onecycle"], dict(warmup=3.0, schedule="onecycle"),
     "--warmup 3 does nothing with --schedule onecycle"),
    (["--momentum", "0.9", "--optimizer", "adam"], dict(momentum=0.9, optimizer="adam"),
     "--momentum 0.9 does nothing with --optimizer adam"),
    (["--momentum", "0.9", "--optimizer", "adamw"], dict(momentum=0.9, optimizer="adamw"),
     "--momentum 0.9 does nothing with --optimizer adamw"),
    (["--zca_epsilon", "0.5"], dict(zca_epsilon=0.5),
     "--zca_epsilon 0.5 does nothing with --normalize channel"),
    (["--dnn_hidden_units", "", "--dropout", "0.5"], dict(hidden_dims=[], dropout=0.5),
     "--dropout 0.5 does nothing with no hidden layer"),
    (["--dnn_hidden_units", "", "--use_batch_norm"], dict(hidden_dims=[], use_batch_norm=True),
     "--use_batch_norm does nothing with no hidden layer"),
    (["--dnn_hidden_units", "", "--activation", "relu"], dict(hidden_dims=[], activation="relu"),
     "--activation relu does nothing with no hidden layer"),
    (["--dnn_hidden_units", "", "--bottleneck", "8"], dict(hidden_dims=[], bottleneck=8),
     "--bottleneck 8 does nothing with no hidden layer"),
    (["--dnn_hidden_units", "", "--blocks", "2"], dict(hidden_dims=[], blocks=2),
     "--blocks 2 does nothing with no hidden layer"),
    (["--block_width", "64"], dict(block_width=64),
     "--block_width 64 does nothing with no residual block"),
    (["--distill", "0.3", "--epochs", "1"], dict(distill=0.3, epochs=1),
     "--distill 0.3 does nothing with --epochs 1: no snapshot of its teacher comes before"),
]


@pytest.mark.parametrize("flags, _, message", DOING_NOTHING)
def test_an_option_the_others_make_do_nothing_is_one_line_before_any_work(flags, _, message,
                                                                          tmp_path):
    code, _, stderr = run_script("train_mlp_numpy.py", *flags, *TINY, "--data_dir",
                                 tmp_path / "no-data", "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, message)  # not the missing data: refused before it is read
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("framework", TRAINERS)
@pytest.mark.parametrize("_, keywords, message", DOING_NOTHING)
def test_from_python_it_is_a_value_error(framework, _, keywords, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train(framework, tmp_path / "no-data", tmp_path / "r", **keywords)
    assert not (tmp_path / "r").exists()


def test_the_presets_and_the_defaults_use_every_option_they_set():
    for flags in [*PRESETS.values(), {}]:
        check_in_effect(Config.of(None, flags))


def test_a_preset_is_a_keyword_and_the_keywords_given_override_it(tmp_path):
    fast = TrainingRun("numpy", dict(preset="fast", results_dir=str(tmp_path / "r"))).config
    assert {name: getattr(fast, name) for name in PRESETS["fast"]} == PRESETS["fast"]
    overridden = TrainingRun("pytorch", dict(preset="fast", hidden_dims=[8], epochs=None,
                                             lr=0.5, results_dir=str(tmp_path / "r"))).config
    assert (overridden.hidden_dims, overridden.epochs, overridden.lr) == \
        ([8], PRESETS["fast"]["epochs"], 0.5)
    assert overridden.optimizer == "adamw"
    with pytest.raises(ValueError, match="preset must be one of best, fast, not 'quick'"):
        TrainingRun("numpy", dict(preset="quick"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("framework", TRAINERS)
def test_every_option_given_as_none_is_left_at_its_default(framework, tmp_path):
    """As the course's template passes the arguments it leaves out: train(dropout=None) is the
    run without the keyword, for every option, under a preset too."""
    results = str(tmp_path / "r")
    for preset in [{}, dict(preset="fast")]:
        given = {name: None for name in options_of(framework) if name != "results_dir"}
        as_none = TrainingRun(framework, dict(given, results_dir=results, **preset)).config
        assert as_none == TrainingRun(framework, dict(results_dir=results, **preset)).config
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_presets_options_that_the_options_given_make_do_nothing_are_left_out(framework,
                                                                                tmp_path):
    """--preset fast --dnn_hidden_units "": logistic regression trained by the preset's recipe,
    without the preset's dropout, BatchNorm and GELU, which act on hidden units; typed, each is
    still refused. The command line passes the preset by name, as train(preset=...) does."""
    trainer, _ = TRAINERS[framework]
    results = str(tmp_path / "r")
    from_python = TrainingRun(framework, dict(preset="fast", hidden_dims=[],
                                              results_dir=results)).config
    typed = []
    cli.train_or_evaluate(trainer.parse_args(["--preset", "fast", "--dnn_hidden_units", "",
                                              "--results_dir", results]),
                          lambda **flags: typed.append(TrainingRun(framework, flags).config),
                          None)
    for config in (from_python, typed[0]):
        assert (config.hidden_dims, config.dropout, config.use_batch_norm, config.activation) == (
            [], 0.0, False, Config().activation)
        assert (config.optimizer, config.lr, config.epochs) == \
            ("adamw", 0.004, PRESETS["fast"]["epochs"])
    with pytest.raises(ValueError, match="--dropout 0.1 does nothing with no hidden layer"):
        TrainingRun(framework, dict(preset="fast", hidden_dims=[], dropout=0.1))
    # ZCA's own options, the projection onto its components among them, go with it
    channel = TrainingRun(framework, dict(preset="fast", normalize="channel")).config
    assert (channel.projection, channel.zca_epsilon) == (0, Config().zca_epsilon)
    with pytest.raises(ValueError, match="--projection 512 projects onto the principal"):
        TrainingRun(framework, dict(preset="fast", normalize="channel", projection=512))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_preset_trains_from_python(framework, cifar_dir, tmp_path):
    *_, log = train(framework, cifar_dir[0], tmp_path / "r", preset="fast", hidden_dims=[8],
                    projection=16, epochs=1, batch_size=16, tta="flip")
    assert "_optimizeradamw_" in log["run_dir"] and "_projection16" in log["run_dir"]


def test_the_2021_spelling_is_a_keyword_too():
    assert Config.of(None, {}).hidden_dims == [128]
    for given in ("100,50", [100, 50]):
        assert TrainingRun("numpy", dict(dnn_hidden_units=given)).config.hidden_dims == [100, 50]
    assert TrainingRun("numpy", dict(dnn_hidden_units="")).config.hidden_dims == []
    with pytest.raises(TypeError, match="dnn_hidden_units and hidden_dims are two spellings"):
        TrainingRun("numpy", dict(dnn_hidden_units="8", hidden_dims=[8]))
    with pytest.raises(ValueError, match="dnn_hidden_units '8,x'"):
        TrainingRun("numpy", dict(dnn_hidden_units="8,x"))
    for typo in (",", "8,,4", "8,"):  # an empty size is no size: not logistic regression, not 8 4
        with pytest.raises(ValueError, match=f"dnn_hidden_units '{typo}': '' is not an integer"):
            TrainingRun("numpy", dict(dnn_hidden_units=typo))


@pytest.mark.parametrize("keywords, message", [
    (dict(projection=16), "--projection 16 projects onto the principal components"),
    (dict(hidden_dims=[10 ** 9]), "--hidden_dims 1000000000 makes"),
    (dict(use_batch_norm=True, batch_size=1), "--use_batch_norm needs --batch_size 2"),
])
def test_options_refused_together_are_value_errors_naming_them(keywords, message, tmp_path):
    with pytest.raises(ValueError, match=message) as refused:
        train("numpy", tmp_path / "no-data", tmp_path / "r", **keywords)
    assert isinstance(refused.value, UserError)  # the command line's one line
    assert not (tmp_path / "r").exists()


def test_a_batch_larger_than_the_data_is_a_value_error_and_makes_no_folder(cifar_dir, tmp_path):
    with pytest.raises(ValueError, match="--batch_size 1000000 is larger than the"):
        train("numpy", cifar_dir[0], tmp_path / "r" / "deeper", batch_size=10 ** 6)
    assert not (tmp_path / "r").exists()


def test_missing_data_makes_no_folder(tmp_path):
    with pytest.raises(UserError, match="no CIFAR-10 data found"):
        train("numpy", tmp_path / "no-data", tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_cuda_asked_for_without_cuda_makes_no_folder(cifar_dir, tmp_path):
    with pytest.raises(UserError, match="--device cuda was asked for"):
        train("pytorch", cifar_dir[0], tmp_path / "r", device="cuda")
    assert not (tmp_path / "r").exists()
