"""A reproduction's measurements, read by name: each model's results, the report's columns, and their summaries.

Each model's results are the JSON object `evaluation.evaluate` returns for
it, as cached in out/evaluations/<label>.json (that format is kept);
`Measurements` reads it by what was measured, and `Evaluations` holds every
model's, or the error that stopped it. The report's columns come from the
measurement plans (`protocol.Plans`), so an attack added to a plan is a
column without further edits.
"""

import dataclasses
import json

from keras_glr._src import seed_statistics
from keras_glr.robustness import attacks


@dataclasses.dataclass(frozen=True)
class Measurements:
    """One model's results (`label`'s entries of the cached `evaluation.evaluate` object)."""

    label: str
    values: dict

    def clean(self):
        return self.values["clean"][self.label]

    def attack(self, key, eps):
        """Accuracy under attack `key` (a `Plans.key`) at `eps`."""
        return self.values["attacks"][key][str(eps)][self.label]

    def minimum_norm(self, key):
        """Accuracy under a minimum-norm attack (L-BFGS, CW), which takes no eps."""
        return self.values["attacks"][key]["min"][self.label]

    def corruption(self, name):
        """Mean accuracy over the five severities of corruption `name`."""
        return self.values["corruption_means"][name][self.label]

    def corruptions_mean(self):
        return self.values["corruption_overall"][self.label]

    def certified(self):
        """The certificate's summary: accuracy per radius, median_radius, operator_norm, norm."""
        return self.values["certified"][self.label]

    def checklist(self):
        """The checklist's result ({"checks", "flags", ...}), or None where it did not run."""
        return self.values.get("checklist", {}).get(self.label)


class Evaluations:
    """Every model's `Measurements`, or the error that kept it from being measured.

    by_label: {label: the cached results object, or an error string}.
    """

    def __init__(self, by_label):
        self.by_label = dict(by_label)

    def measured(self, label):
        """`label`'s `Measurements`, or None (not measured, or failed)."""
        values = self.by_label.get(label)
        return Measurements(label, values) if isinstance(values, dict) else None

    def error(self, label):
        """Why `label` has no measurements, or None."""
        values = self.by_label.get(label)
        return values if isinstance(values, str) else None

    def seeds(self, labels):
        """How many of `labels` (one per seed) were measured."""
        return sum(self.measured(label) is not None for label in labels)

    def summary(self, labels, read):
        """`seed_statistics.SeedSummary` of `read(measurements)` over the measured `labels` that hold it."""
        values = []
        for label in labels:
            found = self.measured(label)
            if found is not None:
                try:
                    values.append(read(found))
                except KeyError:
                    pass
        return seed_statistics.summarize(values)

    def merged(self):
        """The measured models' results as one `evaluation.evaluate` object (for `report.write`), or None."""
        merged = None
        for results in (v for v in self.by_label.values() if isinstance(v, dict)):
            if merged is None:
                merged = json.loads(json.dumps(results))
                continue
            label = results["models"][0]
            merged["models"].append(label)
            merged["groups"][label] = results["groups"][label]
            merged["clean"][label] = results["clean"][label]
            for name, by_eps in results["attacks"].items():
                for eps, values in by_eps.items():
                    merged["attacks"].setdefault(name, {}).setdefault(eps, {}).update(values)
            for key in ("corruptions", "corruption_means"):
                for name, values in results.get(key, {}).items():
                    merged[key].setdefault(name, {}).update(values)
            merged.setdefault("corruption_overall", {}).update(results.get("corruption_overall", {}))
            for key in ("checklist", "certified"):
                merged.setdefault(key, {}).update(results.get(key, {}))
        return merged


@dataclasses.dataclass(frozen=True)
class Column:
    """A column of the report: its header and how it reads one model's `Measurements`."""

    name: str
    read: object  # Measurements -> float
    eps: float = None  # the attack's eps, None elsewhere
    attack: str = None  # the attack's results key, None elsewhere


def title(name, eps=None, kind=""):
    """A column header: "transfer FGSM 0.1", "transfer L-BFGS", "white-box PGD 0.1", "SPSA 0.1", "worst case 0.1"."""
    words = (f"{kind} " if kind else "") + attacks.get(name).title
    return words if eps is None else f"{words} {eps}"


def attack_columns(plans):
    """The attack columns of `plans` (`protocol.Plans`), transfer first, each attack at each eps of its plan.

    Transfer attacks (crafted on the surrogate: the paper's protocol) are
    labelled "transfer"; a white-box attack also run as transfer, "white-box".
    """
    out = []
    for plan in (plans.transfer, *plans.white_box()):
        for name in plan.attacks:
            key = plans.key(plan, name)
            kind = "transfer" if plan is plans.transfer else "white-box" if key != name else ""
            if not attacks.get(name).uses_eps:
                out.append(Column(title(name, kind=kind), lambda m, k=key: m.minimum_norm(k), attack=key))
                continue
            for eps in plan.eps:
                read = lambda m, k=key, e=eps: m.attack(k, e)  # noqa: E731
                out.append(Column(title(name, eps, kind), read, eps=eps, attack=key))
    return out


def columns(plans, corruptions, radii):
    """{header: Column} for every measurement of a reproduction."""
    found = [Column("clean", Measurements.clean)]
    found += attack_columns(plans)
    found += [Column(name.replace("_", " "), lambda m, n=name: m.corruption(n)) for name in corruptions]
    found.append(Column("corruptions mean", Measurements.corruptions_mean))
    found += [
        Column(f"certified {radius}", lambda m, i=i: m.certified()["accuracy"][i]) for i, radius in enumerate(radii)
    ]
    return {column.name: column for column in found}
