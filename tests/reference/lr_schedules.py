"""The learning rate of every optimizer step under each schedule, from
PyTorch's own schedulers, for tests/lr_schedules.rs.

Run once: python3 tests/reference/lr_schedules.py > tests/fixtures/lr_schedules.json

Each case: the schedule as written in lpn, epochs E, steps per epoch P, the
base lr, optionally the monitored figure of each epoch (plateau), and the lr
of each of the E*P steps. Per-epoch schedulers (StepLR, CosineAnnealingLR,
ReduceLROnPlateau) are stepped at each epoch's end, LinearLR at each step; a
warm-up followed by another schedule hands over as SequentialLR does: the
next scheduler starts from the base lr when the warm-up's steps are done,
and is stepped at the end of each epoch after that.
"""
import json
import math

import torch


def optimizer(base):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)


def lr_of(opt):
    return opt.param_groups[0]["lr"]


def per_epoch(make, epochs, steps, base, figures=None):
    opt = optimizer(base)
    sched = make(opt)
    out = []
    for e in range(epochs):
        out += [lr_of(opt)] * steps
        if figures is None:
            sched.step()
        else:
            sched.step(figures[e])
    return out


def warmup_alone(total, start, epochs, steps, base):
    opt = optimizer(base)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=total)
    out = []
    for _ in range(epochs * steps):
        out.append(lr_of(opt))
        sched.step()
    return out


def warmup_then(total, start, make_next, epochs, steps, base, figures=None):
    warm_opt = optimizer(base)
    warm = torch.optim.lr_scheduler.LinearLR(warm_opt, start_factor=start, end_factor=1.0, total_iters=total)
    first_epoch = total // steps
    next_opt = optimizer(base)
    nxt = make_next(next_opt, epochs - first_epoch)
    out = []
    for e in range(epochs):
        for s in range(steps):
            t = e * steps + s
            if t < total:
                out.append(lr_of(warm_opt))
                warm.step()
            else:
                out.append(lr_of(next_opt))
        if (e + 1) * steps > total:
            if figures is None:
                nxt.step()
            else:
                nxt.step(figures[e])
    return out


S = torch.optim.lr_scheduler
figures = [1.0, 0.9, 0.95, 0.91, 0.905, 0.9, 0.7, 0.72, 0.71, 0.7, 0.69, 0.695, 0.8, 0.7, 0.7]
accuracies = [0.5, 0.6, 0.6, 0.605, 0.6, 0.8, 0.79, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9]
cases = [
    dict(schedule="step(every=3, gamma=0.5)", epochs=10, steps=4, base=0.1,
         lrs=per_epoch(lambda o: S.StepLR(o, step_size=3, gamma=0.5), 10, 4, 0.1)),
    dict(schedule="cosine(min_lr=1e-5)", epochs=10, steps=4, base=1e-3,
         lrs=per_epoch(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=1e-5), 10, 4, 1e-3)),
    dict(schedule="warmup(steps=7, start_factor=0.25)", epochs=3, steps=4, base=0.01,
         lrs=warmup_alone(7, 0.25, 3, 4, 0.01)),
    dict(schedule="warmup(steps=8) then cosine(min_lr=1e-4)", epochs=10, steps=4, base=3e-3,
         lrs=warmup_then(8, 1 / 3, lambda o, t: S.CosineAnnealingLR(o, T_max=t, eta_min=1e-4), 10, 4, 3e-3)),
    dict(schedule="warmup(steps=6, start_factor=0.5) then step(every=2, gamma=0.3)", epochs=8, steps=4, base=0.05,
         lrs=warmup_then(6, 0.5, lambda o, t: S.StepLR(o, step_size=2, gamma=0.3), 8, 4, 0.05)),
    dict(schedule="plateau(patience=2, factor=0.5, min_lr=1e-4, threshold=1e-2, cooldown=1)", epochs=15, steps=3, base=1e-3,
         monitor="val_loss", figures=figures,
         lrs=per_epoch(lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2, threshold=1e-2, min_lr=1e-4, cooldown=1),
                       15, 3, 1e-3, figures)),
    dict(schedule="plateau(patience=1)", epochs=15, steps=2, base=1e-2, monitor="val_accuracy", figures=accuracies,
         lrs=per_epoch(lambda o: S.ReduceLROnPlateau(o, mode="max", patience=1), 15, 2, 1e-2, accuracies)),
    dict(schedule="warmup(steps=5) then plateau(patience=0, factor=0.5)", epochs=15, steps=2, base=1e-3,
         monitor="val_loss", figures=figures,
         lrs=warmup_then(5, 1 / 3, lambda o, t: S.ReduceLROnPlateau(o, mode="min", patience=0, factor=0.5), 15, 2, 1e-3, figures)),
]
print(json.dumps({"torch": torch.__version__, "cases": cases}, indent=1))
