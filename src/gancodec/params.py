"""The pipeline's parameters: one typed section per ``dvc.yaml`` stage, read from ``params.yaml``.

``params.yaml`` has a top-level ``profile`` (``ci`` | ``default`` | ``full``) and one section per
stage. The profiles' overrides live beside it in ``profiles.yaml``, one mapping per profile and
section; the keys given for the active profile replace the section's own (a shallow update), so
a profile states only what differs and ``default`` needs no entry::

    # params.yaml                    # profiles.yaml
    profile: ci                      ci:
    train:                             train: {steps: 12}
      steps: 0

``TrainParams.load("params.yaml")`` then returns ``TrainParams(steps=12, ..., profile="ci")``.
Why a separate file: DVC shows every params.yaml key as a ``dvc exp show`` column, and the
profiles' ~30 override values are not what an experiment varies (``-S profile=ci`` is).

Each section is a frozen dataclass below (``SECTION`` names its ``params.yaml`` key). Stage scripts
load their section with ``<Section>Params.load(args.params)`` and use its attributes; nothing
reads ``params.yaml`` by hand. Values are checked against the field types (a wrong type or an
unknown key is a ``DataError`` naming the key and the valid ones).

Lineage: every field a stage's *outputs* depend on is a dotted key in that stage's ``params:``
list in ``dvc.yaml`` (``train.steps``, ...), plus ``profile`` (and ``profiles.yaml`` as a file
dependency) when ``profiles.yaml`` overrides the section. Fields that only say *how* to run
(``evaluate.workers``, ``train.checkpoint_every_s``, ``train.log_every``, ``download.cache``) are
marked ``untracked`` so that changing them reruns nothing; ``tracked_keys()`` lists the rest and
a test holds ``dvc.yaml`` to it.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

import yaml

from .errors import DataError

PROFILES = ("ci", "default", "grow", "full")
#: The profiles' overrides, beside the params file: ``{profile: {section: {key: value}}}``.
PROFILES_FILE = "profiles.yaml"

#: ``field(metadata=UNTRACKED)``: a key that changes how a stage runs, not what it makes.
UNTRACKED = {"track": False}

S = TypeVar("S", bound="Section")


def read_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The whole params file as a mapping (``DataError`` naming the file if it is missing or bad)."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read params ({exc.strerror or exc}); pass --params PATH") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(params, Mapping):
        raise DataError(f"{path}: params file must be a mapping of sections")
    return dict(params)


def read_sources(path: str | os.PathLike) -> dict[str, Any]:
    """The download stage's sources file (``data/sources.yaml``): source -> role, license, url or
    archive, files (name -> sha256). Data, not parameters: DVC tracks it as a file dependency."""
    sources = read_params(path)
    if not sources:
        raise DataError(f"{path}: no sources listed")
    return sources


def read_profiles(path: str | os.PathLike) -> dict[str, dict[str, dict[str, Any]]]:
    """The profile overrides at ``path`` (``{}`` when the file is absent), checked for shape."""
    path = Path(path)
    if not path.exists():
        return {}
    profiles = read_params(path) if path.read_text().strip() else {}
    unknown = sorted(set(profiles) - set(PROFILES))
    if unknown:
        raise DataError(f"{path}: unknown profile(s) {unknown}; use {', '.join(PROFILES)}")
    for name, sections in profiles.items():
        if sections is None:
            continue
        if not isinstance(sections, Mapping) or not all(isinstance(v, Mapping) for v in sections.values()):
            raise DataError(f"{path}: {name} must map sections to {{key: value}} overrides")
    return {name: {k: dict(v) for k, v in (sections or {}).items()} for name, sections in profiles.items()}


def resolve_section(params: Mapping[str, Any], section: str,
                    profiles: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """Return ``params[section]`` with ``profiles[params["profile"]][section]`` applied (plus ``profile``)."""
    profile = params.get("profile", "default")
    if profile not in PROFILES:
        raise DataError(f"params: profile {profile!r} is unknown; use one of {', '.join(PROFILES)}")
    if section not in params or not isinstance(params[section], Mapping):
        raise DataError(f"params: no section {section!r}; sections present: {', '.join(sorted(k for k in params if k != 'profile'))}")
    cfg = dict(params[section])
    if "profiles" in cfg:
        raise DataError(f"params: {section}.profiles: profile overrides live in {PROFILES_FILE} beside params.yaml "
                        f"(`<profile>: {{{section}: {{key: value}}}}`); move them there")
    unknown = sorted(s for p in (profiles or {}).values() for s in p if s not in params)
    if unknown:
        raise DataError(f"{PROFILES_FILE}: override(s) for unknown section(s) {unknown}; "
                        f"sections: {', '.join(sorted(k for k in params if k != 'profile'))}")
    cfg.update(((profiles or {}).get(profile) or {}).get(section) or {})
    cfg["profile"] = profile
    return cfg


def stage_params(path: str | os.PathLike, section: str) -> dict[str, Any]:
    """Read ``path`` (a params.yaml) and the ``profiles.yaml`` beside it; return ``section`` for
    the active profile, untyped."""
    return resolve_section(read_params(path), section, read_profiles(Path(path).with_name(PROFILES_FILE)))


def overridden_sections(path: str | os.PathLike) -> set[str]:
    """The sections some profile in ``path`` (a profiles.yaml) overrides: their stages track
    ``profile`` and depend on the file."""
    return {section for sections in read_profiles(path).values() for section in sections}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (int/float/str/bool, X | None, list[X], dict[K, V])."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except DataError as exc:
                errors.append(str(exc))
        raise DataError(errors[-1] if errors else f"params: {where} must not be null")
    if origin is typing.Literal:
        if value not in args:
            raise DataError(f"params: {where} is {value!r}; use one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise DataError(f"params: {where} must be a list, not {value!r}")
        return [_coerce(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise DataError(f"params: {where} must be a mapping, not {value!r}")
        kt, vt = args or (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise DataError(f"params: {where} must be true or false, not {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (tp is int and value != int(value)):
            raise DataError(f"params: {where} must be a{'n integer' if tp is int else ' number'}, not {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise DataError(f"params: {where} must be a string, not {value!r}")
        return value
    raise TypeError(f"params: no rule for the annotation {tp!r} of {where}")


@dataclass(frozen=True)
class Section:
    """Base of the typed sections: ``load`` reads one, ``tracked_keys`` says what ``dvc.yaml`` tracks."""

    SECTION: ClassVar[str] = ""  # the params.yaml key
    STAGE: ClassVar[str] = ""  # the dvc.yaml stage that reads it, when not named like the section
    profile: str = "default"  # the active profile, set by load() from the top-level key

    @classmethod
    def from_mapping(cls: type[S], cfg: Mapping[str, Any]) -> S:
        """A section from a resolved mapping (``resolve_section``'s output); checks keys and types."""
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise DataError(f"params: {cls.SECTION} has unknown key(s) {unknown}; valid keys: {sorted(known - {'profile'})}")
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in cfg
                         and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        if missing:
            raise DataError(f"params: {cls.SECTION} lacks {missing}; add them to params.yaml")
        return cls(**{k: _coerce(v, hints[k], f"{cls.SECTION}.{k}") for k, v in cfg.items()})

    @classmethod
    def load(cls: type[S], path: str | os.PathLike = "params.yaml") -> S:
        """This section of the params file at ``path``, the active profile applied."""
        return cls.from_mapping(stage_params(path, cls.SECTION))

    @classmethod
    def tracked_keys(cls, has_profiles: bool = True) -> list[str]:
        """The ``params:`` entries of this section's stage in dvc.yaml, in field order (``profile``
        first when profiles.yaml overrides the section)."""
        keys = [f"{cls.SECTION}.{f.name}" for f in dataclasses.fields(cls)
                if f.name != "profile" and f.metadata.get("track", True)]
        return ["profile", *keys] if has_profiles else keys

    def values(self) -> dict[str, Any]:
        """The section's keys and values (without ``profile``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "profile"}


@dataclass(frozen=True)
class DownloadParams(Section):
    SECTION: ClassVar[str] = "download"
    #: the sources to fetch: `name` (all its files) or `name=N` (the first N by name); a mapping
    #: {name: N | all} works too. Unlisted sources are skipped. See take_map().
    take: list[str] | dict[str, int | str] = field(default_factory=list)
    #: a local folder or s3://bucket/prefix tried before the URLs; files are sha256-pinned, so where
    #: they come from does not change the outputs (untracked)
    mirror: str | None = field(default=None, metadata=UNTRACKED)
    #: partial downloads and archives survive here between runs
    cache: str | None = field(default=None, metadata=UNTRACKED)

    def take_map(self) -> dict[str, int | str]:
        """``take`` as the library wants it: source -> file count or "all"."""
        if isinstance(self.take, dict):
            return dict(self.take)
        out: dict[str, int | str] = {}
        for item in self.take:
            name, _, count = item.partition("=")
            if count and not count.strip().isdigit():
                raise DataError(f"params: download.take entry {item!r}: use `name` or `name=N` (N files)")
            out[name.strip()] = int(count) if count else "all"
        return out


@dataclass(frozen=True)
class ValidateParams(Section):
    SECTION: ClassVar[str] = "validate"
    min_side: int = 256
    near_dup_max_hamming: int = 36
    #: the near-duplicate hash's side (16: 256 bits); near_dup_max_hamming was measured for 16
    dhash_size: int = field(default=16, metadata=UNTRACKED)


@dataclass(frozen=True)
class SplitParams(Section):
    SECTION: ClassVar[str] = "split"
    val_fraction: float = 0.2
    salt: str = "gancodec-split-v1"


@dataclass(frozen=True)
class SyntheticParams(Section):
    SECTION: ClassVar[str] = "synthetic"
    STAGE: ClassVar[str] = "synthesize"
    count: int = 260  # training images (split train/val by content hash with the photos)
    seed: int = 20
    test_per_class: int = 8  # per content class (screen, document, graphics, studio)
    test_seed: int = 2020  # the test sets' own seed
    size: list[int] = field(default_factory=lambda: [512, 512])  # width, height
    #: share of each kind (gancodec.data.synthetic.KINDS) among the training images
    kinds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainParams(Section):
    SECTION: ClassVar[str] = "train"
    init_from: str = "shipped"  # shipped | scratch | a weights path
    steps: int = 0
    max_seconds: float = 0.0
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    # YAML spells it `lambda`; a Python name cannot be, so the key maps to this field (see load)
    lmbda: float | None = None
    context: str | None = None
    trainable: list[str] = field(default_factory=list)
    seed: int = 0
    #: share of the training crops from synthetic images (the rest from photos); null: by pixels
    synthetic_share: float | None = None
    #: processes (GPUs) the stage trains on; > 1 runs it under torchrun, one process per GPU, with
    #: an effective batch of batch_size x nproc (so it changes the run: tracked)
    nproc: int = 1
    log_every: int = field(default=10, metadata=UNTRACKED)  # how often the curves get a point
    checkpoint_every_s: float = field(default=300.0, metadata=UNTRACKED)
    threads: int = field(default=0, metadata=UNTRACKED)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> "TrainParams":
        cfg = dict(cfg)
        if "lambda" in cfg:
            cfg["lmbda"] = cfg.pop("lambda")
        return super().from_mapping(cfg)

    @classmethod
    def tracked_keys(cls, has_profiles: bool = True) -> list[str]:
        return [k.replace("train.lmbda", "train.lambda") for k in super().tracked_keys(has_profiles)]

    def train_config(self, train_list: str | list[str], run_dir: str, init_from: str | None,
                     source_weights: list[float] | None = None):
        """The library's ``TrainConfig`` for this section (``init_from`` resolved by the caller;
        ``train_list`` one list, or one per source with ``source_weights``)."""
        from .train.config import TrainConfig

        lists = [train_list] if isinstance(train_list, str) else list(train_list)
        return TrainConfig(data_dirs=lists, source_weights=source_weights, out_dir=run_dir, init_from=init_from, steps=self.steps,
                           max_seconds=self.max_seconds, batch_size=self.batch_size, crop=self.crop, lr=self.lr,
                           seed=self.seed, lmbda=self.lmbda, checkpoint_every_s=self.checkpoint_every_s,
                           log_every=self.log_every, threads=self.threads,
                           model={"context": self.context} if self.context else {}, trainable=list(self.trainable))


@dataclass(frozen=True)
class EntropyParams(Section):
    """Stage ``train_entropy``: the channel-conditional context over the frozen transforms, by
    rate alone on cached latents (:mod:`gancodec.train.entropy`)."""

    SECTION: ClassVar[str] = "entropy"
    STAGE: ClassVar[str] = "train_entropy"
    #: base: continue the base model's own channel context (a fresh one when it has none) | fresh
    init_from: str = "base"
    steps: int = 0  # total steps of the run (resumes count); 0 = the base model unchanged
    max_seconds: float = 0.0  # stops a run early; the learning rate follows steps only
    crops: int = 2048  # cached 256x256 crops, each at one random rate point in [rate_min, rate_max]
    rate_min: float = 0.0
    rate_max: float = 7.0
    batch_size: int = 16
    lr: float = 3e-4
    #: the parts trained by rate: channel_context, and optionally context (the checkerboard) and h_s
    parts: list[str] = field(default_factory=lambda: ["channel_context"])
    seed: int = 0
    log_every: int = field(default=50, metadata=UNTRACKED)
    checkpoint_every_s: float = field(default=120.0, metadata=UNTRACKED)

    def entropy_config(self, train_list: str, base: str, cache_dir: str, run_dir: str):
        """The library's ``EntropyTrainConfig`` for this section."""
        from .train.entropy import EntropyTrainConfig

        return EntropyTrainConfig(base=base, images=[train_list], cache_dir=cache_dir, run_dir=run_dir,
                                  crops=self.crops, rate_min=self.rate_min, rate_max=self.rate_max, steps=self.steps,
                                  max_seconds=self.max_seconds, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                                  parts=tuple(self.parts), fresh=self.init_from == "fresh", log_every=self.log_every,
                                  checkpoint_every_s=self.checkpoint_every_s)


@dataclass(frozen=True)
class EvaluateParams(Section):
    SECTION: ClassVar[str] = "evaluate"
    qualities: list[float] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    codecs: list[str] = field(default_factory=lambda: ["jpeg420", "webp"])
    anchor: str = "hevc444"
    limit: int | None = None
    perceptual: bool = True
    perceptual_max_bpp: float = 2.0
    #: qualities at which the realism decoder is measured beside fidelity and the codecs ([]: skipped)
    realism_qualities: list[float] = field(default_factory=lambda: [1, 2])
    #: processes for the classical codecs; 0 = one per CPU core (results do not depend on it)
    workers: int = field(default=0, metadata=UNTRACKED)

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ClassesParams(Section):
    SECTION: ClassVar[str] = "classes"
    STAGE: ClassVar[str] = "evaluate_classes"
    qualities: list[float] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7, 8])
    codecs: list[str] = field(default_factory=lambda: ["webp", "avif", "jpeg420"])  # BD-rate anchors
    photos: int | None = 6  # test-list (Kodak) images for the photos class; null = all
    limit: int | None = None  # images per synthetic class; null = all the synthesize stage made
    workers: int = field(default=0, metadata=UNTRACKED)  # processes for the classical codecs; 0 = one per core

    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ReportParams(Section):
    SECTION: ClassVar[str] = "report"
    dataset: str = "test set"
    #: a folder of published curves (gancodec.eval.anchors); skipped when absent
    anchors: str | None = None
    #: the published curves plotted beside ours (names in the anchors folder)
    anchor_curves: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RealismParams(Section):
    """Stage ``train_realism``: the detail-generator realism decoder over the trained model
    (:mod:`gancodec.realism.detail_loop`)."""

    SECTION: ClassVar[str] = "realism"
    STAGE: ClassVar[str] = "train_realism"
    init_from: str = "shipped"  # shipped (the package's realism generator, when there is one) | scratch | a realism file
    steps: int = 300
    max_seconds: float = 0.0
    crops: int = 64  # cached 256x256 training crops
    rate_max: float = 1.0  # rate points 0..rate_max (qualities 1..rate_max + 1)
    batch_size: int = 8
    window: int = 128
    lr: float = 2e-4
    w_mse: float = 100.0
    w_tex: float = 1.0
    w_adv: float = 0.0
    d_lr: float = 2e-4  # the conditional patch discriminator's learning rate (used when w_adv > 0)
    d_warmup_steps: int = 200  # steps the discriminator trains before the generator sees it
    seed: int = 0
    log_every: int = field(default=25, metadata=UNTRACKED)
    checkpoint_every_s: float = field(default=240.0, metadata=UNTRACKED)
    threads: int = field(default=0, metadata=UNTRACKED)

    def detail_config(self, train_list: str, base: str, cache_dir: str, run_dir: str, init_from: str | None):
        """The library's ``DetailTrainConfig`` for this section (``init_from`` resolved by the caller)."""
        from .realism.detail_loop import DetailTrainConfig

        return DetailTrainConfig(data_dirs=[train_list], base=base, cache_dir=cache_dir, out_dir=run_dir,
                                 init_from=init_from, crops=self.crops, rate_max=self.rate_max, steps=self.steps,
                                 max_seconds=self.max_seconds, batch_size=self.batch_size, window=self.window,
                                 lr=self.lr, w_mse=self.w_mse, w_tex=self.w_tex, w_adv=self.w_adv, d_lr=self.d_lr,
                                 d_warmup_steps=self.d_warmup_steps, seed=self.seed,
                                 log_every=self.log_every, checkpoint_every_s=self.checkpoint_every_s,
                                 threads=self.threads)


@dataclass(frozen=True)
class PostFilterParams(Section):
    """Stage ``train_post_filter``: the fidelity post-filter (a noise-free, rate-aware detail
    generator over the frozen base model's decode, v1.6's recipe: docs/training.md) trained on
    cached crops and attached to the base model (:mod:`gancodec.realism.detail_loop`)."""

    SECTION: ClassVar[str] = "post_filter"
    STAGE: ClassVar[str] = "train_post_filter"
    #: shipped (the base model's own post-filter, continued) | scratch | a file (a post-filter
    #: realism file, or weights holding a post-filter)
    init_from: str = "shipped"
    steps: int = 0  # total steps of the run (resumes count); 0 = the base file unchanged
    max_seconds: float = 0.0  # a wall-clock budget that only stops the run early; 0 = none
    #: residual blocks of the filter: 0 = the starting filter's (the recipe's 4 from scratch); fewer
    #: than the starting filter's: a cheaper filter started from its evenly spaced blocks (the
    #: first and the last kept) and trained on (issue 31: a filter distilled at a lower cost)
    blocks: int = 0
    crops: int = 2048  # cached 256x256 training crops
    rate_min: float = 0.0  # rate points of the cached crops (quality - 1)
    rate_max: float = 7.0
    batch_size: int = 8
    window: int = 128  # training window inside a cached crop (multiple of 16, <= 192)
    lr: float = 3e-4
    seed: int = 0
    log_every: int = field(default=25, metadata=UNTRACKED)
    checkpoint_every_s: float = field(default=240.0, metadata=UNTRACKED)
    threads: int = field(default=0, metadata=UNTRACKED)

    #: v1.6's recipe, fixed: each crop's log MSE (every rate weighs alike), no texture or
    #: adversarial term, no noise, the rate as an input; width and blocks of a new filter
    RECIPE: ClassVar[dict] = {"w_mse": 1.0, "w_tex": 0.0, "w_adv": 0.0, "mse_log": True, "noise_channels": 0,
                              "rate_input": True, "width": 48, "blocks": 4}

    def detail_config(self, train_list: str, base: str, cache_dir: str, run_dir: str, init_from: str | None,
                      shape: Mapping[str, int] | None = None):
        """The library's ``DetailTrainConfig`` (``init_from`` a detail file resolved by the caller;
        ``shape``: the starting filter's width and blocks, when it has other ones than the recipe's)."""
        from .realism.detail_loop import DetailTrainConfig

        recipe = {**self.RECIPE, **{k: int(v) for k, v in (shape or {}).items() if k in ("width", "blocks")}}
        return DetailTrainConfig(data_dirs=[train_list], base=base, cache_dir=cache_dir, out_dir=run_dir,
                                 init_from=init_from, crops=self.crops, rate_min=self.rate_min, rate_max=self.rate_max,
                                 steps=self.steps, max_seconds=self.max_seconds, batch_size=self.batch_size,
                                 window=self.window, lr=self.lr, seed=self.seed, log_every=self.log_every,
                                 checkpoint_every_s=self.checkpoint_every_s, threads=self.threads, **recipe)


#: Every section, by the dvc.yaml stage that reads it (a new stage's section is added here).
SECTIONS: dict[str, type[Section]] = {cls.STAGE or cls.SECTION: cls for cls in
                                      (DownloadParams, ValidateParams, SplitParams, SyntheticParams, TrainParams,
                                       EntropyParams, PostFilterParams, RealismParams, EvaluateParams, ClassesParams,
                                       ReportParams)}
