"""The written questions measured: the Hessian of the course's MLP (Question 4a), saddle points
(Questions 4b and 4c) and BatchNorm tested with batch statistics (Question 5c)."""
import numpy as np

from experiments.figures import share, slq_rules
from experiments.sections.words import ACTIVATION_NAMES, number_word, path_of
from experiments.store import by_key, flags_of
from questions import batch_statistics, hessian, saddles, spectrum

CIFAR10_TRAIN_IMAGES = 50_000  # before the validation split is held out
BULK = 0.01  # the table counts the spectrum beyond ± this share of the largest eigenvalue
GOE_HEADER = ("| n | matrices with all eigenvalues > 0 | fraction | 95 % interval | "
              "2⁻ⁿ (coin flips) | exp(−n² ln3/4 − bn + c) | θ from −½ Δ² log P |\n"
              "|---|---|---|---|---|---|---|")
HESSIAN_HEADER = (
    "| weights | test % | loss on the subset | ‖∇L‖ | λ_max (residual) | λ_min (residual) | "
    "curvature along u, from losses | abs(λ_min) / λ_max | % of spectrum below −{bulk} % of "
    "λ_max | % within ±{bulk} % of λ_max | % above +{bulk} % of λ_max | autograd rel. "
    "difference | time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def tail_masses(rules, threshold):
    """(share below -threshold, share within ±threshold, share above threshold)."""
    below = share(rules, lambda nodes: nodes < -threshold)
    above = share(rules, lambda nodes: nodes > threshold)
    return below, 1 - below - above, above


def section_hessian(summary, experiment_set, results):
    entries = summary["runs"]
    first, settings = entries[0]["hessian"], entries[0]["hessian"]["settings"]
    flags, one_epoch = (flags_of(by_key(summary)[key]) for key in ("best-epoch", "one-epoch"))
    network = (f"{number_word(len(flags['hidden_dims']))} hidden layer of "
               f"{flags['hidden_dims'][0]} {ACTIVATION_NAMES[flags['activation']]} units")
    after, epochs = number_word(one_epoch["epochs"]), flags["epochs"]
    training = f"{CIFAR10_TRAIN_IMAGES - flags['validation_size']:,}"
    probes, slq_steps = settings["probes"], settings["slq_steps"]
    parameters = f"{first['parameters']:,}"
    rows = []
    for entry in entries:
        found, metrics = entry["hessian"], entry["metrics"]
        smallest, largest = found["smallest"], found["largest"]
        below, near, above = tail_masses(slq_rules(found), BULK * largest["value"])
        rows.append(
            f"| {entry['label']} | {100 * metrics['test_accuracy']:.2f} | {found['loss']:.4f} | "
            f"{found['gradient_norm']:.3f} | {largest['value']:.4g} ({largest['residual']:.0g}) | "
            f"{smallest['value']:.4g} ({smallest['residual']:.0g}) | "
            f"{found['curvature_along_smallest']:.4g} | "
            f"{abs(smallest['value']) / largest['value']:.4f} | {100 * below:.2f} | "
            f"{100 * near:.2f} | {100 * above:.2f} | {found['autograd_relative_error']:.0e} | "
            f"{found['seconds']:.0f} s |")
    return f"""Question 4 asks what the Hessian says about critical points. Here is the Hessian of
the course's own MLP (`train_mlp_numpy.py` at its defaults: {network},
{parameters} parameters), at its initial weights, after {after} epoch and at the epoch with
the best validation accuracy of the default {epochs}. The loss is the mean cross-entropy on a fixed
subset: the first {settings['images']:,} images of the {training}-image training
split. Every Hessian-vector product comes from the hand-written NumPy backward pass (central
differences of two gradients in float64, `{path_of(hessian)}`); on each model one product was also
computed by torch's double backward, and the relative difference is in the table. The extreme
eigenvalues are Lanczos's ({settings['lanczos_steps']} steps, with the residual bound ‖Hy − θy‖ in
brackets: an eigenvalue lies that close); the density is stochastic Lanczos quadrature
({probes} random sign vectors, {slq_steps} steps each; `{path_of(spectrum)}`).
The curvature along the smallest eigenvalue's vector u is measured again from loss values alone,
(L(θ + tu) − 2L(θ) + L(θ − tu)) / t² with t = {settings['curvature_step']:g}.

![Hessian spectrum](hessian/hessian.png)

{HESSIAN_HEADER.format(bulk=f"{100 * BULK:g}")}
{chr(10).join(rows)}

{hessian_text(entries)}"""


def hessian_text(entries):
    """What the table shows, said from its numbers."""
    found = [entry["hessian"] for entry in entries]
    ratios = [abs(f["smallest"]["value"]) / f["largest"]["value"] for f in found]
    negative_everywhere = all(f["smallest"]["value"] < 0 and f["curvature_along_smallest"] < 0
                              for f in found)
    verdict = ("At every point the most negative eigenvalue is confirmed by loss values alone: "
               "the loss curves downward along its vector. By Question 4a a point whose Hessian "
               "has a negative eigenvalue is not a local minimum, so none of these weights is "
               "one, the best epoch's included; their gradient is not zero either (SGD stops "
               "when its epochs run out, not at a critical point)." if negative_everywhere else
               "Not every point has a negative eigenvalue that the loss values confirm: see the "
               "table.")
    below_zero = [spectrum.mass_below(slq_rules(f), 0.0) for f in found]
    below_zero = ", ".join(f"{100 * m.mean():.1f} ± {100 * m.std(ddof=1) / np.sqrt(len(m)):.1f} %"
                           for m in below_zero)
    bulk, three = f"{100 * BULK:g}", number_word(len(entries))
    return f"""Most of the spectrum is flat: at every point nearly all of the density lies within
±{bulk} % of λ_max, the bulk near zero that the smoothed density shows as one tall peak, with
both signs in it. Counted directly below zero, SLQ gives
{below_zero}
(mean ± standard error over the probes) at the {three} points: mostly that bulk, split across
zero by the quadrature nodes nearest it, which is why the table counts only what lies beyond
±{bulk} % of λ_max. Outside it, the positive side reaches λ_max, and the negative side reaches
{', '.join(f'{100 * r:.1f} %' for r in ratios)} of that at the {three} points. {verdict}
The proof of 4a, not this measurement, answers the question (derivations.md); the measurement
shows what the statement means for this network. The set took {set_minutes(entries, 'hessian'):.1f}
minutes, training included."""


def set_minutes(entries, measured):
    """Minutes a set took: its runs' wall time and what was measured on each."""
    return sum(e["metrics"]["wall_time_s"] + e[measured]["seconds"] for e in entries) / 60


def goe_rows(goe, min_hits):
    """Per n: the measured fraction and its interval, the coin flips' 2⁻ⁿ, the anchored law,
    and θ estimated from the second difference of log P around n where all three are resolved
    (min_hits or more)."""
    fractions = [row["hits"] / row["samples"] for row in goe]
    lines = []
    for i, row in enumerate(goe):
        theta = ""
        if 0 < i < len(goe) - 1 and all(goe[j]["hits"] >= min_hits for j in (i - 1, i, i + 1)):
            logs = np.log(fractions[i - 1:i + 2])
            theta = f"{-0.5 * (logs[2] - 2 * logs[1] + logs[0]):.3f}"
        lines.append(f"| {row['n']} | {row['hits']:,} / {row['samples']:,} | {fractions[i]:.3g} | "
                     f"{row['low']:.4g} to {row['high']:.4g} | {2.0 ** -row['n']:.3g} | "
                     f"{float(saddles.anchored_law(row['n'])):.3g} | {theta} |")
    return "\n".join(lines)


def slope_ratio(rows, lr, rate):
    """The measured median steps per unit of log(1/ε), against the closed form's 1/log(1+ηλ)."""
    epsilons = np.array([row["epsilon"] for row in rows])
    medians = [np.median(row["steps"]) for row in rows]
    slope = np.polyfit(np.log(1 / epsilons), medians, 1)[0]
    return slope * np.log(1 + lr * rate)


def section_saddles(summary, experiment_set, results):
    settings, goe = summary["settings"], summary["goe"]
    last = goe[-1]
    resolved = [row["n"] for row in goe if row["hits"] >= settings["goe_min_hits"]]
    quadratic = slope_ratio(summary["quadratic"], settings["lr"], 1.0)
    network = slope_ratio(summary["network"], settings["network_lr"],
                          summary["network_curvature"])
    shape = settings["network"]
    return f"""**4b: why saddle points outnumber minima.** At a critical point the Hessian decides:
a minimum needs every eigenvalue positive. Modelled as a random symmetric matrix (GOE:
(A + Aᵀ)/2, A of independent standard normals), how often is that so? {settings['goe_samples']:,}
matrices per size n, counted until a size where fewer than {settings['goe_min_hits']} of them had
only positive eigenvalues: with that many samples a share below about
{settings['goe_min_hits'] / settings['goe_samples']:.0e} is an
interval, not a value: at n = {last['n']}, {last['hits']} of them had (the 95 % interval's top
is drawn as an upper bound). Sizes n = {resolved[0]} to {resolved[-1]} are resolved.

![4b and 4c](saddles/saddles.png)

{GOE_HEADER}
{goe_rows(goe, settings['goe_min_hits'])}

The hint's coin flips give 2⁻ⁿ, a straight line on the log axis. The measured fraction bends down
from it: log P falls like −θ n², and its second differences (last column) estimate θ near
Dean and Majumdar's large-deviation value ln 3 / 4 = {saddles.DEAN_MAJUMDAR_THETA:.4f} (2006; coin
flips would give 0). The curve with that θ, completed by a linear term and a constant fixed by the
exact P(1) = 1/2 and P(2) = (1 − 1/√2)/2 (derivations.md), predicts the measurements at n ≥ 3
without any fitted parameter. The coin flips overestimate because the signs are not independent:
eigenvalues repel one another while the Gaussian weight holds them near zero, so they spread over
an interval of width about 2√(2n) around it (Wigner's semicircle). All n positive means the whole
repelling crowd pushed to one side of zero at once, a collective move whose log-probability
scales like the crowd's energy, n charges each feeling the other n: of order n², not n. So among
the critical points of a loss in many dimensions almost all are saddles.

**4c: why gradient descent stalls near a saddle.** Near the saddle of f(x, y) = ½(x² − y²), one
gradient step multiplies the downhill coordinate y by 1 + η, so a start at distance ε needs about
log(1/ε) / log(1 + η) steps to get to distance 1: the gradient is as small as the distance, and
the steps are too. Measured from {settings['starts']} starts in random directions at each ε
(η = {settings['lr']:g}), the median follows the closed form with a constant offset: the random
direction's downhill part is ε·|sin φ|, not ε. The same holds at the zero weights of a two-layer
linear network Ŷ = W₂W₁X ({shape['inputs']} inputs, {shape['hidden']} hidden, {shape['outputs']}
outputs, {shape['samples']} samples, loss ‖Ŷ − Y‖²/2N), a saddle whose most negative Hessian
eigenvalue is −s₁ = −{summary['network_curvature']:.3f} (s₁: the largest singular value of YXᵀ/N),
escaped at the rate 1 + η s₁ (η = {settings['network_lr']:g}; {settings['network_starts']} random
starts per ε; "away" means halfway down from the saddle's loss to the lowest one). Steps per
factor e of 1/ε, measured over closed form: {quadratic:.3f} for the quadratic, {network:.3f} for
the network. Every factor of ten closer to the saddle costs the same number of extra steps, and a
network started at exactly zero weights would never move. These ran in
{summary['seconds']:.0f} s."""


def section_bn_test_time(summary, experiment_set, results):
    entry = summary["runs"][0]
    found, names = entry["batch_statistics"], entry["batch_statistics"]["class_names"]
    settings, module = found["settings"], path_of(batch_statistics)
    rows = "\n".join(f"| {size} | {found['images'][size]:,} | {100 * accuracy:.2f} |"
                     for size, accuracy in found["accuracy"].items())
    one = found["classes_at_batch_of_one"]
    taken = np.array(found["classes_taken"])
    shown = np.bincount(found["shown_classes"], minlength=len(names))
    same = ("the same as" if found["running_accuracy"] == entry["metrics"]["test_accuracy"]
            else "**not** the same as")
    called = [f"{names[i]} ({n:,})" for i, n in enumerate(one or []) if n]
    batch_of_one = (f"With a batch of one, the {sum(one):,} test images are called "
                    f"{called[0].split(' (')[0] if len(called) == 1 else ', '.join(called)}: "
                    f"every pre-activation minus its batch mean is 0, so every BatchNorm output "
                    f"is β and the network's output is one constant." if one else "")
    return f"""Question 5c: why BatchNorm cannot normalize with the test batch's own statistics.
`{entry['command']}` trained the model; the trainers test it with the running statistics
(evaluation mode): {100 * found['running_accuracy']:.2f} % here, through the trainers' own
`evaluate_model`, {same} the {100 * entry['metrics']['test_accuracy']:.2f} % the run recorded. The
same model was then tested with every BatchNorm layer normalizing each test batch with that
batch's own mean and variance (`{module}`; the images in the test set's order, the
remainder that fills no whole batch left out), through the same prediction code.

| test batch size | images | accuracy with batch statistics % |
|---|---|---|
{rows}

![BatchNorm at test time](bn-test-time/bn-test-time.png)

{batch_of_one} With batch statistics, a prediction depends on the other images of the batch: of
the first {len(taken)} test images, each put in {settings['draws']} random batches of
{settings['companions']}, {np.mean(taken > 1) * 100:.1f} % were given more than one class, up to
{taken.max()} different classes. Test image {found['shown_index']} (a {names[found['shown_label']]},
the first of those given the most) was given {np.count_nonzero(shown)} different classes in
{len(found['shown_classes'])} random batches of {settings['companions']}, its own in
{shown[found['shown_label']]} of them; with the running statistics it is called
{names[found['shown_running_class']]}, whatever it is batched with. Larger batches estimate the
statistics better and approach the running ones, but the answer still depends on what else is in
the batch and on how many images arrive at once: a model should give one image one answer.
Running statistics fix the normalization once, after training, for every input. The set took
{set_minutes([entry], 'batch_statistics'):.1f} minutes, training included."""
