"""`loco export` (SavedModel for TF Serving) and `loco annotate` (count-constrained timestamps)."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import click

from loco_tf.recipes.drums_cli import MODEL_OPTION, precision_options


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.command("export")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.option("--name", required=True, help="Model name: the folder under --base-dir.")
@click.option(
    "--base-dir",
    type=click.Path(file_okay=False),
    default="saved_models",
    show_default=True,
    help="TF Serving model base folder; the export goes to BASE_DIR/NAME/VERSION/.",
)
def export(model_path: str, name: str, base_dir: str) -> None:
    """Export a drum MODEL folder (model.keras + model.json) as a SavedModel for TF Serving.

    Writes BASE_DIR/NAME/VERSION/ with the next free integer VERSION (an existing version is
    never touched): saved_model.pb and variables/ with the signatures serving_default
    (waveform + lengths), wav (WAV file bytes), stream_start and stream (chunked, exact);
    assets.extra/tf_serving_warmup_requests; loco_export.json (classes, front end, decoding);
    and a copy of model.keras/model.json (and MODEL_CARD.md), so `loco predict --model` takes
    the same folder. Then it checks the export against the Keras model on a probe signal.
    """
    import numpy as np

    from loco_tf.export import ExportedModel, ExportSpec, export_saved_model
    from loco_tf.recipes import drums

    try:
        transcriber = drums.DrumTranscriber.load(model_path)
        keras_path, json_path = drums.model_files(model_path)
    except (FileNotFoundError, ValueError, OSError) as error:
        raise click.ClickException(f"cannot load the model {model_path}: {error}") from None
    with open(json_path, encoding="utf-8") as file:
        description = json.load(file)
    spec = ExportSpec(
        transcriber.classes,
        transcriber.feature_config,
        transcriber.decoding,
        int(description.get("train_config", {}).get("k_max", 31)),
    )
    extra = [keras_path, json_path]
    card = Path(keras_path).with_name("MODEL_CARD.md")
    if card.is_file():
        extra.append(os.fspath(card))
    from loco_tf import _startup
    from loco_tf.features import compute_features

    # TensorFlow's empty error line about oneDNN and booleans is left out for the command.
    with _startup.quiet_start_up(_startup.is_command_line()):
        try:
            target = export_saved_model(transcriber.model, spec, base_dir, name, extra_files=extra)
        except (ValueError, OSError) as error:
            raise click.ClickException(f"cannot export to {base_dir}/{name}: {error}") from None

        # Check: the export equals the Keras model on 3 s of probe audio.
        config = transcriber.feature_config
        rng = np.random.default_rng(0)
        probe = (0.1 * rng.standard_normal(3 * config.sample_rate)).astype(np.float32)
        exported = ExportedModel(target).predict(probe)
    reference = transcriber.probabilities(compute_features(probe, config))
    difference = float(np.abs(exported["probabilities"] - reference).max())
    click.echo(f"Exported {model_path} -> {target}")
    click.echo("Signatures: serving_default, wav, stream_start, stream")
    click.echo(
        f"Check on 3 s of noise: max |p(t) export - p(t) Keras with NumPy features| = "
        f"{difference:.2e}"
    )
    click.echo(
        f"Serve it: tensorflow_model_server --rest_api_port=8501 --model_name={name} "
        f"--model_base_path={Path(base_dir, name).resolve()}"
    )


def _read_counts(path: str, classes) -> tuple[list[tuple[str, list[int]]], list[str]]:
    """(audio path, counts) rows of a counts CSV, and one message per unusable row."""
    base = Path(path).parent
    rows, problems = [], []
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames or []
            missing = [c for c in ("audio", *classes) if c not in header]
            if missing:
                raise click.ClickException(
                    f"{path}: missing column(s) {', '.join(missing)}; expected a header "
                    f"audio,{','.join(classes)} (one row per file, counts per class)"
                )
            for line, row in enumerate(reader, start=2):
                audio = (row["audio"] or "").strip()
                try:
                    counts = [int(row[c]) for c in classes]
                    if min(counts) < 0:
                        raise ValueError("negative")
                except (TypeError, ValueError):
                    values = ", ".join(f"{c}={row[c]!r}" for c in classes)
                    problems.append(f"{path}:{line}: counts must be integers >= 0 ({values})")
                    continue
                if not audio:
                    problems.append(f"{path}:{line}: empty audio path")
                    continue
                audio_path = Path(audio) if Path(audio).is_absolute() else base / audio
                rows.append((os.fspath(audio_path), counts))
    except OSError as error:
        raise click.ClickException(f"cannot read {path}: {error}") from None
    return rows, problems


@click.command()
@click.argument("counts_csv", metavar="COUNTS_CSV", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for one NAME.csv (time,class) per audio file.",
)
@MODEL_OPTION
@precision_options("auto")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Annotate every file again, also those an earlier run into --out finished with the "
    "same counts, model and options.",
)
def annotate(
    counts_csv: str,
    out: str,
    model_path: str | None,
    precision: str,
    bfloat16: bool,
    overwrite: bool,
) -> None:
    """Timestamps for audio whose hit counts are known (the paper's Remark in §3).

    COUNTS_CSV has a header audio,KD,SD,HH and one row per file: its path (relative to the
    CSV's folder, or absolute) and how many hits of each class it holds. For each file the
    model's p(t) is computed and the k highest peaks of each class are kept, k its count; the
    times go to OUT/NAME.csv (time,class). Files that fail are reported and the rest continue.
    As in `loco predict`, the next file's features are computed while the network finishes
    this one.

    A rerun into the same --out skips the files already annotated there (OUT/loco-annotate.json)
    with the same counts, model and options from unchanged audio: correct a count in COUNTS_CSV
    and rerun, and only that file is annotated again.
    """
    from loco_tf.events import decode_with_counts
    from loco_tf.pipelines.audio import AudioError
    from loco_tf.recipes import drums
    from loco_tf.recipes.drums_cli import (
        _encoder_dtype,
        _load,
        _model_path,
        transcribe_unless_done,
    )

    model_path = _model_path(model_path)
    encoder_dtype = _encoder_dtype(precision, bfloat16)
    transcriber = _load(model_path, encoder_dtype=encoder_dtype)
    rows, problems = _read_counts(counts_csv, transcriber.classes)
    for problem in problems:
        _log(f"error: {problem}")
    os.makedirs(out, exist_ok=True)
    record = drums.OutputRecord(
        out,
        drums.model_fingerprint(model_path, encoder_dtype=encoder_dtype),
        name=drums.ANNOTATE_RECORD,
    )
    failures, skipped = len(problems), 0
    stems = drums.output_stems([audio for audio, _ in rows])
    targets = [os.path.join(out, f"{stem}.csv") for stem in stems]
    up_to_date = [
        not overwrite and record.done(audio, stem, (target,), {"counts": counts})
        for (audio, counts), stem, target in zip(rows, stems, targets, strict=True)
    ]
    results = transcribe_unless_done(transcriber, [audio for audio, _ in rows], up_to_date)
    for (audio, counts), stem, target, transcription in zip(
        rows, stems, targets, results, strict=True
    ):
        if transcription is None:
            skipped += 1
            click.echo(f"{audio}: up to date -> {target}")
            continue
        if isinstance(transcription, AudioError):
            failures += 1
            _log(f"error: {transcription}")
            continue
        times = decode_with_counts(
            transcription.probabilities, counts, transcriber.feature_config, transcriber.decoding
        )
        try:
            drums.write_csv(target, times, transcriber.classes)
            record.add(audio, stem, {"counts": counts})
        except OSError as error:
            raise click.ClickException(f"cannot write to {out}: {error}") from None
        placed = ", ".join(
            f"{name} {len(t)}/{k}"
            for name, t, k in zip(transcriber.classes, times, counts, strict=True)
        )
        click.echo(f"{audio}: placed {placed} -> {target}", file=sys.stdout)
    if skipped:
        click.echo(
            f"{skipped} file(s) were up to date in {out} (same audio, counts, model and "
            "options); --overwrite annotates them again"
        )
    if failures:
        raise click.ClickException(f"{failures} row(s) failed (listed above)")


COMMANDS = (export, annotate)
