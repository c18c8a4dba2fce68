"""Memory, speed and energy as a task of ``kompakt bench``: the artifact timed on the backend that runs its format.

Unlike the quality tasks it does not use the model loaded for quality: each backend loads the
artifact as stored (:mod:`harness.measure.efficiency`), after the quality model has been freed.

A variant is timed paired with the reference on the same backend
(:mod:`harness.measure.efficiency.pairing`): alternating blocks in one run, speed-ups with their
confidence intervals in each throughput figure's ``paired`` record. The reference itself is timed
against a separately loaded copy of itself (the A/A check: its speed-up must read 1.00 within its
interval). Where the reference cannot run on the variant's backend, the figures are timed alone and
a note says why.
"""

from __future__ import annotations

from typing import Any

from harness.measure.tasks.base import Task, TaskContext, TaskPayload


class EfficiencyTask(Task):
    name = "efficiency"
    needs_model = False
    pairs_with_reference = True

    def cache_settings(self, config: Any) -> dict[str, Any]:
        settings = {"threads": config.threads, "backend": config.backend}
        repeats = getattr(config, "repeats_per_block", None)
        if repeats is not None:  # keyed only when set, so the measurements cached before stay found
            settings["repeats_per_block"] = repeats
        return settings

    def run(self, ctx: TaskContext) -> TaskPayload:
        from harness.measure.backends import BackendError, backend_class, backends_for
        from harness.measure.efficiency import measure

        artifact = ctx.artifact
        name = ctx.config.backend
        if name is None:
            names = backends_for(artifact.format)
            if not names:
                raise BackendError(f"no efficiency backend runs artifacts of format {artifact.format!r}")
            name = names[0]
        elif artifact.format not in backend_class(name).formats:
            raise BackendError(f"the {name} backend runs {', '.join(backend_class(name).formats)} artifacts, "
                               f"not this variant's {artifact.format!r} (leave --backend out to use one that does)")
        reference, notes = None, []
        if ctx.reference is not None:
            from harness.measure.efficiency import PairedReference

            try:
                path, label = ctx.reference.for_backend(name)
            except Exception as err:  # the reference cannot run on this backend: time alone, say why
                notes.append(f"speed timed alone, not paired with the reference: {type(err).__name__}: {err}")
            else:
                # the reference's own job: a second load of the same files, the A/A check
                from harness.measure.efficiency import PairedRule

                repeats = getattr(ctx.config, "repeats_per_block", None)
                rule = PairedRule() if repeats is None else PairedRule(repeats=repeats)
                reference = PairedReference(path, label, aa_check=artifact.key == ctx.reference.key, rule=rule)
        eff = measure(artifact.model_path, ctx.config.profile, backend=name, artifact_path=artifact.path, log=ctx.say,
                      reference=reference)
        return TaskPayload(
            efficiency={
                "memory": eff.memory.model_dump(mode="json") if eff.memory else None,
                "throughput": [t.model_dump(mode="json") for t in eff.throughput],
                "energy": [e.model_dump(mode="json") for e in eff.energy],
            },
            notes=notes + list(eff.notes),
            software=dict(eff.software),
        )


EFFICIENCY = EfficiencyTask()
