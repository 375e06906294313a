import math

import numpy as np
import pytest

import callbacks as cb
from recipes import _optimization, schedules
from recipes.schedules import (
    ScheduleInfo,
    get_schedule_info,
    list_schedules,
    make_schedule,
    register_schedule,
)

PEAK, TOTAL, WARMUP = 0.1, 100, 10


def _warmup_cosine(step):
    if step < WARMUP:
        return PEAK * step / WARMUP
    return 0.5 * PEAK * (1 + math.cos(math.pi * (step - WARMUP)
                                      / (TOTAL - WARMUP)))


def _one_cycle(step):
    # PyTorch's OneCycleLR (cos, two phases): PEAK/25 up to PEAK at step
    # 0.25 * TOTAL - 1, then down to PEAK/25/1e4 at step TOTAL - 1, and
    # there after it.
    low, end, top = PEAK / 25, PEAK / 25 / 1e4, 0.25 * TOTAL - 1
    step = min(step, TOTAL - 1)
    if step <= top:
        t, start, stop = step / top, low, PEAK
    else:
        t, start, stop = (step - top) / (TOTAL - 1 - top), PEAK, end
    return stop + (start - stop) / 2 * (1 + math.cos(math.pi * t))


def _cyclical(step):
    # Smith (2017), triangular: PEAK/10 to PEAK, half-cycles of TOTAL//4.
    half = TOTAL // 4
    cycle = math.floor(1 + step / (2 * half))
    x = abs(step / half - 2 * cycle + 1)
    return PEAK / 10 + (PEAK - PEAK / 10) * max(0.0, 1 - x)


REFERENCES = {"warmup_cosine": _warmup_cosine, "one_cycle": _one_cycle,
              "cyclical": _cyclical, "constant": lambda step: PEAK}


def test_list_is_in_registration_order_default_first():
    assert list_schedules() == ["warmup_cosine", "one_cycle", "cyclical",
                                "constant"]
    assert _optimization.SCHEDULES == tuple(list_schedules())
    assert _optimization.make_schedule is make_schedule


@pytest.mark.parametrize("name", list_schedules())
def test_values_follow_the_formula(name):
    schedule = make_schedule(name, PEAK, TOTAL, WARMUP)
    steps = [0, 5, 10, 24, 37, 50, 75, 99, 100]
    got = [float(schedule(s)) if callable(schedule) else schedule
           for s in steps]
    np.testing.assert_allclose(got, [REFERENCES[name](s) for s in steps],
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", list_schedules())
def test_info_names_what_the_schedule_is_built_from(name):
    info = get_schedule_info(name)
    assert isinstance(info, ScheduleInfo) and info.name == name
    assert info.description
    made = make_schedule(name, PEAK, TOTAL, WARMUP)
    if info.built_from == "float":
        assert type(made) is float
    else:
        module, cls = info.built_from.split(".")
        assert module == "callbacks" and type(made) is getattr(cb, cls)


def test_warmup_is_cut_to_leave_one_decay_step():
    schedule = make_schedule("warmup_cosine", PEAK, 10, warmup_steps=50)
    assert schedule.warmup_steps == 9
    np.testing.assert_allclose(float(schedule(9)), PEAK, rtol=1e-6)
    # Zero steps count as one (a phase with nothing to schedule).
    assert make_schedule("warmup_cosine", PEAK, 0, 0).total_steps == 1


def test_unknown_name_names_the_argument():
    with pytest.raises(ValueError, match=(
            r"Argument `schedule` must be one of \['constant', 'cyclical', "
            r"'one_cycle', 'warmup_cosine'\]. Received: schedule='cosine'")):
        make_schedule("cosine", PEAK, TOTAL, WARMUP)
    with pytest.raises(ValueError, match="Received: name='cosine'"):
        get_schedule_info("cosine")


@pytest.mark.parametrize("kwargs, match", [
    ({"peak_learning_rate": 0.0}, "peak_learning_rate=0.0"),
    ({"total_steps": -1}, "total_steps=-1"),
    ({"total_steps": 2.5}, "total_steps=2.5"),
    ({"warmup_steps": -3}, "warmup_steps=-3"),
])
def test_bad_numbers_name_the_argument(kwargs, match):
    args = {"schedule": "constant", "peak_learning_rate": PEAK,
            "total_steps": TOTAL, "warmup_steps": WARMUP, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        make_schedule(**args)


def test_registered_schedule_reaches_make_schedule_and_duplicates_fail(
        monkeypatch):
    # A copy of the registry, restored after the test.
    registry = schedules._REGISTRY
    monkeypatch.setattr(registry, "entries", dict(registry.entries))
    register_schedule("tenth", lambda peak, total, warmup: peak / 10,
                      description="A tenth of the peak.", built_from="float")
    assert list_schedules()[-1] == "tenth"
    assert make_schedule("tenth", 0.5, 10) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="name='tenth'"):
        register_schedule("tenth", float, description="", built_from="float")
