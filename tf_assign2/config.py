"""The settings of a run: one schema, validated once, written to config.json.

Each field of ``Config`` declares everything about one setting - its type, default, range or
choices, help text and where it shows up - through ``setting(...)``. The command-line flags
(``cli``), the checks of ``--config`` YAML files and sweep entries, tune's fixed training
flags and the sweep/report result columns are all generated from these declarations, so adding
a setting is one field here plus the code that reads it.

Defaults follow the starters: CIFAR is LeNet5 at batch 50, MNIST an LSTM of 128 units at batch
128, both Adam 1e-3 - except that Adam on the recurrent classifiers defaults to 2e-3 (see
``default_lr``). Settings whose default depends on the task (``dataset``, ``model``,
``batch_size``, ``lr``) are None until ``validate`` fills them in from ``TASK_DEFAULTS``, so
``validate(Config(task="mnist"))`` is the MNIST starter's run.

The choices of ``model`` and ``optimizer`` are the live names of their registries: a model or
optimizer registered at run time (``register_model``, ``register_optimizer``) is accepted from
then on, by flags, files and Python calls alike.

A ``Config`` is frozen: hardware choices (XLA, precision, steps per execution) are resolved
into a separate plan (``training.plan``), never written back into the settings.

Nothing here imports TensorFlow, so every flag and file error is reported in well under a second.
"""

import dataclasses
import difflib
import json
import math

from tf_assign2.data.pipeline import FLIPS
from tf_assign2.data.sources import DATASETS, SOURCES, SUBSETS
from tf_assign2.errors import UsageError
from tf_assign2.models import CELLS, INITS, MODELS
from tf_assign2.optimizers import OPTIMIZERS


class Names:
    """The current names of a registry, as a read-only sequence: the choices of a setting that
    follow registrations made after import (a model registered from a notebook)."""

    def __init__(self, registry):
        self.registry = registry

    def __iter__(self):
        return iter(tuple(self.registry))

    def __len__(self):
        return len(self.registry)

    def __getitem__(self, index):
        return tuple(self.registry)[index]

    def __contains__(self, name):
        return name in self.registry

    def __eq__(self, other):
        return tuple(self) == tuple(other)

    def __repr__(self):
        return repr(tuple(self))


TASKS = ("cifar", "mnist")
JIT = ("auto", "on", "off")
PRECISIONS = ("auto", "float32", "mixed", "bfloat16")
SCHEDULES = ("constant", "cosine", "onecycle")
STRATEGIES = ("default", "mirrored")
CUDNN = ("auto", True, False)
TTA = ("none", "flip", "flip-shift")  # --tta: the views averaged at test time (training.tta)


@dataclasses.dataclass(frozen=True)
class Setting:
    """What one field accepts and where it appears (stored in the field's metadata)."""

    help: str
    kind: type  # int, float, str, bool or tuple
    group: str = "training"  # the --help section: data, model, training, execution, outputs
    choices: tuple = None
    low: float = None
    high: float = None
    low_open: bool = False  # True: the value must be > low (else >= low)
    high_open: bool = False  # True: the value must be < high (else <= high)
    expected: str = None  # the words of the error message; generated from the range if None
    tune_flag: bool = False  # `tune` takes it as a flag: one value for every trial and the best model's retrain
    search: "Search" = None  # a hyperparameter a search may vary (tune's space); None: never searched
    column: bool = False  # a column of sweep and report tables
    none_shows: str = None  # how a table shows a None value that is a setting (clipnorm None: "off")
    flag: str = None  # the flag when it is not --<name> (e.g. --no-visualize)
    metavar: str = None

    def describe(self):
        """What a valid value is, in words: 'an integer >= 1', 'a fraction in [0, 1)'."""
        if self.expected:
            return self.expected
        if self.choices is not None:
            return "one of " + ", ".join(map(_show, self.choices))
        noun = "an integer" if self.kind is int else "a number"
        if self.kind is int and self.low is not None and self.high is not None:
            return f"{noun} >= {_show(self.low)} and <= {_show(self.high)}"
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{_show(self.low)}, {_show(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_show(self.low)}"
        return noun


@dataclasses.dataclass(frozen=True)
class Search:
    """How a setting is searched by ``tune``: the space's entry checked by the setting's own rule.

    ``default`` is its entry in the built-in space of every task whose model reads it (a list of
    choices or a range ``{min, max, step, sampling}``); None: searchable when a space names it, not
    searched by default. A pair setting (``conv_filters``) is searched as one hyperparameter per
    entry (``parts``), each an integer in [part_low, part_high]; ``high`` caps what a search may
    try where the setting's own range is open (a learning rate of 1e6 is valid, not worth a trial).
    """

    default: object = None
    parts: tuple = None
    part_low: int = None
    part_high: int = None
    high: float = None
    # Its place in the built-in space: keras-tuner draws a trial's values in the order they are declared,
    # so a fixed order keeps the same command and seed drawing the same trials (docs/experiments.md's records).
    order: int = 0


def _show(value):
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)


def setting(default, help, kind=None, **rules):
    """A dataclass field with its ``Setting``; ``kind`` defaults to the type of ``default``."""
    kind = kind or type(default)
    return dataclasses.field(default=default, metadata={"setting": Setting(help=help, kind=kind, **rules)})


@dataclasses.dataclass(frozen=True)
class Config:
    task: str = setting("cifar", "which starter this run ports", choices=TASKS, group="data")
    # data
    dataset: str = setting(None, "which dataset", kind=str, choices=DATASETS, group="data")
    source: str = setting("auto", "force a source instead of the resolution order", choices=SOURCES, group="data")
    data_dir: str = setting(None, "a PNG-layout or idx folder, or a folder holding CIFAR10/ and MNIST/", kind=str,
                            group="data")
    tfds_data_dir: str = setting(None, "tensorflow-datasets data_dir", kind=str, group="data")
    ntrain: int = setting(None, "training images per class (starter's ntrain)", kind=int, low=1, high=2**31 - 1,
                          group="data")
    ntest: int = setting(None, "test images per class (starter's ntest)", kind=int, low=1, high=2**31 - 1,
                         group="data")
    val_split: float = setting(0.1, "validation fraction carved from train", low=0, high=1, high_open=True,
                               expected="a fraction in [0, 1)", group="data", column=True)
    subset: str = setting("all", "all: every image of the source (tensorflow-datasets: the whole dataset, e.g. "
                          "CIFAR-10's 50,000/10,000); assignment: at most 1000 train / 100 test per class at 28x28 "
                          "gray, as the course's folders (from tensorflow-datasets, written once in their PNG layout "
                          "under $TF_ASSIGN2_DATA or ./data)", choices=SUBSETS, group="data")
    native: bool = setting(False, "tfds CIFAR-10 as 32x32x3 RGB instead of the assignment's 28x28 grayscale",
                           group="data")
    # model
    model: str = setting(None, "the network", kind=str, choices=Names(MODELS), group="model", column=True,
                         search=Search())
    cell: str = setting("lstm", "recurrent cell", choices=CELLS, group="model", column=True,
                        search=Search(default=["rnn", "lstm", "gru"], order=3))
    units: int = setting(128, "nHidden: recurrent units", low=1, high=65536, group="model", column=True,
                         search=Search(default={"min": 32, "max": 256, "step": 32}, order=4))
    layers: int = setting(1, "stacked recurrent layers", low=1, high=64, group="model", tune_flag=True, column=True,
                          search=Search())
    conv_filters: tuple = setting((32, 64), "LeNet5 conv1 conv2 filters", kind=tuple, group="model",
                                  expected="two integers >= 1 and <= 4096",
                                  search=Search(default=([16, 32, 64], [32, 64, 128]), part_low=1, part_high=4096,
                                                parts=("conv1_filters", "conv2_filters"), order=4))
    fc_units: int = setting(1024, "LeNet5 fc1 units", low=1, high=1 << 20, group="model",
                            search=Search(default=[256, 512, 1024], order=3))
    init: str = setting("starter", "starter: truncated normal 0.1 / bias 0.1 (RNN output: random normal); "
                        "keras: Glorot", choices=INITS, group="model", tune_flag=True, column=True)
    batchnorm: bool = setting(False, "LeNet5 with batch normalisation after conv1, conv2 and fc1, before each ReLU "
                              "(off: the assignment's network)", group="model", tune_flag=True, column=True)
    use_cudnn: object = setting("auto", "LSTM/GRU cuDNN kernel", kind=object, choices=CUDNN, group="model")
    # optimisation
    optimizer: str = setting("adam", "the optimizer ('momentum' is SGD with momentum)", choices=Names(OPTIMIZERS),
                             column=True, search=Search(default=["adam", "momentum", "rmsprop"], order=2))
    lr: float = setting(None, "learning rate", kind=float,
                        low=0, low_open=True, expected="a learning rate > 0", column=True,
                        search=Search(default={"min": 1e-4, "max": 1e-2, "sampling": "log"}, high=10,
                                      order=1))
    momentum: float = setting(0.9, "momentum for --optimizer momentum", low=0, high=1, high_open=True,
                              expected="a value in [0, 1)", column=True, search=Search())
    schedule: str = setting("constant", "learning rate: constant (the starters'), cosine decay to 0 over the run, "
                            "or onecycle (linear up from lr/10 to lr over --warmup, then linear down to 0)",
                            choices=SCHEDULES, tune_flag=True, column=True)
    warmup: float = setting(0.0, "fraction of the run over which --schedule cosine or onecycle warms the learning "
                            "rate up linearly from lr/10 (0: no warm-up)", low=0, high=1, high_open=True,
                            expected="a fraction in [0, 1)", metavar="FRACTION", tune_flag=True, column=True)
    ema: float = setting(0.0, "evaluate and export an exponential moving average of the weights with this momentum, "
                         "e.g. 0.99 (0: off, the starters')", low=0, high=1, high_open=True,
                         expected="a momentum in [0, 1)", metavar="MOMENTUM", tune_flag=True, column=True)
    clipnorm: float = setting(None, "clip the global gradient norm (off)", kind=float, low=0, low_open=True,
                              tune_flag=True, column=True, none_shows="off")
    label_smoothing: float = setting(0.0, "label smoothing of the training loss (0: off, the starters')", low=0,
                                     high=1, high_open=True, tune_flag=True, column=True)
    augment_shift: int = setting(0, "shift each training image by a random 0..PIXELS pixels per axis "
                                 "(0: off, the starters')", low=0, high=7, expected="whole pixels from 0 to 7",
                                 metavar="PIXELS", tune_flag=True, column=True)
    flip: str = setting("none", "horizontal flips of training images: none (the starters'), random (each image "
                        "with probability 1/2) or alternate (a fixed half in even epochs, the other half in odd ones)",
                        choices=FLIPS, tune_flag=True, column=True)
    batch_size: int = setting(None, "batch size", kind=int, low=1, high=1 << 20, tune_flag=True, column=True,
                              search=Search())
    epochs: int = setting(10, "epochs", low=1, high=100_000, column=True)
    steps: int = setting(None, "train this many steps instead of --epochs (starter CIFAR)", kind=int, low=1,
                         high=2**31 - 1)
    training_iters: int = setting(None, "train on this many samples instead of --epochs (starter MNIST's "
                                  "trainingIters)", kind=int, low=2,
                                  high=2**62)
    display_step: int = setting(None, "print the starter's progress line every N steps", kind=int, low=1,
                                high=2**31 - 1)
    seed: int = setting(0, "random seed", low=0, high=2**32 - 1, tune_flag=True, column=True)
    deterministic: bool = setting(False, "TF op determinism: repeatable runs", group="execution", tune_flag=True)
    # execution
    jit: str = setting("auto", "XLA: auto = where measured faster (GPU: all but cuDNN LSTM/GRU; CPU: LSTM/GRU only)",
                       choices=JIT, group="execution", tune_flag=True)
    steps_per_execution: int = setting(None, "steps per compiled call (auto)", kind=int, low=1, high=100_000,
                                       group="execution")
    precision: str = setting("auto", "auto (LeNet5: bfloat16 compute on CPUs with native bfloat16 instructions; "
                             "otherwise float32), float32, mixed (float16, GPU) or bfloat16", choices=PRECISIONS,
                             group="execution")
    strategy: str = setting("default", "default or mirrored (all GPUs, or --devices)", choices=STRATEGIES,
                            group="execution")
    devices: tuple = setting(None, "devices for --strategy mirrored, e.g. GPU:0,GPU:1 (CPU:0,CPU:1 splits the "
                             "CPU, for testing)", kind=tuple, group="execution",
                             expected="names like GPU:0,GPU:1 or CPU:0,CPU:1 (CPU:0 to CPU:63)")
    # outputs
    runs_dir: str = setting("runs", "where run directories are created", group="outputs")
    tta: str = setting("none", "test-time augmentation of the final test metrics: none, flip (the image and its "
                       "mirror) or flip-shift (those two, each also moved one pixel diagonally both ways)",
                       choices=TTA, group="outputs", tune_flag=True, column=True)
    test_curve: bool = setting(True, "per-epoch test accuracy for the curves", group="outputs", flag="--no-test-curve",
                               tune_flag=True)
    visualize: bool = setting(True, "filter figures, activation statistics and TensorBoard summaries",
                              group="outputs", flag="--no-visualize", tune_flag=True)
    export: bool = setting(True, "SavedModel and model.keras at the end", group="outputs", flag="--no-export")
    quiet: bool = setting(False, "no per-epoch output: only the result (and errors)", group="outputs")
    verbose: bool = setting(False, "Keras' full per-epoch line with every metric (bookkeeping ones too)",
                            group="outputs")

    def __repr__(self):
        """The task and the settings that differ from its defaults: what makes this run this run."""
        changed = [f"{name}={value!r}" for name, value in dataclasses.asdict(self).items()
                   if name != "task" and value != _default_of(self, name)]
        return f"Config(task={self.task!r}{''.join(', ' + c for c in changed)})"

    def total_steps(self):
        """Training steps when the starter's counting is asked for, else None (use epochs).

        ``--training-iters`` counts samples like the MNIST starter's
        ``while step * batchSize < trainingIters`` loop, which runs (iters - 1) // batch steps.
        """
        if self.steps is not None:
            return self.steps
        if self.training_iters is not None:
            return max(1, (self.training_iters - 1) // self.batch_size)
        return None


SETTINGS = {f.name: f.metadata["setting"] for f in dataclasses.fields(Config)}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(Config)}
TUNE_FLAGS = tuple(name for name, s in SETTINGS.items() if s.tune_flag)
SEARCHABLE = tuple(name for name, s in SETTINGS.items() if s.search is not None)
_TABLE_ORDER = ("model", "training", "data", "execution", "outputs")
COLUMNS = tuple(sorted((n for n, s in SETTINGS.items() if s.column), key=lambda n: _TABLE_ORDER.index(SETTINGS[n].group)))


def ignored_by_model(model, name):
    """True for a model setting the model does not read (``units`` of LeNet5): left blank in tables."""
    return SETTINGS[name].group == "model" and name != "model" and model in MODELS \
        and name not in MODELS[model].settings


def ignored_by_optimizer(optimizer, name):
    """True for an optimizer's own setting another optimizer does not read (``momentum`` with Adam)."""
    readers = [o for o, spec in OPTIMIZERS.items() if name in spec.settings]
    return bool(readers) and optimizer not in readers


def ignored(model, optimizer, name):
    """True for a setting a run of ``model`` with ``optimizer`` does not read: blank in tables."""
    return ignored_by_model(model, name) or ignored_by_optimizer(optimizer, name)


def flag_name(name):
    """The command-line flag of a setting: --batch-size, --no-visualize."""
    return SETTINGS[name].flag or "--" + name.replace("_", "-")


# The defaults that differ between the two starters; ``lr`` follows from the model (``default_lr``).
TASK_DEFAULTS = {
    "cifar": {"dataset": "cifar10", "model": "lenet5", "batch_size": 50},
    "mnist": {"dataset": "mnist", "model": "rnn", "batch_size": 128},
}


def task_defaults(task):
    """Defaults that differ between the two starters, with the task itself."""
    return {"task": task, **TASK_DEFAULTS[task]}


def _default_of(config, name):
    """What ``name`` would be in a run of ``config``'s task and model had it not been given."""
    if name == "lr" and config.model in MODELS:
        return default_lr(config.model, config.optimizer)
    return default_for(config.task, name) if config.task in TASK_DEFAULTS else DEFAULTS[name]


def default_for(task, name):
    """The value setting ``name`` takes in a ``task`` run when it is not given (None: off / unset)."""
    if name == "lr":
        return default_lr(TASK_DEFAULTS[task]["model"], DEFAULTS["optimizer"])
    return TASK_DEFAULTS[task].get(name, DEFAULTS[name])


STARTER_LR = 1e-3
RNN_ADAM_LR = MODELS["rnn"].adam_lr


def default_lr(model, optimizer):
    """The learning rate when none is given: the starters' 1e-3, or the model's own Adam default
    (``ModelSpec.adam_lr``: 2e-3 for the RNNs).

    Why 2e-3 there: on the MNIST subset at batch 128, Adam 2e-3 ended higher than the starter's
    1e-3 for every cell and seed measured and reached 0.95 test accuracy where 1e-3 did not
    (docs/results.md, "Batch size and learning rate"; configs/sweeps/mnist_batch_lr.yaml). LeNet5
    keeps 1e-3, the fastest to 0.50 on CIFAR (configs/sweeps/cifar_batch_lr.yaml); other optimizers
    were not measured, so they keep the starters' value.
    """
    if optimizer == "adam" and MODELS[model].adam_lr:
        return MODELS[model].adam_lr
    return STARTER_LR


# --------------------------------------------------------------------------- checking values


def check_value(name, value, where=None):
    """``value`` for setting ``name``, checked against its schema; raises UsageError naming ``where``.

    Accepts what a YAML file or a Python caller gives (numbers, lists, booleans) and returns the
    canonical form (tuples for list settings). ``None`` is accepted where the default is None.
    """
    rule = SETTINGS[name]
    where = where or flag_name(name)
    if value is None and DEFAULTS[name] is None:
        return None
    if isinstance(value, (list, tuple, dict)) and rule.kind is not tuple:
        kind = "a mapping" if isinstance(value, dict) else f"a list ({_text(value)})"
        raise UsageError(f"{where} {kind}: expected one value, {rule.describe()}")
    problem = problem_with(name, rule, value)
    if problem:
        raise UsageError(f"{where} {_text(value)}: expected {problem}")
    if rule.kind is float:
        return float(value)
    if rule.kind is tuple:
        return tuple(value)
    return value


def _given(value):
    """A value as its flag says it: on/off for a switch."""
    return _show(value) if isinstance(value, bool) else _text(value)


def _text(value):
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    text = str(value)
    return text if text.isprintable() and len(text) <= 80 else repr(text[:80])


def _quoted(key):
    """A key in quotes, printable and on one line whatever it holds."""
    text = str(key)
    return f"'{text}'" if text.isprintable() and len(text) <= 80 else repr(text[:80])


def problem_with(name, rule, value):
    """None if ``value`` is valid for ``rule``, else what was expected."""
    if rule.search is not None and rule.search.parts:  # a pair setting: an integer per entry (conv_filters)
        low, high = rule.search.part_low, rule.search.part_high
        ok = isinstance(value, (list, tuple)) and len(value) == len(rule.search.parts) and \
            all(_is_int(v) and low <= v <= high for v in value)
        return None if ok else rule.describe()
    if name == "devices":
        ok = isinstance(value, (list, tuple)) and value and all(_device_name(d) for d in value)
        return None if ok else rule.describe()
    if rule.choices is not None:
        return None if any(value is c or (value == c and type(value) is type(c)) for c in rule.choices) \
            else rule.describe()
    if rule.kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if rule.kind is str:
        return None if isinstance(value, str) else "text"
    if rule.kind is int and not _is_int(value):
        return rule.describe()
    if rule.kind is float and not (_is_number(value) and math.isfinite(value)):
        return rule.describe()
    if rule.low is not None and (value < rule.low or (rule.low_open and value == rule.low)):
        return rule.describe()
    if rule.high is not None and (value > rule.high or (rule.high_open and value == rule.high)):
        return rule.describe()
    return None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MAX_LOGICAL_CPUS = 64  # CPU:N splits the CPU into N + 1 logical devices (for testing); CPU:100000 would hang


def _device_name(text):
    kind, _, number = str(text).partition(":")
    return kind.upper() in ("CPU", "GPU") and number.isdigit() and \
        (kind.upper() == "GPU" or int(number) < MAX_LOGICAL_CPUS)


def validate(config):
    """Check every field and the combinations; returns a new Config with the task's defaults and
    the default lr filled in where they were left None.

    Raises UsageError naming the flag and what was expected.
    """
    values = {name: check_value(name, getattr(config, name)) for name in SETTINGS}
    for name, value in TASK_DEFAULTS[values["task"]].items():
        if values[name] is None:
            values[name] = value
    if values["steps"] is not None and values["training_iters"] is not None:
        raise UsageError("--steps and --training-iters both given: use one")
    if values["quiet"] and values["verbose"]:
        raise UsageError("--quiet and --verbose both given: use one")
    if values["devices"] is not None and values["strategy"] != "mirrored":
        raise UsageError("--devices is for --strategy mirrored; add it, or drop --devices")
    if values["warmup"] and values["schedule"] == "constant":
        raise UsageError("--warmup is for --schedule cosine or onecycle; add one, or drop --warmup")
    if values["lr"] is None:
        values["lr"] = default_lr(values["model"], values["optimizer"])
    return Config(**values)


def build(task, *layers):
    """Task defaults < each mapping of ``layers`` in turn (a YAML file, flags ...); validated.

    Keys must be setting names (``UsageError`` otherwise); None values are skipped, so a flag
    that was not given does not hide a value from a file.
    """
    values, given = {"task": task}, set()
    for layer in layers:
        values.update({k: v for k, v in layer.items() if v is not None})
        given |= {k for k, v in layer.items() if v is not None}
    unknown = [k for k in values if k not in SETTINGS]
    if unknown:
        raise UsageError(f"unknown setting '{unknown[0]}'")
    for length in ("steps", "training_iters"):
        if length in given and "epochs" in given:
            raise UsageError(f"{flag_name(length)} and --epochs both given: {flag_name(length)} sets the run's "
                             "length instead of --epochs; use one")
    config = validate(Config(**values))
    check_read(config)
    return config


def check_read(config):
    """Refuse a setting given a value that nothing in this run reads: a model setting the chosen model
    does not read (``mnist --batchnorm``), an optimizer setting the chosen optimizer does not read
    (``--momentum 0.5`` with Adam). Such a value would be recorded in config.json as if it applied.
    A value equal to the default is the default, and passes (a shared sweep or --config file may set it)."""
    for name in SETTINGS:
        value = getattr(config, name)
        if value == _default_of(config, name):
            continue
        if ignored_by_model(config.model, name):
            readers = [m for m, spec in MODELS.items() if name in spec.settings]
            raise UsageError(f"{flag_name(name)} {_given(value)}: the {config.model} model does not read it (it is a "
                             f"setting of {', '.join(readers) or 'no model'}); drop it, or choose such a model")
        if ignored_by_optimizer(config.optimizer, name):
            readers = [o for o, spec in OPTIMIZERS.items() if name in spec.settings]
            raise UsageError(f"{flag_name(name)} {_given(value)}: --optimizer {config.optimizer} does not read it "
                             f"(only {', '.join(readers)} does); drop it, or choose that optimizer")


def file_values(values, where):
    """A mapping from a YAML file (``--config``, a sweep entry) checked key by key against the schema.

    Unknown keys name the closest setting; values are checked as flags are. Returns setting -> value.
    """
    checked = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, list(SETTINGS), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else f"expected one of {', '.join(sorted(SETTINGS))}"
            raise UsageError(f"{where}: unknown key {_quoted(key)} ({hint})")
        value = _from_text(SETTINGS[name], value)
        checked[name] = check_value(name, value, f"{where}: {key}:")
    return checked


def python_values(values, call):
    """Settings given to a Python call (``settings(lr=1e-3)``) checked against the schema; None values
    mean "not given" and are left out. Unknown names name the closest setting."""
    checked = {}
    for name, value in values.items():
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, list(SETTINGS), n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "see tf_assign2.config.SETTINGS for the names"
            raise UsageError(f"{call}(): unknown setting {_quoted(name)} ({hint})")
        if value is not None:
            checked[name] = check_value(name, value, f"{call}({name}=...):")
    return checked


def _from_text(rule, value):
    """YAML leaves some values as text: ``1e-4`` (no dot) and on/off for use_cudnn; read them as flags are."""
    if not isinstance(value, str):
        return value
    if rule.kind is object and value in ("on", "off"):
        return value == "on"
    try:
        return int(value) if rule.kind is int else float(value) if rule.kind is float else value
    except ValueError:
        return value


YAML_MAX_BYTES = 1 << 20  # a settings or sweep file is a few hundred bytes; a megabyte is plenty
YAML_MAX_DEPTH = 16


def read_yaml(path, what="--config"):
    """A YAML file's top-level mapping; errors name ``what`` and the file.

    Read as hostile input: at most 1 MB of UTF-8 text, nested at most 16 deep, and no anchors or
    aliases (an alias bomb expands a few lines into gigabytes); all checked on the token stream,
    in time linear in the file, before anything is built.
    """
    import yaml

    from tf_assign2.files import read_bytes

    raw = read_bytes(path, f"{what} ", limit=YAML_MAX_BYTES)
    if len(raw) > YAML_MAX_BYTES:
        raise UsageError(f"{what} {path}: larger than {YAML_MAX_BYTES:,} bytes; expected a short YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} {path}: not UTF-8 text (byte {e.start})") from None
    try:
        _check_yaml_tokens(yaml.scan(text), path, what)
        values = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as e:
        raise UsageError(f"{what} {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"{what} {path}: expected a mapping of settings at the top level")
    return values


def _unique_key_loader():
    """PyYAML's safe loader, refusing a mapping that names a key twice (PyYAML keeps the last silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            lines = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in lines:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {_quoted(key)} appears twice (lines {lines[key]} and {line}); keep one",
                            key_node.start_mark)
                    lines[key] = line
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


def _check_yaml_tokens(tokens, path, what):
    import yaml

    depth = 0
    for token in tokens:
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            raise UsageError(f"{what} {path}: YAML anchors and aliases (&, *) are not accepted; write the values out")
        if isinstance(token, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
                              yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
            depth += 1
            if depth > YAML_MAX_DEPTH:
                raise UsageError(f"{what} {path}: nested deeper than {YAML_MAX_DEPTH} levels")
        elif isinstance(token, (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)):
            depth -= 1


def to_dict(config):
    return dataclasses.asdict(config)


def with_new_defaults(recorded):
    """A config recorded by an earlier version (sweep.json, a tuning project's search.json),
    completed with today's default for each setting added since - the value it ran with - and
    in JSON form (tuples as lists), so it compares equal to a fresh record of the same settings."""
    return json.loads(json.dumps({**{k: v for k, v in DEFAULTS.items() if k not in recorded}, **recorded}))


def from_dict(values, where="config.json"):
    """Rebuild a Config from a run's config.json (resume, evaluate): only the settings, checked.

    Settings added since the run was made take their defaults (the value it ran with); other
    keys of config.json (data_info, environment, plan) are not settings and are skipped.
    """
    if not isinstance(values, dict):
        raise UsageError(f"{where}: expected a JSON object of settings, found {type(values).__name__}")
    missing = [k for k in RECORDED_ALWAYS if k not in values]
    if missing:
        raise UsageError(f"{where}: not a run's config (missing {', '.join(missing)}); it cannot be resumed "
                         "or evaluated with made-up defaults")
    kept = {k: v for k, v in values.items() if k in SETTINGS}
    return validate(Config(**file_values(kept, where)))


# Settings every config.json has recorded since the first version; one without them is not a run's.
RECORDED_ALWAYS = ("task", "dataset", "model", "optimizer", "lr", "epochs", "batch_size", "seed")
