"""infer/build_choice.py: the serial/parallel choice for decode steps, and that it changes no bit."""
import numpy as np
import pytest

from scratchgpt.errors import ConfigError
from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
from scratchgpt.infer import build_choice as bc
from scratchgpt.infer.build_choice import BuildChooser
from scratchgpt.ops._numba import force_build
from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
from tests.infer_helpers import tiny_gpt


def drive(ch, key, cost, steps):
    """Run `steps` steps whose duration is cost[mode]; returns the modes in order."""
    modes = []
    for _ in range(steps):
        m = ch.mode_for(key)
        ch.record(key, m, cost[m])
        modes.append(m)
    return modes


def test_switches_to_the_faster_mode_and_probes_less_when_stable():
    ch = BuildChooser("auto")
    modes = drive(ch, 1, {"parallel": 2.0, "serial": 1.0}, 40)
    first_probe = modes.index("serial")
    # parallel first (its first step uncounted), then the probe twice (the first one uncounted)
    assert first_probe == bc.FIRST_INTERVAL + 1 and modes[first_probe + 1] == "serial"
    assert ch.switches == 1 and modes[-1] == "serial"
    # after the switch the old mode is probed FIRST_INTERVAL steps later (it is warm: once)
    back = modes.index("parallel", first_probe)
    assert back == first_probe + 2 + bc.FIRST_INTERVAL and modes[back + 1] == "serial"
    # now stable: the parallel probes come at growing intervals, never more often than FIRST_INTERVAL
    modes = drive(ch, 1, {"parallel": 2.0, "serial": 1.0}, 400)
    probes = [i for i, m in enumerate(modes) if m == "parallel"]
    gaps = np.diff(probes)
    assert len(probes) >= 2 and np.all(gaps[1:] >= gaps[:-1]) and gaps.max() == bc.MAX_INTERVAL + 1
    assert ch.switches == 1


def test_first_step_of_a_mode_is_not_counted():
    ch = BuildChooser("auto")
    # a very slow first serial step (loading code) must not decide against serial
    times = iter([1.0] * 100)
    first = {"serial": True}
    for _ in range(30):
        m = ch.mode_for(1)
        t = 50.0 if m == "serial" and first.pop("serial", False) else (2.0 if m == "parallel" else next(times))
        ch.record(1, m, t)
    assert ch._keys[1].mode == "serial" and ch.switches == 1


def test_no_switch_within_the_margin_and_keys_are_separate():
    ch = BuildChooser("auto")
    drive(ch, 1, {"parallel": 1.0, "serial": 0.95}, 300)     # 5 % better: inside the 10 % margin
    assert ch.switches == 0 and ch.mode_for(1) in ("parallel", "serial")
    drive(ch, 2, {"parallel": 1.0, "serial": 0.5}, 30)       # another row count decides alone
    assert ch.switches == 1 and ch._keys[1].mode == "parallel" and ch._keys[2].mode == "serial"


def test_pinned_modes_and_bad_value(monkeypatch):
    assert drive(BuildChooser("serial"), 1, {"parallel": 0.1, "serial": 9.0}, 50) == ["serial"] * 50
    monkeypatch.setenv("SCRATCHGPT_DECODE_BUILD", "parallel")
    assert BuildChooser().pinned == "parallel"
    monkeypatch.setenv("SCRATCHGPT_DECODE_BUILD", "fast")
    with pytest.raises(ConfigError, match="SCRATCHGPT_DECODE_BUILD"):
        BuildChooser()


class Alternating(BuildChooser):
    """Flips the mode on every step (what an unlucky timing sequence could do)."""

    def __init__(self):
        super().__init__("auto")
        self.n = 0

    def mode_for(self, key):
        self.n += 1
        return "serial" if self.n % 2 else "parallel"

    def record(self, key, mode, seconds):
        pass


@pytest.mark.parametrize("kind", ["float32", "int8", "int4"])
def test_serial_parallel_and_switching_give_the_same_bits(kind):
    model = tiny_gpt(seed=5, block=24, vocab=53, n_embd=64, n_head=4)
    if kind != "float32":
        model = quantize_gpt(model, QuantConfig(bits=int(kind[3:])))
    rng = np.random.default_rng(2)
    prompts = [rng.integers(0, 53, int(rng.integers(1, 7))).tolist() for _ in range(3)]
    p = SamplingParams(max_new_tokens=8, ignore_eos=True)

    def run(chooser):
        eng = Engine(model, None, max_batch_size=3, return_logits=True)
        eng.runner.chooser = chooser
        for k, pr in enumerate(prompts):
            eng.add(GenerationRequest(pr, p, id=str(k)))
        got = {}
        with force_build(True):           # "parallel" = parallel builds even for these tiny arrays
            while eng.has_work():
                for o in eng.step():
                    got.setdefault(o.id, []).append(o.logits)
        return got

    par = run(BuildChooser("parallel"))
    for other in (BuildChooser("serial"), Alternating()):
        got = run(other)
        for k in par:
            assert all(np.array_equal(a, b) for a, b in zip(par[k], got[k])), (kind, k)
