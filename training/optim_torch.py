"""The PyTorch trainer's optimizers: torch.optim's SGD, Adam and AdamW, and PlainSGD for the
course's plain run."""
import torch


class PlainSGD:
    """p <- p - lr dL/dp, the course's optimizer, with torch.optim's interface (param_groups,
    state, step, zero_grad). torch.optim's constructors import torch's compiler stack on first use,
    about 1.5 s of a 10 s run; the default run has no use for it."""

    def __init__(self, params, lr):
        self.params = list(params)
        self.param_groups = [{"lr": lr}]
        self.state = {}  # no parameter carries anything from step to step

    @torch.no_grad()
    def step(self):
        lr = self.param_groups[0]["lr"]
        for param in self.params:
            param.add_(param.grad, alpha=-lr)

    def zero_grad(self, set_to_none=True):
        for param in self.params:
            param.grad = None

    def state_dict(self):
        return {}  # nothing but the learning rate, which the schedule sets every step

    def load_state_dict(self, state):
        pass


def make_optimizer(model, name, lr, momentum=0.0, weight_decay=0.0):
    """--optimizer's choice for the model's parameters; plain SGD without momentum or weight
    decay is PlainSGD."""
    if name == "sgd" and momentum == 0 and weight_decay == 0:
        return PlainSGD(model.parameters(), lr)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    optimizer = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
