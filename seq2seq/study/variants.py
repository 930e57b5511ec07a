"""Study variants: a name says the whole architecture, e.g. ``lstm-bi-2layer-residual``.

Grammar: ``CELL-DIRECTION[-OPTION...]`` with CELL ``rnn|gru|lstm``, DIRECTION ``uni|bi``
(the encoder) and options ``Nlayer`` (N stacked encoder layers, N >= 2), ``residual``
(needs 2+ layers), ``noclip`` (gradient clipping off) and ``noattn`` or ``luong`` (instead
of additive attention). Everything else comes from the preset, so each variant differs from
its neighbours in the grid by exactly what its name says.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from seq2seq.config import Config, ConfigError

CELLS = ("rnn", "gru", "lstm")
DIRECTIONS = {"uni": False, "bi": True}
DEFAULT_CLIPNORM = 1.0

DEFAULT_GRID = (
    "rnn-uni",
    "rnn-bi",
    "gru-uni",
    "gru-bi",
    "lstm-uni",
    "lstm-bi",
    "gru-bi-2layer",
    "gru-bi-2layer-residual",
    "rnn-bi-noclip",
    "gru-bi-noclip",
    "gru-bi-noattn",
)

GRAMMAR = (
    "CELL-DIRECTION[-OPTION...]: CELL rnn|gru|lstm, DIRECTION uni|bi, options Nlayer (N >= 2), "
    "residual (needs 2+ layers), noclip, noattn or luong; e.g. lstm-bi-2layer-residual"
)


class VariantError(ValueError):
    """A variant name that does not follow the grammar."""


@dataclass(frozen=True)
class Variant:
    name: str
    cell: str
    bidirectional: bool
    layers: int = 1
    residual: bool = False
    clip: bool = True
    attention: str = "bahdanau"

    def describe(self) -> dict:
        return {
            "cell": self.cell,
            "encoder": "bidirectional" if self.bidirectional else "unidirectional",
            "layers": self.layers,
            "residual": self.residual,
            "clipping": self.clip,
            "attention": self.attention,
        }

    def apply(self, config: Config) -> Config:
        """The preset's config with this variant's architecture and clipping."""
        model = dataclasses.replace(
            config.model,
            cell=self.cell,
            bidirectional=self.bidirectional,
            encoder_layers=self.layers,
            residual=self.residual,
            attention=self.attention,
            input_feeding=config.model.input_feeding and self.attention != "none",
        )
        clipnorm = (config.train.clipnorm or DEFAULT_CLIPNORM) if self.clip else 0.0
        train = dataclasses.replace(config.train, clipnorm=clipnorm)
        return config.replace(name=f"{config.name}-{self.name}", model=model, train=train)


def parse_variant(name: str) -> Variant:
    """``lstm-bi-2layer-residual`` -> Variant; a bad name raises VariantError with the grammar."""
    parts = name.strip().lower().split("-")

    def fail(why: str) -> VariantError:
        return VariantError(f"bad variant name {name!r}: {why}. Names are {GRAMMAR}")

    if len(parts) < 2 or parts[0] not in CELLS:
        raise fail(f"it must start with a cell ({', '.join(CELLS)})")
    if parts[1] not in DIRECTIONS:
        raise fail("the second part must be the encoder direction (uni or bi)")
    settings: dict = {}
    for option in parts[2:]:
        layers = re.fullmatch(r"(\d+)layers?", option)
        key = "layers" if layers else option
        if key in settings or (key in ("noattn", "luong") and {"noattn", "luong"} & set(settings)):
            raise fail(f"{option!r} conflicts with an earlier option")
        if layers:
            count = int(layers.group(1))
            if count < 2:
                raise fail("a layer count must be 2 or more (1 layer is the default)")
            settings["layers"] = count
        elif option in ("residual", "noclip", "noattn", "luong"):
            settings[option] = True
        else:
            raise fail(f"unknown option {option!r}")
    layers = settings.get("layers", 1)
    if settings.get("residual") and layers < 2:
        raise fail("residual connections join stacked layers: add e.g. -2layer")
    attention = "none" if settings.get("noattn") else "luong" if settings.get("luong") else None
    return Variant(
        name=canonical_name(parts[0], parts[1], layers, settings),
        cell=parts[0],
        bidirectional=DIRECTIONS[parts[1]],
        layers=layers,
        residual=bool(settings.get("residual")),
        clip=not settings.get("noclip"),
        attention=attention or "bahdanau",
    )


def canonical_name(cell: str, direction: str, layers: int, options: dict) -> str:
    """Options in one fixed order, so two spellings of a variant are one variant."""
    parts = [cell, direction] + ([f"{layers}layer"] if layers > 1 else [])
    parts += [o for o in ("residual", "noclip", "noattn", "luong") if options.get(o)]
    return "-".join(parts)


def parse_variants(names: list[str]) -> list[Variant]:
    """Parsed and de-duplicated (by canonical name), in the order given."""
    variants: dict[str, Variant] = {}
    for name in names:
        if name.strip():
            variant = parse_variant(name)
            variants.setdefault(variant.name, variant)
    if not variants:
        raise VariantError(f"no variant named; names are {GRAMMAR}")
    return list(variants.values())


def check_config(variant: Variant, config: Config) -> None:
    """The variant applied to the preset must be a valid config (e.g. tied embeddings)."""
    from seq2seq.config import validate

    try:
        validate(variant.apply(config))
    except ConfigError as error:
        raise VariantError(f"variant {variant.name!r} does not fit the preset: {error}") from None
