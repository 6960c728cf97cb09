"""The plan: hardware choices resolved once per run, recorded in config.json beside the settings.

Settings say what the user asked for (``--jit auto``, ``--precision auto``); the plan says what
that means on this machine (XLA on or off, bfloat16 or float32 compute, cuDNN kernels or not,
steps per compiled call, the distribution strategy). It is computed once, before the model is
built, and never written back into the settings; a resumed run reuses the recorded plan, so it
continues exactly as it started even on another machine.

Policies, as measured by ``python -m benchmarks.bench`` (the figures are in docs/speed.md):

* XLA: on a GPU on, except for LSTM/GRU, which keep cuDNN's kernels there (cuDNN cannot be
  XLA-compiled). On a CPU off for LeNet5 (slower with XLA) and the SimpleRNN; for LSTM/GRU on
  where TensorFlow runs without oneDNN, off where it runs with it (then the chains below win).
* chains: the recurrent cells (BasicRNN, LSTM, GRU) on a CPU with oneDNN and without XLA train each
  batch as two independent halves, which TensorFlow's executor runs side by side; one chain of small
  matrix products cannot keep two cores busy. Their 28 steps are unrolled (``models.recurrent.TwoChains``).
* oneDNN: not chosen here but recorded: TensorFlow fixes it when first imported
  (``startup.prefer_onednn``), and it decides the recurrent choices above.
* precision auto: bfloat16 compute for models whose registry entry says it pays
  (``bfloat16_on_cpu``: LeNet5) on CPUs with native bfloat16 instructions; else float32.
* steps per execution: 16 on a CPU, 32 on a GPU, cut to a divisor of the epoch.
"""

import contextlib
import dataclasses
import functools
import math
from pathlib import Path

from tf_assign2 import models
from tf_assign2.errors import UsageError
from tf_assign2.training.startup import onednn_enabled

CPU_STEPS_PER_EXECUTION = 16
GPU_STEPS_PER_EXECUTION = 32
POLICIES = {"float32": "float32", "mixed": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@dataclasses.dataclass(frozen=True)
class Plan:
    device: str  # "CPU" or "GPU"
    jit: bool
    precision: str  # float32, mixed or bfloat16
    use_cudnn: object  # "auto" or False (False: the generic kernel, needed under XLA)
    steps_per_execution: int
    strategy: str  # "default" or "mirrored"
    devices: tuple = None
    device_name: str = None  # the GPU's name and compute capability (None on a CPU)
    onednn: bool = False  # TensorFlow's oneDNN CPU kernels on (plans recorded before it existed: False)
    chains: int = 1  # the batch trained as this many independent, unrolled halves by the recurrent layers

    def describe(self):
        """One line for the start of a run: 'CPU, float32, XLA on, 16 steps per call'."""
        device = f"GPU ({self.device_name})" if self.device == "GPU" and self.device_name else self.device
        parts = [device, "bfloat16 compute" if self.precision == "bfloat16" else
                 "float16 compute" if self.precision == "mixed" else "float32",
                 *(["oneDNN"] if self.onednn and self.device == "CPU" else []),
                 f"XLA {'on' if self.jit else 'off'}", *([f"{self.chains} unrolled chains"] if self.chains > 1 else []),
                 f"{self.steps_per_execution} steps per call"]
        if self.device == "GPU" and self.use_cudnn is False:
            parts.append("cuDNN off")
        if self.strategy == "mirrored":
            parts.append(f"mirrored over {', '.join(self.devices) if self.devices else 'all GPUs'}")
        return ", ".join(parts)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        if values.get("devices") is not None:
            values["devices"] = tuple(values["devices"])
        return cls(**values)


def gpu_available():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def gpu_details():
    """(name, (major, minor) compute capability) of the first GPU, or None (no GPU, or TensorFlow cannot say)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", "GPU"), tuple(details.get("compute_capability") or ()) or None


def check_gpu_precision(precision, details):
    """bfloat16 needs a GPU of compute capability 8.0 or later (Ampere: A100, L4, H100 ...); on an older one
    (a T4 is 7.5) TensorFlow would emulate it slowly or fail deep inside a kernel: refuse it here."""
    if precision != "bfloat16" or details is None or details[1] is None:
        return
    name, capability = details
    if capability < (8, 0):
        raise UsageError(f"--precision bfloat16: this GPU ({name}, compute capability {capability[0]}.{capability[1]}) "
                         "has no bfloat16 arithmetic (8.0 or later has, e.g. A100, L4, H100); use --precision mixed "
                         "(float16) or float32")


@functools.cache
def native_bfloat16_cpu():
    """True on CPUs with bfloat16 dot-product instructions (AVX512_BF16 or AMX), where oneDNN's
    bfloat16 kernels measured faster than float32 for LeNet5 (docs/speed.md)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_jit(config, gpu, onednn=False):
    """XLA where it pays, as measured (see the module docstring)."""
    if config.jit != "auto":
        return config.jit == "on"
    cudnn = models.spec(config).cudnn(config)
    if gpu:
        return not cudnn or config.use_cudnn is False
    return cudnn and not onednn


def resolve_chains(config, gpu, onednn, jit):
    """2 where the model's recurrent layers gain from two chains (module docstring), else 1. Under XLA
    the two chains ran one after the other, slower than one, so ``--jit on`` keeps one."""
    wanted = models.spec(config).chains_on_cpu(config) and not gpu and onednn and not jit
    return 2 if wanted else 1


def resolve_precision(config, gpu):
    if config.precision != "auto":
        return config.precision
    fast = models.spec(config).bfloat16_on_cpu and native_bfloat16_cpu() and not gpu
    return "bfloat16" if fast else "float32"


def resolve_steps_per_execution(config, steps_per_epoch, gpu):
    """Steps per compiled call: a divisor of the epoch and of the step counts the user asked to see."""
    requested = config.steps_per_execution
    if config.strategy == "mirrored":
        # Keras 3.15's multi-step train function fails under MirroredStrategy ("You must feed a
        # value for placeholder tensor ..."), so mirrored runs execute one step per call.
        requested = 1
    elif requested is None:
        requested = GPU_STEPS_PER_EXECUTION if gpu else CPU_STEPS_PER_EXECUTION
    # Keras runs whole executions: with an endless pipeline an epoch of 180 steps at 16 per call
    # would train 192 steps. A divisor of the epoch keeps every epoch exactly one pass.
    spe = max(d for d in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % d == 0)
    for exact in (config.display_step, config.total_steps()):
        if exact:
            spe = math.gcd(spe, exact)
    return max(1, spe)


def make_plan(config, steps_per_epoch, gpu=None, onednn=None):
    """Resolve every hardware choice of ``config`` for this machine (TensorFlow must be started)."""
    gpu = gpu_available() if gpu is None else gpu
    onednn = onednn_enabled() if onednn is None else onednn
    jit = resolve_jit(config, gpu, onednn)
    use_cudnn = config.use_cudnn
    if use_cudnn is True and not gpu:
        raise UsageError("--use-cudnn on: no GPU found; use auto (the default) or off")
    if jit and models.spec(config).cudnn(config):
        if use_cudnn is True:
            raise UsageError("--use-cudnn on with --jit on: cuDNN kernels cannot be XLA-compiled; drop one")
        use_cudnn = False
    precision = resolve_precision(config, gpu)
    if precision == "mixed" and not gpu:
        print("warning: --precision mixed (float16) on a CPU is much slower than float32", flush=True)
    details = gpu_details() if gpu else None
    check_gpu_precision(precision, details)
    name = f"{details[0]}, compute capability {'.'.join(map(str, details[1]))}" if details and details[1] else None
    return Plan(device="GPU" if gpu else "CPU", jit=jit, precision=precision, use_cudnn=use_cudnn,
                steps_per_execution=resolve_steps_per_execution(config, steps_per_epoch, gpu),
                strategy=config.strategy, devices=config.devices, device_name=name, onednn=onednn,
                chains=resolve_chains(config, gpu, onednn, jit))


@contextlib.contextmanager
def precision_policy(plan):
    """Keras' dtype policy of the plan while layers are made (float16/bfloat16 compute with float32
    variables; logits stay float32), and the caller's policy again afterwards."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[plan.precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def distribution_strategy(plan):
    """The tf.distribute strategy: one device, or mirrored over ``devices``/all GPUs."""
    import tensorflow as tf

    if plan.strategy == "mirrored":
        if plan.devices:
            here = [d.name.split("device:")[-1] for d in tf.config.list_logical_devices()]
            missing = [d for d in plan.devices if d.upper() not in here]
            if missing:
                raise UsageError(f"--devices {','.join(plan.devices)}: no {missing[0]} on this machine "
                                 f"(it has {', '.join(here)})")
        return tf.distribute.MirroredStrategy(devices=list(plan.devices) if plan.devices else None)
    return tf.distribute.get_strategy()
