"""The ready-made networks of `glr-train --arch`, one record each.

A record says everything a run needs to know about a network besides how to
build it: the function of `keras_glr.architectures` that builds it and the
run options it reads, the options only it has (other networks must leave
them at their defaults), the settings it trains with where they differ from
the paper's network, whether it takes flat inputs, and the network part of
its run names. A new network is one builder and one record here.

Standard library only: the command line reads it without loading TensorFlow.
"""

import dataclasses

CELLS = ("simple", "lstm", "gru")  # the cells of `architectures.rnn`
ENCODINGS = ("direct", "rate")  # the spike encoders of `architectures.snn`
CNN_POOLS = ("output", "pre-activation")  # where `architectures.small_cnn` pools


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One ready-made network.

    name: the `--arch` value. builder: the function of
    `keras_glr.architectures` that builds it, called as
    `builder(input_shape, num_classes, noise=noise, **arguments(config))`.
    options: the run options only this network reads, with their defaults.
    defaults: the run settings it trains with where the paper's network's
    differ. flat_inputs: whether images reach it flattened. stem: the
    network part of its run names, from the configuration (the name if
    None); name_format: its run names.
    """

    name: str
    builder: str
    arguments: object  # RunConfig -> dict
    help: str
    options: dict = dataclasses.field(default_factory=dict)
    defaults: dict = dataclasses.field(default_factory=dict)
    flat_inputs: bool = False
    stem: object = None  # RunConfig -> str
    name_format: str = "{dataset}_{stem}_{activation}_{loss}_{estimator}_seed{seed}"

    def run_name(self, config):
        """The name of a run of this network, e.g. "mnist5k_20_step_ce_glr_seed0" or "mnist5k_cnn_relu_ce_glr_seed0"."""
        fields = ("dataset", "activation", "loss", "estimator", "seed")
        stem = self.stem(config) if self.stem else self.name
        return self.name_format.format(stem=stem, **{name: getattr(config, name) for name in fields})


# Where a network trains with other settings than the paper's network. The
# small CNN (two noisy conv layers) trains by GLR with ReLU units, small noise
# on the max-pooled pre-activations, layer-wise injection with antithetic
# pairs and a cosine schedule (guides/variance.md); with the MLP's settings it
# does not train. Its copies are shared 1 : 2 : 4 among conv 1, conv 2 and the
# logits: a copy of a later layer's group is cheaper (it begins at that
# layer). The resnet takes the CNN's units, noise scale, injection and
# schedule; its eight noisy layers share K = 320 copies 1 : ... : 1 : 3, 32 to
# each layer and 96 to the logits, on batches of 64, where batches of 32
# carried too much noise per step (screens in guides/your-network.md). The
# networks in time take small noise, antithetic pairs and a cosine schedule;
# the rnn's 64 x 14 noise values per example need K = 300 copies and Adam
# 0.003 to come within 3 points of BPTT (0.855 with K = 100), the snn's
# spikes train with K = 64 (guides/networks-in-time.md). The transformer's
# five noisy layers (embedding, attention, the MLP's two, logits) train with
# layer-wise copies, each layer's from its own noise: with K = 100 from the
# input it was 19 points lower after 8 epochs (guides/your-network.md).
ARCHITECTURES = {
    record.name: record
    for record in (
        Architecture(
            "mlp",
            "mlp",
            lambda c: {"hidden": c.hidden, "activation": c.activation},
            "the paper's network",
            flat_inputs=True,
            stem=lambda c: "-".join(map(str, c.hidden)),
        ),
        Architecture(
            "cnn",
            "small_cnn",
            lambda c: {"filters": c.filters, "activation": c.activation, "pool": c.pool},
            "",
            options={"pool": "output"},
            defaults={
                "activation": "relu",
                "pool": "pre-activation",
                "sigma": 0.05,
                "copies": 232,
                "antithetic": True,
                "injection": "layerwise",
                "copy_split": (1, 2, 4),
                "schedule": "cosine",
            },
        ),
        Architecture(
            "resnet",
            "resnet",
            lambda c: {"filters": c.filters, "activation": c.activation},
            "residual, batch-normalized",
            defaults={
                "activation": "relu",
                "sigma": 0.05,
                "copies": 320,
                "antithetic": True,
                "injection": "layerwise",
                "copy_split": (1, 1, 1, 1, 1, 1, 1, 3),
                "schedule": "cosine",
                "batch_size": 64,
            },
        ),
        Architecture(
            "rnn",
            "rnn",
            lambda c: {"hidden": c.hidden, "cell": c.cell, "activation": c.activation},
            "rows as time steps",
            options={"cell": "simple"},
            defaults={
                "activation": "tanh",
                "hidden": (64,),
                "sigma": 0.1,
                "copies": 300,
                "antithetic": True,
                "schedule": "cosine",
                "learning_rate": 0.003,
            },
        ),
        Architecture(
            "snn",
            "snn",
            lambda c: {"hidden": c.hidden, "time_steps": c.time_steps, "encoding": c.encoding, "seed": c.seed},
            "spiking, LIF units",
            options={"time_steps": 8, "encoding": "direct"},
            defaults={"hidden": (128,), "sigma": 0.3, "copies": 64, "antithetic": True, "schedule": "cosine"},
            name_format="{dataset}_{stem}_{loss}_{estimator}_seed{seed}",  # its units always spike
        ),
        Architecture(
            "transformer",
            "transformer",
            lambda c: {"hidden": c.hidden, "heads": c.heads, "activation": c.activation},
            "rows as tokens, attention",
            options={"heads": 2},
            defaults={
                "activation": "relu",
                "hidden": (32,),
                "sigma": 0.1,
                "antithetic": True,
                "injection": "layerwise",
                "schedule": "cosine",
            },
        ),
    )
}


def get(name):
    """The record of `--arch name`. Raises ValueError naming the choices."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Invalid `arch`: {name!r}. Expected one of {list(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def describe():
    """The `--arch` help: each name with its words, e.g. "mlp (the paper's network), cnn, ..."."""
    return ", ".join(f"{r.name} ({r.help})" if r.help else r.name for r in ARCHITECTURES.values())
