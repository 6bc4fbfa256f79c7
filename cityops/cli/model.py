"""The text model (`model train`) and its measurement (`eval classify`, `eval dispatch`)."""

from __future__ import annotations

from pathlib import Path

import typer

from cityops.cli.common import (
    API_URL,
    call_api,
    current_settings,
    offline_pipeline,
    print_json,
    require_kafka,
    say,
    trained_model,
)

app = typer.Typer(help="The text model: train it offline, from the real labelled messages.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure the classifier and the dispatch on labelled data.", no_args_is_help=True)


@app.command("train")
def model_train(
    data: Path = typer.Option(None, exists=True, dir_okay=False, help="labelled JSONL (title, text, label); "
                              "default: the shared labelled-large.jsonl (else labelled.jsonl)"),
    out: Path = typer.Option(None, help="model directory; default CITYOPS_MODEL_DIR"),
    with_rulings: bool = typer.Option(False, "--with-rulings", help="instead: a candidate that also learns from the "
                                      "operators' rulings and departments' returns, made CURRENT only when it beats "
                                      "the model in force on the later ones"),
    rulings: Path = typer.Option(None, exists=True, dir_okay=False, help="with --with-rulings: the rulings as GET "
                                 "/operator/rulings gives them (a JSON list); default: asked of the api"),
    cut_off: str = typer.Option(None, "--cut-off", help="with --with-rulings: learn from the rulings before this ISO "
                                "time, judge on those after; default: the time four fifths of them came before"),
    api: str = API_URL,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train the top-level-class model and make it CURRENT in the model directory; or, --with-rulings, a
    candidate from the rulings, promoted only when it is better (time-ordered: never judged on what it learnt)."""
    from pipeline.modelfiles import train_from_files, training_file

    settings = current_settings()
    if with_rulings:
        _train_with_rulings(settings.model_copy(update={"model_dir": out or settings.model_dir}), rulings, cut_off,
                            api, as_json)
        return
    data = data or training_file(settings.messages_dir)
    if data is None:
        typer.echo(f"no labelled messages under {settings.messages_dir}: pass --data FILE", err=True)
        raise typer.Exit(2)
    typer.echo(f"training on {data}…", err=True)
    target = train_from_files(data, settings.messages_dir / "taxonomy.csv", out or settings.model_dir,
                              settings.dutylist_file, settings.units_file)
    typer.echo(f"trained {target.name} in {target.parent}")


# Fewer later rulings than this judge nothing: the candidate is not promoted.
MIN_RULINGS_TO_JUDGE = 20


def _train_with_rulings(settings, rulings_file: Path | None, cut_off: str | None, api: str, as_json: bool) -> None:
    import datetime as dt
    import json

    from pipeline.dispatch_eval import figures, routing_decider
    from pipeline.dutylists import CITY_TZ
    from pipeline.learning import as_truths, examples_from_rulings, promotion
    from pipeline.modelfiles import unit_rows
    from pipeline.textmodel import document, with_unit_head

    in_force = trained_model(settings)
    if in_force is None:
        say(f"no model in {settings.model_dir} to improve on: run `cityops model train` first")
        raise typer.Exit(2)
    book, locator, _ = offline_pipeline(settings)
    rows = json.loads(rulings_file.read_text(encoding="utf-8")) if rulings_file else call_api(api, "/operator/rulings")
    dated = sorted(examples_from_rulings(rows, book), key=lambda pair: pair[0])
    try:
        cut = dt.datetime.fromisoformat(cut_off) if cut_off else None
    except ValueError:
        say("--cut-off: an ISO time, e.g. 2026-12-01T00:00:00+08:00")
        raise typer.Exit(2) from None
    if cut is not None and cut.tzinfo is None:
        cut = cut.replace(tzinfo=CITY_TZ)  # a time without an offset is the city's
    if cut is None and dated:
        cut = dt.datetime.fromisoformat(dated[len(dated) * 4 // 5][0])
    before = [e for at, e in dated if cut is None or dt.datetime.fromisoformat(at) < cut]
    after = [e for at, e in dated if cut is not None and dt.datetime.fromisoformat(at) >= cut]
    known = unit_rows(settings.messages_dir, book)
    say(f"candidate: the model in force's unit head learnt again with {len(before)} rulings before {cut}…")
    candidate = with_unit_head(in_force, [(document(t, x), u) for source in known.values() for t, x, u in source]
                               + [(document(e.title, e.text), e.unit) for e in before],
                               note={"rulings": len(before), "rulings_cut_off": cut.isoformat() if cut else None})
    report: dict = {"in_force": in_force.version, "candidate": candidate.version, "rulings": len(rows),
                    "examples": len(dated), "learnt_from": len(before), "judged_on": len(after),
                    "cut_off": cut.isoformat() if cut else None}
    if len(after) < MIN_RULINGS_TO_JUDGE:
        report |= {"promoted": False, "why": f"{len(after)} rulings after the cut-off: at least "
                                             f"{MIN_RULINGS_TO_JUDGE} are needed to judge a candidate"}
    else:
        decide, truths = routing_decider(book, locator, settings.classify_threshold), as_truths(after)
        now_figures, new_figures = figures(truths, decide(in_force, truths)), figures(truths, decide(candidate, truths))
        promoted, why = promotion(now_figures, new_figures)
        report |= {"promoted": promoted, "why": why,
                   "figures": {name: {k: f[k] for k in ("sent_share", "right_unit_of_sent", "sent_at_95_right_unit")}
                               for name, f in (("in_force", now_figures), ("candidate", new_figures))}}
        if promoted:
            report["saved"] = str(candidate.save(settings.model_dir))
    if as_json:
        print_json(report, True)
    else:
        verdict = "promoted: CURRENT is now " + candidate.version if report["promoted"] else "not promoted"
        typer.echo(f"{verdict} ({report['why']}); learnt from {len(before)} rulings, judged on {len(after)}")


@app.command("publish")
def model_publish(
    version: str = typer.Option(None, help="a version the model directory holds; default: the one CURRENT names"),
    by: str = typer.Option("", help="who puts it in force (kept on the topic)"),
    note: str = typer.Option("", help="why"),
) -> None:
    """Put a model in force on every running worker, without a restart: they load it from the model
    directory they share (CITYOPS_MODEL_DIR) and every decision after names it."""
    settings = current_settings()
    require_kafka(settings)
    folder = _model_folder(settings.model_dir, version)
    offset = _publish_model(settings, folder, by, note or "published")
    typer.echo(f"model {folder.name.removeprefix('topclass-')} published at offset {offset}: every worker loads it")


@app.command("rollback")
def model_rollback(by: str = typer.Option("", help="who rolls it back (kept on the topic)")) -> None:
    """Put back in force the model published before the one in force (before any: the one CURRENT names
    in the model directory), on every running worker."""
    from infra.kafka.reader import read_all
    from schemas import ModelVersion
    from schemas.topics import TopicNames

    settings = current_settings()
    require_kafka(settings)
    published = [ModelVersion.model_validate_json(v) for v in read_all(settings, TopicNames(settings.topic_prefix).models)]
    if not published:
        say("no model has been published: the workers run the one CURRENT names (`cityops model publish`)")
        raise typer.Exit(2)
    in_force = published[-1].version
    # The one published before; before any, the model directory's CURRENT (what the workers ran first).
    first = _model_folder(settings.model_dir, None).name.removeprefix("topclass-")
    earlier = [p.version for p in published if p.version != in_force] or ([first] if first != in_force else [])
    if not earlier:
        say(f"no model before {in_force} to roll back to")
        raise typer.Exit(2)
    folder = _model_folder(settings.model_dir, earlier[-1])
    offset = _publish_model(settings, folder, by, f"rollback from {in_force}")
    typer.echo(f"model {earlier[-1]} back in force (was {in_force}), offset {offset}")


def _model_folder(model_dir: Path, version: str | None) -> Path:
    """The folder of `version` (default: CURRENT's) in the model directory, when it holds a model of this code's kind."""
    from pipeline.textmodel import MODEL_KIND, TopClassModel

    current = model_dir / "CURRENT"
    name = f"topclass-{version}" if version else (current.read_text(encoding="utf-8").strip() if current.exists() else "")
    if not name or (TopClassModel.meta_of(model_dir / name) or {}).get("kind") != MODEL_KIND:
        say(f"no model {version or '(CURRENT)'} of this code's kind in {model_dir}: `cityops model train` makes one")
        raise typer.Exit(2)
    return model_dir / name


def _publish_model(settings, folder: Path, by: str, note: str) -> int:
    import datetime as dt

    from infra.kafka.feeder import publish
    from schemas import ModelVersion
    from schemas.topics import TopicNames

    version = folder.name.removeprefix("topclass-")
    message = ModelVersion(version=version, folder=folder.name, published_at=dt.datetime.now(dt.timezone.utc),
                           published_by=by, note=note)
    return publish(settings, TopicNames(settings.topic_prefix).models, version, message)


@eval_app.command("classify")
def eval_classify(
    data: Path = typer.Option(..., exists=True, dir_okay=False, help="JSONL rows with title, text, label"),
    cv: int = typer.Option(0, help="K > 1: cross-validate on DATA instead (the trained model is not used)"),
    model_dir: Path = typer.Option(None, help="default CITYOPS_MODEL_DIR"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Accuracy, macro-F1 and per-class figures of the top-level class on DATA."""
    import json

    from pipeline.modelfiles import evaluate_file

    settings = current_settings()
    model_dir = model_dir or settings.model_dir
    if cv <= 1:  # a fresh checkout has no model yet: train it as `cityops model train` would (to stderr)
        trained_model(settings.model_copy(update={"model_dir": model_dir}))
    report = evaluate_file(data, model_dir, settings.messages_dir / "taxonomy.csv",
                           cv=cv, dutylist_file=settings.dutylist_file, units_file=settings.units_file)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    typer.echo(f"n={report['n']} accuracy={report['accuracy']:.3f} macro_f1={report['macro_f1']:.3f} ({report['method']})")
    for point in report["coverage_curve"]:
        if point["accuracy"] is not None:
            typer.echo(f"  confidence ≥ {point['threshold']:.2f}: coverage {point['coverage']:.1%}, "
                       f"accuracy {point['accuracy']:.1%}")
    for name, figures in report["per_class"].items():
        typer.echo(f"  {name:<10} P={figures['precision']:.3f} R={figures['recall']:.3f} F1={figures['f1']:.3f} n={figures['n']}")


@eval_app.command("dispatch")
def eval_dispatch(
    data: Path = typer.Option(None, exists=True, dir_okay=False, help="JSONL like dispatch-silver.jsonl (id, title, "
                              "text, item_a, item_b, item); default: the shared dispatch-silver.jsonl"),
    replied: bool = typer.Option(True, "--replied/--no-replied", help="also the replied messages whose government "
                                 "reply names the unit that handled them"),
    folds: int = typer.Option(5, min=2, help="folds of the cross-validation when the data taught the unit head"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dispatch measured by the unit a ticket reaches: the share sent automatically, the share of those to
    the right primary unit (主责) and item, by class and item, the coverage curve over the confidence,
    the worst confusions; by the unit gate and, beside it, the class gate (the decision before)."""
    import json

    settings = current_settings()
    report = dispatch_figures(settings, data, replied, folds)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    for name in report["sets"]:
        for gate in ("class_gate", "unit_gate"):
            if gate in report["sets"][name]:
                f = report["sets"][name][gate]
                best = f["sent_at_95_right_unit"]
                at_95 = "none" if best is None else f"{best['sent_share']:.1%} sent (confidence ≥ {best['threshold']})"
                typer.echo(f"{name:<8} {gate:<10} n={f['with_known_unit']} sent {f['sent_share']:.1%}, right unit "
                           f"{f['right_unit_of_sent'] or 0:.1%} of those, right item {f['right_item_of_sent'] or 0:.1%}; "
                           f"sent and right {f['sent_and_right_unit']:.1%}; at ≥95% right unit: {at_95}")


def dispatch_figures(settings, data: Path | None, replied: bool, folds: int) -> dict:
    """`eval dispatch`'s figures (also `report routing --by-unit`): the model trained first if there is none."""
    from pipeline.dispatch_eval import Truth, routing_decider, silver_truths
    from pipeline.modelfiles import REPLIED_FILE, SILVER_FILE, evaluate_dispatch, read_jsonl, unit_rows

    book, locator, _ = offline_pipeline(settings)
    model = trained_model(settings)
    if model is None:
        typer.echo(f"no text model and no labelled messages under {settings.messages_dir}", err=True)
        raise typer.Exit(2)
    silver_file = data or settings.messages_dir / SILVER_FILE
    if not silver_file.exists():
        typer.echo(f"no {silver_file}: pass --data FILE", err=True)
        raise typer.Exit(2)
    truths = {"silver": silver_truths(read_jsonl(silver_file), book)}
    training = unit_rows(settings.messages_dir, book)
    if replied and (settings.messages_dir / REPLIED_FILE).exists():
        truths["replied"] = [Truth(f"replied-{n}", t, x, u, None, None)
                             for n, (t, x, u) in enumerate(training["replied"])]
    taught = tuple(name for name in truths if data is None and model.meta.get("unit_rows_by_source", {}).get(name))
    sets = evaluate_dispatch(model, book, routing_decider(book, locator, settings.classify_threshold), truths,
                             training, folds=folds, cross_validate_sets=taught)
    return {"model": model.version, "threshold": settings.classify_threshold, "sets": sets}


@eval_app.command("learning")
def eval_learning(
    rounds: int = typer.Option(5, min=1, help="rounds the stream of tickets arrives in, a model learnt after each"),
    seed: int = typer.Option(0, help="how the real messages are shuffled and split"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Learning from rulings and returns, simulated on real messages: a starting model kept from four
    classes (卫生计生, 交通运输, 政法, 民政) meets real tickets in rounds; simulated operators rule the waiting
    ones and departments return the wrongly sent ones; a model learnt after each round decides the next.
    Per round: the share sent automatically, the right-unit rate of those, the queue, the same for the
    kept-from units, and the figures on a test set that never teaches. Trains a class model once
    (about a minute) and a unit head per round."""
    import dataclasses
    import datetime as dt

    from pipeline.dispatch_eval import NONE, Truth, routing_decider, silver_truths
    from pipeline.learning import (
        HELD_BACK_CLASSES,
        all_rounds,
        held_back_units,
        simulate,
        split_experiment,
        unit_head_learner,
    )
    from pipeline.modelfiles import SILVER_FILE, lexicon, read_jsonl, read_labelled, training_file, unit_rows
    from pipeline.textmodel import train

    settings = current_settings()
    data, silver_file = training_file(settings.messages_dir), settings.messages_dir / SILVER_FILE
    if data is None or not silver_file.exists():
        say(f"needs the labelled messages and {SILVER_FILE} under {settings.messages_dir}")
        raise typer.Exit(2)
    book, locator, _ = offline_pipeline(settings)
    labelled = read_labelled(data)
    words = lexicon(settings.messages_dir / "taxonomy.csv", {r["label"] for r in labelled}, settings.dutylist_file,
                    settings.units_file)
    say(f"training the starting class model without {', '.join(HELD_BACK_CLASSES)} (once)…")
    class_model = train([r for r in labelled if r["label"] not in HELD_BACK_CLASSES],
                        [(doc, label) for doc, label in words if label not in HELD_BACK_CLASSES],
                        trained_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    known = unit_rows(settings.messages_dir, book)
    # Messages whose unit is known and is a unit (no-item messages are left out: the experiment is about units).
    truths = [t for t in silver_truths(read_jsonl(silver_file), book) if t.unit and t.unit != NONE]
    replied = [Truth(f"replied-{n}", t, x, u, None, None) for n, (t, x, u) in enumerate(known["replied"])]
    experiment = split_experiment([*truths, *replied], [*known["list"], *known["no_item"]], held_back_units(book),
                                  reply_named=frozenset(t.key for t in replied), seed=seed)
    learner = unit_head_learner(class_model, experiment, routing_decider(book, locator, settings.classify_threshold))
    played = simulate(experiment.stream, experiment.test, learner, rounds=rounds)
    report = {"held_back_classes": list(HELD_BACK_CLASSES), "held_back_units": sorted(experiment.unseen_units),
              "threshold": settings.classify_threshold, "history": len(experiment.history),
              "stream": len(experiment.stream), "stream_unseen": sum(t.unseen for t in experiment.stream),
              "test": len(experiment.test), "rounds": [dataclasses.asdict(r) for r in played],
              "all_rounds": all_rounds(played)}
    if as_json:
        print_json(report, True)
        return
    typer.echo(f"starting model: {report['history']} reports of known unit, kept from "
               f"{', '.join(report['held_back_units'])}; stream {report['stream']} ({report['stream_unseen']} of "
               f"those units), test {report['test']}; dispatch at confidence ≥ {report['threshold']}")
    for r in played:
        typer.echo(f"round {r.round}: learnt from {r.model_examples} rulings/returns; {r.tickets} tickets, sent "
                   f"{_pct(r.auto_share)} ({r.sent_right} of {r.sent} to the right unit; units two readers agreed "
                   f"on: {r.agreed_sent_right} of {r.agreed_sent}), {r.waited} waited, {r.returned} returned; "
                   f"kept-from units: sent {_pct(r.unseen_auto_share)} ({_pct(r.unseen_right_unit_of_auto)} right); "
                   f"test: sent {_pct(r.test_auto_share)} ({_pct(r.test_right_unit_of_auto)} right; agreed units "
                   f"{_pct(r.test_right_unit_of_agreed_auto)}), of the kept-from units {_pct(r.test_unseen_auto_share)} "
                   f"({_pct(r.test_unseen_right_unit_of_auto)} right)")
    total = report["all_rounds"]
    typer.echo(f"all rounds: {total['sent']} of {total['tickets']} tickets sent, {_pct(total['right_unit_of_sent'])} "
               f"to the right unit ({_pct(total['agreed_right_unit_of_sent'])} of those whose unit two readers "
               f"agreed on); the queue from {total['first_waited']} to {total['last_waited']} a round")


def _pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"
