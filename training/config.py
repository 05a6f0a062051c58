"""One typed configuration per training profile (CleanRL spirit: every hyperparameter in one place).

`smoke` runs the whole pipeline in a few minutes (tests use it); `full` produces the shipped
student. Both are plain frozen dataclasses so a run directory can store them as JSON verbatim;
`override` applies `section.field=value` assignments from the command line or a config file.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any


TRAINING_BLER_TARGETS = (None, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


@dataclass(frozen=True)
class DqnConfig:
    """DQN-family agent with gamma = 0 (a constrained contextual bandit: see training/dqn.py).

    Two heads per MCS `a` in state `s`, the normalised delivered bits and P(NACK), each regressed on
    the outcome of the action taken; no bootstrap target, so no target network. Exploration is
    epsilon-greedy (on the priced score) with a linear decay.
    """

    hidden: tuple[int, ...] = (128,) * 8
    env_steps: int = 3_000                 # vectorised env steps (each decides for many UEs)
    n_ues: int = 64                        # UEs per vectorised env
    episode_slots: int = 200
    buffer_size: int = 200_000             # transitions (one per deciding UE)
    batch_size: int = 512
    learning_rate: float = 1e-3
    learning_starts: int = 50              # env steps before the first gradient step
    train_every: int = 1                   # env steps between gradient steps
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_decay_fraction: float = 0.5        # fraction of env_steps over which eps decays linearly
    huber_delta: float = 1.0
    log_every: int = 100
    # operator first-tx BLER targets drawn per UE and episode (None: throughput mode); they set the
    # price the agent acts with, so the replay buffer holds the states of every operating point
    bler_targets: tuple[float | None, ...] = TRAINING_BLER_TARGETS


@dataclass(frozen=True)
class DistillConfig:
    """Policy distillation (Rusu et al. 2016) with DAgger rounds (Ross et al. 2011).

    The loss is the KL of the priced scores at temperature `tau` on both sides (training/distill.py).
    `heads_weight` is 0 by default: with the KL at the same temperature on both sides and resampled
    prices, regressing the heads as well only competed with the ranking (offline, 203k generalist
    states, student 32-32-24, 4 epochs: relative regret of its argmax on the teacher's scores 1.4% /
    2.2% at own / resampled prices with the KL alone, 2.4% / 3.0% with heads_weight 1, 1.5% / 2.8%
    with 0.1). Closed loop, held-out at 10% (1000 slots, seeds 1001-1002): the generalist +5.5% vs
    OLLA 10%, the student distilled with the fixed loss +5.3%, the shipped run's student-single
    +1.2%, RL from scratch at the same size +4.2%."""

    hidden: tuple[int, ...] = (32, 32, 24)
    tau: float = 0.01                      # teacher softmax temperature on Q-values
    teacher_rollout_steps: int = 400       # env steps per scenario group, teacher acting
    dagger_rounds: int = 2
    dagger_steps: int = 200                # env steps per scenario group and DAgger round, student acting
    n_ues: int = 64
    episode_slots: int = 200
    epochs: int = 4                        # passes over the aggregated dataset after each round
    batch_size: int = 512
    learning_rate: float = 3e-3
    price_resample: float = 0.5            # rows per batch scored at a random price (every operating point)
    heads_weight: float = 0.0              # weight of matching the teacher's B and P heads beside the KL (see below)
    bler_targets: tuple[float | None, ...] = TRAINING_BLER_TARGETS


@dataclass(frozen=True)
class EvalConfig:
    """Closed-loop evaluation, the same seeds for every policy (common random numbers).

    Built-ins: under their own interference model and each of `interference_models`, in throughput
    mode against ILLA, OLLA 10% and best-tuned OLLA, and at 10% against OLLA 10%. Held-out set: at
    each operator target in `bler_targets` against OLLA at the same target, and in throughput mode
    against best-tuned OLLA."""

    slots: int = 500
    n_ues: int | None = None               # None: the scenario's own population
    seeds: tuple[int, ...] = (1001,)
    olla_tune_seed: int = 2001             # best-tuned OLLA is picked on this seed, reported on `seeds`
    tune_slots: int | None = None          # slots of each tuning run (None: `slots`)
    # best-tuned OLLA's grid. In the previous full run (grid 0.05-0.5 x 0.5/1/2 dB, picked on the
    # tuning seed) the winner sat on the grid's top target 0.5 in 15 of 39 scenario variants, never
    # at 0.05, and at 2 dB once (bursty low load, where every setting delivers the offered traffic):
    # the grid now reaches 0.6, so OLLA's optimum is inside it, and drops 0.05 and 2 dB (12 points, not 18)
    olla_targets: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    olla_steps_db: tuple[float, ...] = (0.5, 1.0)
    builtin_seeds: int = 2                 # seeds of the built-ins in throughput mode (the first of `seeds`)
    holdout_states: int = 4_096            # held-out observations for parity and int8 agreement
    bler_targets: tuple[float, ...] = (0.1, 0.2)
    interference_models: tuple[str, ...] = ("onoff", "always_on")   # evaluated on the first seed only


@dataclass(frozen=True)
class TrainConfig:
    profile: str
    seed: int = 0
    teacher: DqnConfig = field(default_factory=DqnConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    onnx_opset: int = 17
    randomized_per_family: int = 24        # seeded draws per randomisation family (training scenarios)
    # student sizes of the distillation-vs-RL ablation (distilled from the generalist, and trained by
    # the teacher's RL with its budget); the shipped size is `distill.hidden`
    sizes: tuple[tuple[int, ...], ...] = ((6, 6), (12, 12), (32, 32, 24), (64, 48))
    # the user's scenario sets (built-in names, scenario files, folders of them); empty: the built-ins
    # plus the seeded randomisation draws for training, the project's held-out set for evaluation
    scenarios: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def smoke_profile(seed: int = 0) -> TrainConfig:
    """Tiny everything: exercises every stage of the pipeline in a few minutes."""
    return TrainConfig(
        profile="smoke", seed=seed, randomized_per_family=1, sizes=((8,), (32, 32, 24)),
        teacher=DqnConfig(hidden=(64,) * 3, env_steps=60, n_ues=16, episode_slots=50,
                          batch_size=128, learning_starts=10, log_every=20),
        distill=DistillConfig(teacher_rollout_steps=30, dagger_steps=20, n_ues=16,
                              episode_slots=50, epochs=2, batch_size=128),
        evaluation=EvalConfig(slots=60, n_ues=16, olla_targets=(0.1, 0.3), olla_steps_db=(1.0,),
                              holdout_states=256, interference_models=("always_on",)),
    )


def full_profile(seed: int = 0) -> TrainConfig:
    """The shipped models, sized to finish within an hour on two shared cores."""
    return TrainConfig(
        profile="full", seed=seed,
        teacher=DqnConfig(env_steps=20_000, n_ues=256, episode_slots=250, buffer_size=1_000_000,
                          learning_starts=500, eps_decay_fraction=0.4, log_every=500),
        # with the fixed loss a smaller budget keeps the teacher's gain (held-out at 10%, 1000 slots,
        # seeds 1001-1002, vs OLLA 10%: 2000/3x1000 steps, 6 epochs +5.3%; 1200/2x800, 4 epochs +5.7%;
        # the generalist +5.5%; in throughput mode +15.2% vs the generalist's +14.7%) in ~half the time
        distill=DistillConfig(teacher_rollout_steps=1200, dagger_rounds=2, dagger_steps=800, n_ues=256,
                              episode_slots=200, epochs=4),
        # the built-ins in throughput mode on one seed, as under the other interference models: 11
        # scenarios x 3 interference models; the held-out set (the acceptance targets) on two
        evaluation=EvalConfig(slots=2000, seeds=(1001, 1002), tune_slots=1000, holdout_states=8192, builtin_seeds=1),
    )


PROFILES = {"smoke": smoke_profile, "full": full_profile}


def load_profile(name: str, seed: int = 0) -> TrainConfig:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name](seed)


def override(cfg: Any, assignments: list[str]) -> Any:
    """`cfg` with `section.field=value` assignments applied (e.g. `teacher.env_steps=5000`,
    `distill.hidden=[16,16]`, `evaluation.seeds=[1001]`); values are JSON (lists become tuples,
    `null` is None). Raises ValueError naming the unknown field or the badly typed value."""
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"override {assignment!r} is not of the form section.field=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text                     # a bare string
        cfg = _set(cfg, path.strip().split("."), value, path)
    return cfg


def assignments(tree: dict, prefix: str = "") -> list[str]:
    """{"teacher": {"env_steps": 5000}} -> ["teacher.env_steps=5000"] (what `override` takes)."""
    if not isinstance(tree, dict):
        raise ValueError("a configuration file holds a JSON object of sections and settings")
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += assignments(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def from_dict(data: dict) -> TrainConfig:
    """A configuration saved by `TrainConfig.to_dict` (a run's config.json), rebuilt on its profile."""
    return override(load_profile(data["profile"], data["seed"]), assignments(data))


def _set(node: Any, keys: list[str], value: Any, path: str) -> Any:
    names = {f.name: f for f in fields(node)}
    if keys[0] not in names:
        raise ValueError(f"unknown setting {path!r}: {type(node).__name__} has {', '.join(names)}")
    current = getattr(node, keys[0])
    if len(keys) > 1:
        if not is_dataclass(current):
            raise ValueError(f"{path!r}: {keys[0]} is a value, not a section")
        return replace(node, **{keys[0]: _set(current, keys[1:], value, path)})
    if value is None:
        if "None" not in str(names[keys[0]].type):
            raise ValueError(f"{path!r} cannot be null")
        return replace(node, **{keys[0]: None})
    return replace(node, **{keys[0]: _coerce(value, current, path)})


def _coerce(value: Any, current: Any, path: str) -> Any:
    """`value` in the type of the field's current value (tuples of tuples included)."""
    if isinstance(current, tuple) or (current is None and isinstance(value, list)):
        if not isinstance(value, list):
            raise ValueError(f"{path!r} takes a list, e.g. [1, 2]; got {value!r}")
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if isinstance(current, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(current, bool):
            raise ValueError(f"{path!r} takes a {type(current).__name__}; got {value!r}")
        return value
    if isinstance(current, (int, float)) and current is not None:
        if not isinstance(value, (int, float)) or (isinstance(current, int) and not isinstance(value, int)):
            raise ValueError(f"{path!r} takes a {type(current).__name__}; got {value!r}")
        return type(current)(value)
    if current is not None and not isinstance(value, type(current)):
        raise ValueError(f"{path!r} takes a {type(current).__name__}; got {value!r}")
    return value
