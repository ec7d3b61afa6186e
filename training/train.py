"""The training loop: Adam, seeded, keeping the weights of the best validation epoch.

Read top to bottom: set-up, one epoch, validation, the loop with checkpoints. Interrupting
(Ctrl-C) stops after the current batch and keeps the best epoch so far; `resume=True`
continues from the checkpoint that each epoch writes.
"""

from __future__ import annotations

import copy
import io
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from corel.files import atomic_write
from training.config import TrainConfig
from training.data import Dataset
from training.encoders import build_encoder
from training.losses import ClassVectorLoss, build_loss
from training.losses.auxiliary import (
    InstanceContrastLoss,
    RotationLoss,
    augment_each,
    mix_other_class,
    orthogonal_to_classes,
    rotate_each,
)
from training.open_set import WithFeatures, has_features
from training.results import EpochRow
from training.text import vocabulary
from training.word_vectors import SOURCES, initialise_embeddings

log = logging.getLogger(__name__)

EVAL_BATCH = 1024


StateDict = dict[str, torch.Tensor]


@dataclass
class TrainResult:
    config: TrainConfig
    encoder: nn.Module  # with the weights of the best epoch, in eval mode
    loss: ClassVectorLoss  # likewise: its class vectors are the bundle's
    history: list[EpochRow]  # one row per epoch run
    best_epoch: int
    best_val_accuracy: float
    seconds: float
    interrupted: bool = False


@dataclass
class BestEpoch:
    """The epoch with the best validation accuracy so far, and its weights."""

    epoch: int = 0
    val_accuracy: float = -1.0
    encoder: StateDict | None = None
    loss: StateDict | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def embed(encoder: nn.Module, x: np.ndarray, data: Dataset) -> torch.Tensor:  # (N, D)
    encoder.eval()
    chunks = [
        encoder(torch.from_numpy(data.model_input(x[i : i + EVAL_BATCH])))
        for i in range(0, len(x), EVAL_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.empty(0)


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to 2 pixels (zero padded), per image."""
    n = batch.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    padded = nn.functional.pad(batch, (2, 2, 2, 2))
    dy, dx = torch.randint(0, 5, (2,), generator=generator).tolist()  # one shift per batch
    return padded[..., dy : dy + batch.shape[-2], dx : dx + batch.shape[-1]]


def forward_with_layer(
    encoder: nn.Module, x: torch.Tensor, layer: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, the layer an auxiliary term acts on): for the CNN and `features`, its flattened
    convolutions (the bundle's `features` output, training/open_set.py); otherwise h."""
    if layer == "features" and has_features(encoder):
        h, features = WithFeatures(encoder)(x)
        return h, features
    h = encoder(x)
    return h, h


def aux_width(encoder: nn.Module, layer: str, embedding_dim: int) -> int:
    if layer == "features" and has_features(encoder):
        first = encoder.head[1]
        assert isinstance(first, nn.Linear)
        return first.in_features
    return embedding_dim


def build_aux_head(config: TrainConfig, encoder: nn.Module) -> nn.Module | None:
    """The auxiliary objective's own trained part (a head thrown away after training)."""
    width = aux_width(encoder, config.aux_layer, config.embedding_dim)
    if config.aux_loss == "instance":
        return InstanceContrastLoss(width, config.aux_temperature)
    if config.aux_loss == "rotation":
        return RotationLoss(width)
    return None


def auxiliary_term(
    config: TrainConfig,
    encoder: nn.Module,
    loss: ClassVectorLoss,
    aux_head: nn.Module | None,
    xb: torch.Tensor,
    yb: torch.Tensor,
    layer: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """The auxiliary objective of one batch (config.aux_loss; zero for vectors)."""
    if config.aux_loss == "instance" and aux_head is not None and xb.ndim == 4:
        _, other_view = forward_with_layer(encoder, augment_each(xb, generator), config.aux_layer)
        contrast: torch.Tensor = aux_head(layer, other_view)
        return contrast
    if config.aux_loss == "rotation" and aux_head is not None and xb.ndim == 4:
        turned, turns = rotate_each(xb, generator)
        _, z = forward_with_layer(encoder, turned, config.aux_layer)
        which_way: torch.Tensor = aux_head(z, turns)
        return which_way
    if config.aux_loss == "outlier" and xb.ndim == 4:
        return orthogonal_to_classes(encoder(mix_other_class(xb, yb, generator)), loss.weight)
    return layer.sum() * 0.0


def fit_class_vectors(encoder: nn.Module, loss: ClassVectorLoss, data: Dataset) -> None:
    """For losses without learned class vectors: class means over (part of) the train set."""
    if loss.learns_class_vectors:
        return
    subset = slice(0, 10_000)
    loss.fit_class_vectors(
        embed(encoder, data.x_train[subset], data), torch.from_numpy(data.y_train[subset])
    )


def validation_accuracy(encoder: nn.Module, loss: ClassVectorLoss, data: Dataset) -> float:
    h = embed(encoder, data.x_val, data)
    loss.eval()
    with torch.no_grad():
        predicted = loss.scores(h).argmax(1).numpy()
    return float((predicted == data.y_val).mean())


def start_from_word_vectors(encoder: nn.Module, data: Dataset, name: str) -> None:
    """Fill the text encoder's embedding table from pretrained word vectors where they know
    the word (training/word_vectors.py); the table stays a parameter, fine-tuned with the
    rest. It copies rows and draws no random numbers, so the rest of the run (weights,
    class vectors, shuffling) is the same as from scratch with the same seed and width."""
    words = getattr(encoder, "words", None)
    if not isinstance(words, nn.Embedding) or data.text is None:
        raise ValueError(f"word_vectors {name} needs text and a text encoder (text-ffnn, text-cnn)")
    vocab = vocabulary(data.text.tokenizer_json)
    found = initialise_embeddings(words.weight, vocab, name)
    log.info(
        "word vectors: %d of the vocabulary's %d words (%.1f %%, [PAD] and [UNK] aside) "
        "start from %s; the rest are random; all fine-tuned",
        found,
        len(vocab) - 2,
        100 * found / max(len(vocab) - 2, 1),
        SOURCES[name].title,
    )


def train(
    config: TrainConfig,
    data: Dataset,
    *,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    # -- set-up ---------------------------------------------------------------------------
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    encoder = build_encoder(
        config.encoder,
        data.kind,
        data.shape,
        config.embedding_dim,
        config.leaky_slope,
        config.final_activation,
        vocab_size=data.vocab_size,
        word_dim=config.word_width,
    )
    if config.word_vectors != "none":
        start_from_word_vectors(encoder, data, config.word_vectors)
    loss = build_loss(
        config.loss,
        len(data.labels),
        config.embedding_dim,
        lam=config.lam,
        gamma=config.gamma,
        center_alpha=config.center_alpha,
        margin=config.margin,
    )
    aux_head = build_aux_head(config, encoder)
    aux_parameters = [] if aux_head is None else list(aux_head.parameters())
    optimizer = torch.optim.Adam(
        [*encoder.parameters(), *loss.parameters(), *aux_parameters], lr=config.lr
    )
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        if config.lr_schedule == "cosine"
        else None
    )
    x_train, y_train = data.x_train, data.y_train
    if config.max_train is not None:
        x_train, y_train = x_train[: config.max_train], y_train[: config.max_train]
    generator = torch.Generator().manual_seed(config.seed)

    history: list[EpochRow] = []
    best = BestEpoch()
    start_epoch, elapsed = 1, 0.0
    if resume and checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)  # tensors and plain data, no code
        # Compare as configs, so a checkpoint from before a new option (at its default) resumes.
        if TrainConfig.from_dict(state["config"]) != config:
            raise ValueError(f"{checkpoint} was written with a different config; not resuming")
        encoder.load_state_dict(state["encoder"])
        loss.load_state_dict(state["loss"])
        if aux_head is not None:
            aux_head.load_state_dict(state["aux"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = [EpochRow(**row) for row in state["history"]]
        best, elapsed = BestEpoch(**state["best"]), state["seconds"]
        start_epoch = len(history) + 1
        log.info("resumed from %s at epoch %d", checkpoint, start_epoch)

    # -- the loop -------------------------------------------------------------------------
    interrupted = False
    started = time.perf_counter() - elapsed
    epochs = tqdm(
        range(start_epoch, config.epochs + 1),
        desc=f"{config.loss}",
        unit="epoch",
        disable=not progress,
        initial=start_epoch - 1,
        total=config.epochs,
    )
    try:
        for epoch in epochs:
            epoch_start = time.perf_counter()
            encoder.train()
            loss.train()
            order = torch.randperm(len(x_train), generator=generator).numpy()
            total, correct, seen = 0.0, 0, 0
            batches = tqdm(
                range(0, len(order), config.batch_size),
                leave=False,
                disable=not progress,
                desc=f"epoch {epoch}",
                unit="batch",
            )
            for start in batches:
                index = order[start : start + config.batch_size]
                xb = torch.from_numpy(data.model_input(x_train[index]))
                yb = torch.from_numpy(y_train[index])
                if config.augment and data.kind == "image":
                    xb = augment(xb, generator)
                h, layer = forward_with_layer(encoder, xb, config.aux_layer)  # h: (B, D)
                batch_loss = loss(h, yb)
                if config.aux_loss != "none":
                    batch_loss = batch_loss + config.aux_weight * auxiliary_term(
                        config, encoder, loss, aux_head, xb, yb, layer, generator
                    )
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
                total += float(batch_loss.detach()) * len(index)
                with torch.no_grad():
                    correct += int((loss.scores(h).argmax(1) == yb).sum())
                seen += len(index)
                batches.set_postfix(loss=f"{total / seen:.4f}")
            if scheduler is not None:
                scheduler.step()

            fit_class_vectors(encoder, loss, data)
            val_accuracy = validation_accuracy(encoder, loss, data)
            row = EpochRow(
                epoch=epoch,
                train_loss=total / seen,
                train_accuracy=correct / seen,
                val_accuracy=val_accuracy,
                lr=float(optimizer.param_groups[0]["lr"]),
                seconds=time.perf_counter() - epoch_start,
            )
            history.append(row)
            if val_accuracy > best.val_accuracy:
                best = BestEpoch(
                    epoch,
                    val_accuracy,
                    copy.deepcopy(encoder.state_dict()),
                    copy.deepcopy(loss.state_dict()),
                )
            epochs.set_postfix(
                loss=f"{row.train_loss:.4f}",
                val_acc=f"{val_accuracy:.4f}",
                best=f"{best.val_accuracy:.4f}@{best.epoch}",
            )
            log.info(
                "epoch %d: loss %.4f train_acc %.4f val_acc %.4f (%.1fs)",
                epoch,
                row.train_loss,
                row.train_accuracy,
                val_accuracy,
                row.seconds,
            )
            if checkpoint is not None:
                _save_checkpoint(
                    checkpoint,
                    config,
                    encoder,
                    loss,
                    aux_head,
                    optimizer,
                    scheduler,
                    generator,
                    history,
                    best,
                    time.perf_counter() - started,
                )
            if config.patience is not None and epoch - best.epoch >= config.patience:
                log.info("no better validation accuracy for %d epochs; stopping", config.patience)
                break
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: keeping the best epoch so far (%s)", best.epoch or "none")
    if best.encoder is None or best.loss is None:
        raise RuntimeError("training stopped before a single epoch finished")

    encoder.load_state_dict(best.encoder)
    loss.load_state_dict(best.loss)
    encoder.eval()
    loss.eval()
    return TrainResult(
        config,
        encoder,
        loss,
        history,
        best.epoch,
        best.val_accuracy,
        time.perf_counter() - started,
        interrupted,
    )


def _save_checkpoint(
    path: Path,
    config: TrainConfig,
    encoder: nn.Module,
    loss: nn.Module,
    aux_head: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    generator: torch.Generator,
    history: list[EpochRow],
    best: BestEpoch,
    seconds: float,
) -> None:
    # plain dicts and lists inside: a checkpoint outlives these classes' current shapes
    state = {
        "config": config.to_dict(),
        "encoder": encoder.state_dict(),
        "loss": loss.state_dict(),
        "aux": None if aux_head is None else aux_head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "generator": generator.get_state(),
        "history": [asdict(row) for row in history],
        "best": vars(best),
        "seconds": seconds,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())  # an interrupted save never breaks a checkpoint
