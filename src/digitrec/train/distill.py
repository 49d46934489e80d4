"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural
network"): one network learns to match the softened outputs of several finished runs (its teachers),
so that it can stand in for their average at the cost of one network.

The teachers' soft targets are the mean of their probabilities at temperature T (the ensemble as it
was measured: averaged probabilities), not the softmax of their mean logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from digitrec import checkpoint as ckpt
from digitrec.errors import ModelError
from digitrec.files import file_sha256


class Teachers:
    """The teacher networks, in eval mode on `device`; `soft_targets(x)` is what the student matches."""

    def __init__(self, paths: list[str], classes: int, device: torch.device):
        self.models: list[torch.nn.Module] = []
        self.record: list[dict] = []  # what the run's meta and model card say it was taught by
        for given in paths:
            path = Path(given)
            file = path / ckpt.CHECKPOINT_NAME if path.is_dir() else path
            if not file.is_file():
                raise ModelError(
                    f"distill teacher not found: {given} (resolved to {file.absolute()}); train the "
                    "teacher runs first, or fix distill.teachers (relative paths start at the current directory)"
                )
            sha256 = file_sha256(file)  # of the very bytes the weights come from: checked again below
            model, meta = ckpt.load_model(file)  # torch.load(weights_only=True); ModelError if it does not fit
            if file_sha256(file) != sha256:  # replaced while read (its run started over with --force)
                raise ModelError(f"distill teacher {given} changed while it was read; try again once its run is done")
            outputs = int(meta["config"].get("model", {}).get("classes", 10))
            if outputs != classes:
                raise ModelError(
                    f"distill teacher {given} ({meta['architecture']}) has {outputs} outputs; "
                    f"the network being trained has {classes}"
                )
            done, total = meta.get("epoch"), meta.get("epochs")
            if isinstance(done, int) and isinstance(total, int) and done < total:
                # Still training, or stopped: its checkpoint holds a half-taught network (and is
                # rewritten each epoch), which would teach silently worse answers.
                raise ModelError(
                    f"distill teacher {given} stopped after epoch {done} of {total}: finish its run "
                    f"first (digitrec train --resume --out {file.parent})"
                )
            for p in model.parameters():
                p.requires_grad_(False)
            self.models.append(model.to(device, memory_format=torch.channels_last).eval())
            self.record.append(
                {
                    "path": str(file.resolve()),
                    "sha256": sha256,
                    "recipe": meta["recipe"],
                    "seed": meta["seed"],
                    "test_accuracy": meta.get("test_accuracy"),
                }
            )

    def same_as(self, record: list[dict] | None) -> bool:
        """Whether a run's recorded teachers are these very files: by content (sha256), not by the
        absolute path they resolved to, which moves with the project folder."""
        if record is None or len(record) != len(self.record):
            return False
        return all({**old, "path": ""} == {**new, "path": ""} for old, new in zip(record, self.record))

    @torch.no_grad()
    def soft_targets(self, x: torch.Tensor, temperature: float) -> torch.Tensor:
        """float (N, 1, 28, 28) -> float32 (N, classes): the teachers' mean probabilities at T."""
        return torch.stack([F.softmax(m(x).float() / temperature, dim=1) for m in self.models]).mean(0)


def distill_loss(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(targets || softmax(student / T)), averaged over the batch. The T^2 keeps the gradient's
    size independent of T (Hinton et al. 2015, section 2), so alpha means the same at any T."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, targets, reduction="batchmean") * temperature**2
