"""SGD (with momentum and weight decay), Adam and AdamW for the NumPy MLP, each with torch.optim's
exact update rule, so that the two trainers take the same steps from the same gradients.

An optimizer holds the model and its learning rate (`lr`, which a schedule may change between
steps) and updates every parameter in place from model.parameters() on step(). Notation: p a
parameter, g its gradient dL/dp, η the learning rate, λ the weight decay, t the step (from 1)."""
import numpy as np

from training.threads import in_row_blocks


class SGD:
    """g <- g + λ p;  with momentum μ: b <- g on the first step, b <- μ b + g after, g <- b;
    then p <- p - η g (torch.optim.SGD without dampening or Nesterov)."""

    def __init__(self, model, lr, momentum=0.0, weight_decay=0.0):
        self.model, self.lr = model, lr
        self.momentum, self.weight_decay = momentum, weight_decay
        self.buffers = {}

    def step(self):
        for name, param, grad in self.model.parameters():
            # the gradient is consumed: scaling it in place spares a temporary per parameter
            if self.weight_decay:
                grad += self.weight_decay * param
            if not self.momentum:
                grad *= self.lr
                param -= grad
                continue
            if name in self.buffers:
                buffer = self.buffers[name]
                buffer *= self.momentum
                buffer += grad
            else:
                buffer = self.buffers[name] = grad.copy()
            param -= self.lr * buffer

    def state_dict(self):
        """The momentum buffers, as arrays named 'buffer.<parameter>': what a resumed run needs."""
        return {f"buffer.{name}": buffer.copy() for name, buffer in self.buffers.items()}

    def load_state_dict(self, state):
        self.buffers = {name.split(".", 1)[1]: np.array(value) for name, value in state.items()}


class Adam:
    """m <- β₁ m + (1 - β₁) g,  v <- β₂ v + (1 - β₂) g²,
    p <- p - η/(1 - β₁ᵗ) m / (√v / √(1 - β₂ᵗ) + ε)   (torch.optim.Adam's placement of ε).
    Adam adds λ p to g first (L2 regularization); AdamW instead decays the weights themselves,
    p <- p (1 - η λ), before the step (decoupled weight decay)."""

    decoupled = False

    def __init__(self, model, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
        self.model, self.lr, self.weight_decay = model, lr, weight_decay
        self.betas, self.eps = betas, eps
        self.moments, self.t = {}, 0

    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.t)
        root_correction = np.sqrt(1 - beta2 ** self.t)
        for name, param, grad in self.model.parameters():
            if name not in self.moments:
                self.moments[name] = tuple(np.zeros_like(param) for _ in range(3))
            # on blocks of rows, one per core: 8.2 ms against 13.3 on one in the training steps
            # of --preset best that training/threads.py's docstring measures
            in_row_blocks(lambda *blocks: self.update(*blocks, step_size, root_correction),
                          param, grad, *self.moments[name])

    def update(self, param, grad, mean, square, scratch, step_size, root_correction):
        """One parameter's step, in place. Every intermediate goes through one scratch array of
        the parameter's size: fresh weight-sized temporaries each step would cost allocations
        and page faults."""
        beta1, beta2 = self.betas
        if self.weight_decay and self.decoupled:
            param *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:  # the gradient is consumed: it may be changed in place
            np.multiply(param, self.weight_decay, out=scratch)
            grad += scratch
        np.multiply(grad, 1 - beta1, out=scratch)
        mean *= beta1
        mean += scratch
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        square *= beta2
        square += scratch
        np.sqrt(square, out=scratch)
        scratch /= root_correction
        scratch += self.eps
        np.divide(mean, scratch, out=scratch)
        scratch *= step_size
        param -= scratch

    def state_dict(self):
        """The step t and both moments, as arrays ('t', 'mean.<parameter>', 'square.<parameter>'):
        what a resumed run needs. The scratch array is rewritten before every use."""
        state = {"t": np.array(self.t)}
        for name, (mean, square, _) in self.moments.items():
            state.update({f"mean.{name}": mean.copy(), f"square.{name}": square.copy()})
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        names = [key.split(".", 1)[1] for key in state if key.startswith("mean.")]
        self.moments = {name: (np.array(state[f"mean.{name}"]), np.array(state[f"square.{name}"]),
                               np.empty_like(state[f"mean.{name}"])) for name in names}


class AdamW(Adam):
    __doc__ = Adam.__doc__
    decoupled = True


def make_optimizer(model, name, lr, momentum=0.0, weight_decay=0.0):
    """The optimizer a trainer's --optimizer, --momentum and --weight_decay flags ask for."""
    if name == "sgd":
        return SGD(model, lr, momentum, weight_decay)
    return {"adam": Adam, "adamw": AdamW}[name](model, lr, weight_decay)
