"""The AEVB training loop (aevb_utils.training.fit)."""

from __future__ import annotations

import math
import sys
import time

import pytest
import torch
from conftest import LinearGaussianVAE

from aevb_utils.evaluation import average_elbo
from aevb_utils.factor_analysis import PAPER_NOISE_STD, PAPER_W, factor_analysis_data, log_evidence
from aevb_utils.training import History, NonFiniteELBOError, fit, set_trainable


class Recorder(torch.nn.Module):
    """A deterministic model that records the batches it is given.

    Its ELBO, -(x - theta)^2, is maximized at theta = the mean of x.
    """

    def __init__(self, nan_at: int | None = None, constant: float | None = None):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(0.0))
        self.batches: list[tuple[torch.Tensor, ...]] = []
        self.nan_at, self.constant = nan_at, constant

    def elbo(self, x, *rest):
        if self.training:
            self.batches.append((x.detach().clone(), *(t.clone() for t in rest)))
            if self.nan_at is not None and len(self.batches) == self.nan_at:
                return self.theta * 0 + torch.full((x.shape[0],), math.nan)
        if self.constant is not None:
            return self.theta * 0 + torch.full((x.shape[0],), self.constant)
        return -((x[:, 0] - self.theta) ** 2)


def _fit(model, data, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return fit(model, data, **kwargs)


def test_history_steps_and_defaults():
    x = torch.arange(20.0)[:, None]
    history = _fit(Recorder(), x, steps=10, batch_size=5, eval_every=3)
    assert isinstance(history, History)
    assert history.step == [0, 3, 6, 9, 10]
    assert math.isnan(history.train_elbo[0])
    assert all(math.isfinite(v) for v in history.train_elbo[1:])
    assert all(math.isnan(v) for v in history.valid_elbo)  # no held-out data
    assert history.metrics == {}
    assert history.seconds > 0

    default = _fit(Recorder(), x, steps=40, batch_size=5)
    assert default.step == list(range(0, 41, 2))  # 20 records besides step 0


def test_history_record():
    history = History()
    history.record(0, math.nan, -5.0, {})
    history.record(10, -3.0, -4.0, {"kl": torch.tensor(1.5)})
    history.record(20, -2.0, -3.5, {"kl": 2})
    assert history.step == [0, 10, 20]
    assert history.train_elbo[1:] == [-3.0, -2.0]
    assert history.valid_elbo == [-5.0, -4.0, -3.5]
    assert history.metrics == {"kl": [1.5, 2.0]}
    assert all(type(v) is float for v in history.metrics["kl"])


def test_train_elbo_is_the_mean_since_the_last_record():
    x = torch.arange(8.0)[:, None]
    model = Recorder()
    history = _fit(model, x, steps=6, batch_size=4, eval_every=3, lr=0.0)
    # lr = 0: theta stays 0, so each batch ELBO is -mean(x^2) over the batch
    batch_elbos = [-(b[0][:, 0] ** 2).mean().item() for b in model.batches]
    assert history.train_elbo[1] == pytest.approx(sum(batch_elbos[:3]) / 3)
    assert history.train_elbo[2] == pytest.approx(sum(batch_elbos[3:]) / 3)


def test_every_example_once_per_epoch_and_reshuffled():
    n, batch_size, epochs = 12, 4, 5
    x = torch.arange(n, dtype=torch.float32)[:, None]
    model = Recorder()
    _fit(model, x, steps=epochs * n // batch_size, batch_size=batch_size, seed=3)
    seen = torch.cat([b[0][:, 0] for b in model.batches]).long()
    orders = seen.view(epochs, n)
    for order in orders:
        assert sorted(order.tolist()) == list(range(n))  # each example exactly once
    assert len({tuple(order.tolist()) for order in orders}) == epochs  # a new order each epoch


def test_batch_size_larger_than_data():
    x = torch.arange(5.0)[:, None]
    model = Recorder()
    _fit(model, x, steps=3, batch_size=100)
    assert [b[0].shape[0] for b in model.batches] == [5, 5, 5]


def test_tuples_transform_valid_and_monitor():
    n = 16
    x = torch.arange(n, dtype=torch.float32)[:, None]
    labels = torch.arange(n) * 10
    model = Recorder()
    calls = []

    def monitor(m):
        calls.append(m.theta.item())
        assert m is model
        return {"theta": m.theta.item(), "twice": 2 * m.theta.item()}

    history = _fit(
        model,
        (x, labels),
        steps=8,
        batch_size=4,
        eval_every=4,
        lr=0.1,
        valid=(x + 1, labels),
        monitor=monitor,
        transform=lambda t: t + 1000,
    )
    for batch_x, batch_labels in model.batches:
        # the labels come with their own examples, and only the first tensor is transformed
        torch.testing.assert_close(batch_x[:, 0] - 1000, batch_labels.float() / 10)
    assert history.step == [0, 4, 8]
    assert len(calls) == 3
    assert history.metrics["theta"] == calls
    assert history.metrics["twice"] == [2 * c for c in calls]
    # the held-out ELBO is recorded (without the transform) on the current model
    assert history.valid_elbo[-1] == pytest.approx(average_elbo(model, (x + 1, labels)))
    assert history.valid_elbo[0] == pytest.approx(-((x + 1) ** 2).mean().item())
    assert not model.training  # fit leaves the model in evaluation mode


def test_lr_schedule_multiplies_the_learning_rate():
    x = torch.ones(10, 1)
    model = Recorder()
    _fit(model, x, steps=5, batch_size=5, lr=0.1, lr_schedule=lambda step: 0.0)
    assert model.theta.item() == 0.0
    _fit(model, x, steps=5, batch_size=5, lr=0.1, lr_schedule=lambda step: 1.0)
    assert model.theta.item() > 0.3  # Adam moves about lr a step towards 1


def test_non_finite_elbo_names_step_and_last_value():
    x = torch.zeros(10, 1)
    model = Recorder(nan_at=7, constant=-2.5)
    with pytest.raises(NonFiniteELBOError) as info:
        _fit(model, x, steps=20, batch_size=5)
    message = str(info.value)
    assert "became nan at step 7" in message
    assert "last finite value was -2.5 at step 6" in message
    assert isinstance(info.value, FloatingPointError)


def test_infinite_elbo_is_caught():
    class Inf(Recorder):
        def elbo(self, x):
            return self.theta - torch.log(x[:, 0] * 0)  # log of zero: +inf

    with pytest.raises(NonFiniteELBOError, match="became inf at step 1") as info:
        _fit(Inf(), torch.ones(4, 1), steps=3, batch_size=2)
    assert "no step before it was finite" in str(info.value)


@pytest.mark.parametrize("shape", [(4, 1), (), (1,)])
def test_wrong_elbo_shape(shape):
    class Wrong(Recorder):
        def elbo(self, x):
            return self.theta + torch.zeros(shape)

    with pytest.raises(ValueError, match=r"shape \[4\]"):
        _fit(Wrong(), torch.ones(8, 1), steps=2, batch_size=4)


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": 5, "batch_size": 0}])
def test_bad_budget(kwargs):
    with pytest.raises(ValueError, match="positive"):
        _fit(Recorder(), torch.ones(4, 1), **kwargs)


def test_progress_bar_only_when_asked(capsys):
    x = torch.ones(4, 1)
    _fit(Recorder(), x, steps=3, batch_size=2)
    assert capsys.readouterr().out == ""
    _fit(Recorder(), x, steps=3, batch_size=2, progress=True, description="tiny run")
    assert "tiny run" in capsys.readouterr().out


# --- a real model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fa_data():
    return factor_analysis_data(1000, seed=2).x.double()


def test_seeded_runs_repeat_exactly(fa_data):
    runs = []
    for seed in (7, 7, 8):
        model = LinearGaussianVAE.random(3, 2, seed=0)
        history = _fit(
            model,
            fa_data,
            steps=30,
            batch_size=50,
            lr=1e-2,
            eval_every=10,
            seed=seed,
            valid=fa_data[:100],
        )
        runs.append((model.state_dict(), history))
    (a, ha), (b, hb), (c, hc) = runs
    for name in a:
        assert torch.equal(a[name], b[name])
    assert ha.train_elbo[1:] == hb.train_elbo[1:]
    assert ha.valid_elbo == hb.valid_elbo
    assert not all(torch.equal(a[name], c[name]) for name in a)  # another seed, another run
    assert ha.train_elbo[1:] != hc.train_elbo[1:]


def test_fit_reaches_maximum_likelihood(fa_data):
    x = fa_data
    model = LinearGaussianVAE.random(3, 2, seed=0)
    start = model.log_evidence(x).mean().item()
    steps = 800
    history = _fit(
        model,
        x,
        steps=steps,
        batch_size=100,
        lr=3e-2,
        eval_every=100,
        lr_schedule=lambda step: 1 - step / steps,
    )
    final = model.log_evidence(x).mean().item()

    # the ELBO improved
    assert history.train_elbo[-1] > history.train_elbo[1] + 1.0
    # The ML Gaussian with any covariance (the sample second moment; the data have mean 0)
    # bounds what a factor-analysis model can reach; the generating parameters reach a bit less.
    second_moment = x.T @ x / len(x)
    bound = (
        torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64), second_moment)
        .log_prob(x)
        .mean()
        .item()
    )
    W = torch.tensor(PAPER_W, dtype=torch.float64)
    psi = torch.tensor(PAPER_NOISE_STD, dtype=torch.float64) ** 2
    truth = log_evidence(x, W, psi).mean().item()
    assert start < truth - 1.0
    assert final <= bound + 1e-9
    assert final > truth  # the fitted model explains the sample better than the true one
    # the optimum is within the (#covariance parameters / 2n) sampling scale of the bound
    assert bound - final < 6 / (2 * len(x))
    # and the one-sample ELBO is a lower bound on the exact evidence it approaches
    assert history.train_elbo[-1] < final + 0.05


def test_progress_bar_in_a_notebook_is_one_line_updated_in_place(monkeypatch):
    """In a Jupyter kernel the bar is a display updated in place, so an executed notebook keeps
    only its last state instead of one line per redraw."""
    import IPython.display

    from aevb_utils import progress

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj.data)

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id: Handle())
    line = progress.LiveLine()
    line.write("\rAEVB:  50%|#####     | 5/10")
    line.write("\r")
    line.write("\rAEVB: 100%|##########| 10/10\n")
    assert shown == ["AEVB:  50%|#####     | 5/10", "AEVB: 100%|##########| 10/10"]
    assert progress.progress_stream() is sys.stdout  # not in a kernel: plain standard output


# --- what recurrent, mixture and phase-by-phase training need -----------------------------------


class StepAware(torch.nn.Module):
    """A model that asks for the training step (as a temperature schedule would)."""

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(0.0))
        self.steps_seen: list[int | None] = []

    def elbo(self, x, step: int | None = None):
        self.steps_seen.append(step)
        return -((x[:, 0] - self.theta) ** 2)


def test_the_step_reaches_models_that_ask_for_it():
    x = torch.ones(8, 1)
    model = StepAware()
    history = _fit(model, x, steps=5, batch_size=4, valid=x, eval_every=5)
    # training calls get steps 1..5; the held-out evaluations get no step
    assert [s for s in model.steps_seen if s is not None] == [1, 2, 3, 4, 5]
    assert model.steps_seen.count(None) == 2  # the records at steps 0 and 5
    model.steps_seen.clear()
    _fit(model, x, steps=3, batch_size=4, history=history)
    assert model.steps_seen == [6, 7, 8]  # a later phase counts on


def test_models_that_do_not_ask_get_no_step():
    model = Recorder()
    _fit(model, torch.ones(8, 1), steps=3, batch_size=4)  # Recorder.elbo(x, *rest) has no step
    assert len(model.batches) == 3 and all(len(b) == 1 for b in model.batches)


def test_gradient_is_clipped_before_the_optimizer_step(monkeypatch):
    x = torch.full((8, 1), 100.0)  # gradient of -(x - theta)^2 at theta = 0: norm 200
    model = Recorder()
    norms_at_step = []
    original_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        norms_at_step.append(model.theta.grad.abs().item())
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    history = _fit(model, x, steps=4, batch_size=8, eval_every=1, clip_grad_norm=1.5)
    assert max(norms_at_step) <= 1.5 + 1e-6  # the optimizer only ever saw clipped gradients
    # the recorded norm is the one before clipping: 2 (100 - theta) at the first step
    assert history.metrics["grad_norm"][1] == pytest.approx(200.0)
    assert len(history.metrics["grad_norm"]) == len(history.step)
    assert math.isnan(history.metrics["grad_norm"][0])  # nothing to record before training


def test_no_grad_norm_metric_without_clipping():
    history = _fit(Recorder(), torch.ones(8, 1), steps=2, batch_size=4)
    assert "grad_norm" not in history.metrics


def test_a_later_phase_continues_the_history():
    x = torch.ones(10, 1)
    model = Recorder()
    history = _fit(model, x, steps=6, batch_size=5, eval_every=3)
    first_seconds = history.seconds
    same = _fit(model, x, steps=4, batch_size=5, eval_every=2, history=history)
    assert same is history
    assert history.step == [0, 3, 6, 8, 10]  # step 0 is recorded once, steps count on
    assert len(history.train_elbo) == len(history.valid_elbo) == 5
    assert history.seconds > first_seconds


def test_lr_schedule_sees_the_global_step():
    seen = []
    history = _fit(Recorder(), torch.ones(4, 1), steps=3, batch_size=4,
                   lr_schedule=lambda step: seen.append(step) or 1.0)
    _fit(Recorder(), torch.ones(4, 1), steps=2, batch_size=4, history=history,
         lr_schedule=lambda step: seen.append(step) or 1.0)
    assert seen == [0, 1, 2, 3, 4]  # steps taken before each step, across both phases


def test_set_trainable_freezes_a_group():
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(0.0))
            self.b = torch.nn.Parameter(torch.tensor(0.0))

        def elbo(self, x):
            return -((x[:, 0] - self.a) ** 2) - (x[:, 0] - self.b) ** 2

    model = Two()
    set_trainable([model.b], False)
    _fit(model, torch.ones(4, 1), steps=5, batch_size=4, lr=0.1)
    assert model.a.item() > 0.1 and model.b.item() == 0.0
    set_trainable(model, True)
    assert model.b.requires_grad
    _fit(model, torch.ones(4, 1), steps=5, batch_size=4, lr=0.1)
    assert model.b.item() > 0.1


class SlowRecorder(Recorder):
    """A Recorder whose every step takes at least `delay` seconds."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def elbo(self, x, *rest):
        time.sleep(self.delay)
        return super().elbo(x, *rest)


def test_a_time_budget_stops_training_and_records_the_steps_taken():
    x = torch.arange(20.0)[:, None]
    model = SlowRecorder(delay=0.01)
    history = _fit(model, x, steps=10_000, batch_size=5, eval_every=7, seconds=0.2)
    taken = history.step[-1]
    assert 10 <= taken < 10_000, "stopped by the clock, after at least 0.2 s of 10 ms steps"
    assert len(model.batches) == taken
    assert history.seconds >= 0.2
    assert history.step[:-1] == list(range(0, taken, 7)), "records every 7 steps, then the last"


def test_a_time_budget_longer_than_the_steps_changes_nothing():
    x = torch.arange(20.0)[:, None]
    history = _fit(Recorder(), x, steps=10, batch_size=5, eval_every=3, seconds=3600.0)
    assert history.step == [0, 3, 6, 9, 10]


def test_a_time_budget_must_be_positive():
    with pytest.raises(ValueError, match="positive time budget"):
        _fit(Recorder(), torch.ones(4, 1), steps=5, seconds=0.0)


def test_a_kept_copy_is_the_model_of_a_shorter_run(fa_data):
    # With a constant learning rate, the parameters kept after step 10 of a 30-step run are
    # those of a 10-step run: the equal-steps model comes free with the longer run.
    short, long = (LinearGaussianVAE.random(3, 2, seed=0) for _ in range(2))
    _fit(short, fa_data, steps=10, batch_size=50, lr=1e-2, seed=3)
    history = _fit(long, fa_data, steps=30, batch_size=50, lr=1e-2, seed=3, keep=[10, 20])
    assert sorted(history.kept) == [10, 20] == sorted(history.kept_seconds)
    assert 0 < history.kept_seconds[10] <= history.kept_seconds[20] <= history.seconds
    for name, value in short.state_dict().items():
        assert torch.equal(history.kept[10][name], value)
    final = long.state_dict()
    assert any(not torch.equal(history.kept[10][name], final[name]) for name in final), (
        "the copy is not the final model")
