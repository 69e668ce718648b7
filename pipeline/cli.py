"""The `fren-nmt` command: translate, serve, export, compare, significance, lr-find,
check-metrics, update-baseline."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from pipeline.errors import PipelineError, run_main
from pipeline.files import atomic_path


def read_lines(stream: object, name: str = "standard input") -> list[str]:
    """UTF-8 lines; a line that is not valid UTF-8 is a one-line error naming it."""
    lines = []
    for n, raw in enumerate(stream.read().splitlines(), 1):  # bytes
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise PipelineError(f"{name}: line {n} is not valid UTF-8 ({e.reason} at byte "
                                f"{e.start})") from None
    return lines


def cmd_translate(args: argparse.Namespace) -> None:
    from pipeline.data.vocab import ids_to_tokens
    from pipeline.decoding.engines import open_translator

    if args.nbest > args.beam:
        raise PipelineError(f"--nbest {args.nbest}: at most the beam size (--beam {args.beam})")
    from pipeline.decoding.translate import LIMIT

    translator = open_translator(args.model, device=args.device, engine=args.engine)
    given = {"a": args.max_len_a, "b": args.max_len_b, "cap": args.max_len_cap}
    limit = dataclasses.replace(LIMIT, **{k: v for k, v in given.items() if v is not None})
    if args.input is None:
        lines = read_lines(sys.stdin.buffer)
    else:
        try:
            with open(args.input, "rb") as f:
                lines = read_lines(f, args.input)
        except OSError as e:
            raise PipelineError(f"{args.input}: cannot read ({e.strerror})") from None
    if args.nbest == 1:
        for out in translator.translate(lines, args.batch_size, args.beam, args.alpha,
                                        args.tokens, limit):
            print(out)
        return
    for n, hyps in enumerate(translator.search(lines, args.batch_size, args.beam, args.alpha,
                                               args.nbest, limit), 1):
        for h in hyps:
            words = ids_to_tokens(h.ids, translator.vocab_en)
            text = " ".join(words) if args.tokens else translator.units.text(words)
            print(f"{n}\t{h.score:.4f}\t{text}")


def cmd_serve(args: argparse.Namespace) -> None:
    from pipeline.serve import ServeLimits, serve

    limits = ServeLimits(max_sentences=args.max_sentences, max_chars=args.max_chars,
                         max_beam=args.max_beam, max_batch=args.max_batch,
                         max_wait=args.max_wait, max_queue=args.max_queue,
                         timeout=args.timeout)
    serve(args.model, args.host, args.port, args.device, limits, args.engine)


def cmd_export(args: argparse.Namespace) -> None:
    from pipeline.models.export import export

    out = export(args.model, args.to, args.quantization)
    print(f"export: {args.model} -> {out} (CTranslate2, {args.quantization}); translate with "
          f"`fren-nmt translate --model {out}` or serve it with `fren-nmt serve --model {out}`")


def cmd_lr_find(args: argparse.Namespace) -> None:
    from pipeline.evaluation.plots import lr_find_plot
    from pipeline.params import load_params
    from pipeline.training.lr_find import lr_find

    lrs, losses = lr_find(load_params(args.params), args.variant, args.data, args.batches,
                          args.start, args.end)
    out = Path(args.out)
    with atomic_path(out / f"{args.variant}.tsv") as tmp:
        tmp.write_text("lr\tloss\n" + "".join(f"{a:.6g}\t{b:.6f}\n" for a, b in zip(lrs, losses)))
    lr_find_plot(lrs, losses, out / f"{args.variant}.png")
    best = lrs[min(range(len(losses)), key=losses.__getitem__)]
    print(f"lr-find: {len(lrs)} batches; lowest loss at lr {best:.2g} (pick about a tenth of "
          f"that); plot {out / args.variant}.png, data {out / args.variant}.tsv")


def cmd_compare(args: argparse.Namespace) -> None:
    from pipeline.evaluation.compare import (
        format_seed_table,
        format_table,
        from_dvc,
        from_folder,
        seed_groups,
    )

    rows = from_folder(args.metrics) if args.metrics else from_dvc()
    if not rows:
        raise PipelineError("compare: no metrics of any variant yet; run `dvc repro` (or "
                            "`bash run.sh --quick`) first")
    print(format_table(rows, models=args.models, here=args.metrics or "workspace"))
    if groups := seed_groups(rows):
        print("\n" + format_seed_table(groups))
    if args.significance:
        from pipeline.evaluation.significance import workspace_significance

        print("\n" + workspace_significance(rows, Path(args.reports)))


def cmd_pull(args: argparse.Namespace) -> None:
    from pipeline.remote import pull

    print(pull(remote=args.remote, targets=args.targets))


def cmd_check_metrics(args: argparse.Namespace) -> None:
    from pipeline.evaluation.gate import report, runs
    from pipeline.evaluation.gate.baseline import load_bands, load_baseline, load_exact
    from pipeline.evaluation.gate.check import EXACT, check, exact_rows

    base = load_baseline(args.baseline)
    rows = check(base, runs.load_current(args.metrics, base.variants),
                 load_bands(args.tolerances), args.tolerances,
                 runs.rescore(args.metrics, base.variants),
                 runs.search_checks(args.metrics, base.variants))
    exact = load_exact(args.exact) if args.exact else None
    if exact is not None:
        rows += exact_rows(exact, runs.exact_of(args.metrics, base.variants))
    print(report.format_table(rows))
    print(report.compared_files(args.metrics, base.variants, args.baseline))
    here = runs.machine()
    print(f"this machine:   {runs.describe(here)}")
    print(f"baseline's:     {runs.describe(base.made_on)}")
    if args.report:
        out = Path(args.report)
        plot = None
        if args.curves:
            plot = out.with_name("curves.png")
            report.curves_plot(base, runs.load_curves(args.curves, base.variants), plot)
        text = report.markdown_report(rows, base, {"what": args.what, "machine": here},
                                    plot.name if plot else None)
        with atomic_path(out, ".md") as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"check-metrics: report in {out}")
    print(f"check-metrics: {report.summary(rows)}")
    if any(r.failed and r.metric.endswith(EXACT) for r in rows):
        raise PipelineError("check-metrics: evaluation changed while training did not (the "
                            f"rows marked{EXACT} above: figures, and lines of the scored files, "
                            f"against {args.exact}); a change meant to alter what evaluation "
                            "reports or prints updates the baseline in the same commit: bash "
                            "ci/pipeline.sh --update-baseline")
    if any(r.failed for r in rows):
        raise PipelineError("check-metrics: metrics moved beyond their noise bands (see the "
                            f"table above; bands in {args.tolerances}); a change meant to move "
                            "them updates the baseline: bash ci/pipeline.sh --update-baseline")


def cmd_significance(args: argparse.Namespace) -> None:
    from pipeline.evaluation.significance import (
        format_table,
        paired_tests,
        read_system,
        reference_for,
        resolve,
    )

    ref = Path(args.ref) if args.ref else reference_for(args.systems, args.set)
    references = read_system(ref)
    systems = [resolve(s, args.set, args.search) for s in args.systems]
    named = [(name, read_system(path, len(references))) for name, path in systems]
    rows = paired_tests(references, named, args.resamples, args.trials)
    print(f"references: {ref}")
    print(format_table(rows, len(references)))


def cmd_update_baseline(args: argparse.Namespace) -> None:
    import datetime

    from pipeline.evaluation.gate.baseline import (
        load_baseline,
        tolerances_yaml,
        write_baseline,
        write_exact,
    )

    if args.exact_from:  # the exact record alone, from a run of the baseline's seed
        if not args.exact:
            raise PipelineError("update-baseline: --exact-from needs --exact (where to write)")
        write_exact(args.exact, args.exact_from, args.exact_seed, load_baseline(args.baseline))
        print(f"update-baseline: wrote {args.exact} from {args.exact_from} (seed "
              f"{args.exact_seed}); commit it, saying why evaluation changed")
        return
    if args.from_baseline:  # new bands from the runs already in the baseline
        base = load_baseline(args.baseline)
        wrote = f"{args.tolerances} from the {len(base.seeds)} seeds in {args.baseline}"
    else:
        runs, curves = {}, {}
        for item in args.run or []:
            seed, _, rest = item.partition("=")
            metrics, _, dvclive = rest.partition(":")
            if not seed.isdigit() or not metrics:
                raise PipelineError(f"update-baseline: --run {item!r}: expected "
                                    "SEED=METRICS[:DVCLIVE]")
            runs[int(seed)], curves[int(seed)] = metrics, dvclive or metrics
        from pipeline.params import workspace_variants

        base = write_baseline(args.baseline, runs, curves,
                              args.variants or workspace_variants())
        wrote = f"{args.baseline} ({len(runs)} seeds) and {args.tolerances}"
        if args.exact and args.exact_seed in runs:
            write_exact(args.exact, runs[args.exact_seed], args.exact_seed, base)
            wrote += f" and {args.exact} (seed {args.exact_seed})"
    floors = {"bleu": args.floor_bleu, "chrf": args.floor_chrf, "loss": args.floor_loss}
    text = tolerances_yaml(base, Path(args.baseline).name, args.k, floors,
                           f"{datetime.date.today():%Y-%m-%d}")
    with atomic_path(args.tolerances, ".yaml") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"update-baseline: wrote {wrote}; commit them, saying why the metrics moved")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number >= 0")
    return value


def alpha_value(text: str) -> float:
    from pipeline.params import MAX_ALPHA, valid_alpha

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not valid_alpha(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to {MAX_ALPHA:g}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, as every other error
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _add_translate(sub: argparse._SubParsersAction) -> None:
    from pipeline.params import EvaluateParams

    d = EvaluateParams()  # evaluate's search settings are translate's defaults
    p = sub.add_parser("translate", help="French lines on stdin -> English lines on stdout",
                       description="Reads French sentences, one per line, on standard input; "
                       "writes one English translation per line (an empty line for an empty "
                       "line), in order.")
    p.add_argument("--model", required=True, action="append",
                   help="a model directory, e.g. models/attention; given several times, an "
                   "ensemble: their log-probabilities averaged at each step")
    p.add_argument("--input", help="read this file instead of standard input")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_engine(p)
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentences per batch")
    p.add_argument("--beam", type=positive_int, default=1,
                   help="beam size (default 1: greedy search)")
    p.add_argument("--alpha", type=alpha_value, default=d.alpha,
                   help=f"GNMT length penalty for beam search, ((5+|Y|)/6)**alpha (default "
                   f"{d.alpha:g}, evaluate.alpha's)")
    p.add_argument("--nbest", type=positive_int, default=1,
                   help="print the K best hypotheses of each line as LINE<TAB>SCORE<TAB>TEXT "
                   "(K <= --beam)")
    p.add_argument("--tokens", action="store_true",
                   help="print the model's tokens (as the lesson's token BLEU scores them) "
                   "instead of text")
    p.add_argument("--max-len-a", type=non_negative,
                   help="a line decodes at most A * its length + B tokens, at most CAP "
                   f"(its length counts its tokens and the end; default A {d.max_len_a:g}, as "
                   "evaluate)")
    p.add_argument("--max-len-b", type=non_negative_int, help=f"B (default {d.max_len_b})")
    p.add_argument("--max-len-cap", type=positive_int, help=f"CAP (default {d.max_len_cap})")
    p.set_defaults(func=cmd_translate)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    from pipeline.serve import ServeLimits

    d = ServeLimits()
    p = sub.add_parser("serve", help="a page and an HTTP API translating with a model",
                       description="Serves POST /translate, GET /models, GET /health and a "
                       "page at / to try the model in a browser.")
    p.add_argument("--model", required=True, action="append",
                   help="a model directory, e.g. models/all; several times: an ensemble")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=positive_int, default=8000, help="default 8000")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    add_engine(p)
    p.add_argument("--max-batch", type=positive_int, default=d.max_batch,
                   help=f"sentences decoded together (default {d.max_batch})")
    p.add_argument("--max-wait", type=non_negative, default=d.max_wait,
                   help="seconds the oldest waiting sentence waits for others to batch with "
                   f"(default {d.max_wait})")
    p.add_argument("--max-queue", type=positive_int, default=d.max_queue,
                   help=f"sentences waiting; past it a request gets 503 (default {d.max_queue})")
    p.add_argument("--timeout", type=non_negative, default=d.timeout,
                   help=f"seconds a request may take; past it 504 (default {d.timeout})")
    p.add_argument("--max-sentences", type=positive_int, default=d.max_sentences,
                   help=f"sentences a request (default {d.max_sentences}; more: 413)")
    p.add_argument("--max-chars", type=positive_int, default=d.max_chars,
                   help=f"characters a sentence (default {d.max_chars}; more: 413)")
    p.add_argument("--max-beam", type=positive_int, default=d.max_beam,
                   help=f"largest beam a request may ask for (default {d.max_beam})")
    p.set_defaults(func=cmd_serve)


def add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="auto", choices=["auto", "pytorch", "ctranslate2"],
                   help="auto (default): PyTorch for a model directory, CTranslate2 for an "
                   "export; ctranslate2: export a transformer's directory at start")


def _add_export(sub: argparse._SubParsersAction) -> None:
    from pipeline.models.export import QUANTIZATIONS

    p = sub.add_parser("export", help="a transformer as a CTranslate2 model directory",
                       description="Writes the model, its vocabularies, tokenizer settings "
                       "and truecaser as a CTranslate2 directory that translate and serve "
                       "read like a model directory (docs/translation.md).")
    p.add_argument("--model", required=True, help="a transformer's model directory, e.g. "
                   "models/transformer")
    p.add_argument("--to", required=True, help="the directory to write (replaced if there)")
    p.add_argument("--quantization", default="float32", choices=QUANTIZATIONS,
                   help="weights' type (default float32; int8 or int8_float32 for a CPU, "
                   "float16 for a GPU)")
    p.set_defaults(func=cmd_export)


def _add_lr_find(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lr-find", help="sweep the learning rate; plot loss against it")
    p.add_argument("--variant", required=True, help="a variant of --params (e.g. attention)")
    p.add_argument("--batches", type=int, default=300, help="batches to sweep (default 300)")
    p.add_argument("--start", type=float, default=1e-5)
    p.add_argument("--end", type=float, default=1.0)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--data", default="data/processed", help="the vocab/embeddings stage outputs")
    p.add_argument("--out", default="reports/lr_find", help="folder for VARIANT.png and .tsv")
    p.set_defaults(func=cmd_lr_find)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="the variants' BLEU, losses and time, per experiment")
    p.add_argument("--metrics", help="read this folder of VARIANT.json files instead of "
                   "`dvc exp show` (workspace, last commit and its experiments)")
    p.add_argument("--models", default="models",
                   help="model directories, to mark variants not trained here (default models)")
    p.add_argument("--significance", action="store_true",
                   help="also test the workspace's variants against the best one on the test "
                   "set (sacreBLEU's paired bootstrap and approximate randomization)")
    p.add_argument("--reports", default="reports", help="evaluate's report folders")
    p.set_defaults(func=cmd_compare)


def _add_pull(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="dvc pull, with one line for a bad remote and for "
                       "the stages still out of date", description="Pulls what dvc.lock "
                       "names from a DVC remote (docs/pipeline.md, Sharing what was trained). "
                       "Exits 1 with one line if the remote is unreachable or empty, or if "
                       "stages are still out of date after the pull (it names them and why).")
    p.add_argument("targets", nargs="*", help="stages to pull, with the stages they depend "
                   "on, e.g. evaluate@transformer (default: every stage in dvc.lock)")
    p.add_argument("--remote", help="the DVC remote's name (default: the default remote)")
    p.set_defaults(func=cmd_pull)


def _add_significance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("significance", help="paired tests: do systems' BLEU and chrF differ?",
                       description="sacreBLEU's paired bootstrap and approximate randomization "
                       "of every system against the first, on the same sentences.")
    p.add_argument("systems", nargs="+", metavar="SYSTEM",
                   help="a report folder (reports/VARIANT: its translations of --set by "
                   "--search), a file of translations, or NAME=either; the first is the baseline")
    p.add_argument("--ref", help="the references, one a line (default: the first report "
                   "folder's translations/SET.ref.txt)")
    p.add_argument("--set", default="test", choices=["valid", "test", "outside"],
                   help="which set's translations (default test: the one no choice has seen; "
                   "outside: the questions written apart from the corpus)")
    p.add_argument("--search", default="greedy", choices=["greedy", "beam"])
    p.add_argument("--resamples", type=positive_int, default=1000,
                   help="bootstrap resamples (default 1000)")
    p.add_argument("--trials", type=positive_int, default=10000,
                   help="approximate randomization trials (default 10000)")
    p.set_defaults(func=cmd_significance)


def _add_check_metrics(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-metrics", help="fail if metrics moved beyond their noise bands",
                       description="Compares a run's metrics with the baseline's seeds: a "
                       "metric further than its band from their mean fails, worse or better.")
    p.add_argument("--metrics", default="metrics", help="folder of VARIANT.json files (and "
                   "translations/VARIANT/, the scored files, which are scored again)")
    p.add_argument("--baseline", default="ci/baseline.json")
    p.add_argument("--tolerances", default="ci/tolerances.yaml", help="the bands")
    p.add_argument("--exact", metavar="EXACT_JSON",
                   help="one seed's run to the last digit and line (the gate's ci/exact.json):"
                   " a variant whose training is identical must match it exactly (without "
                   "it, the bands alone judge)")
    p.add_argument("--report", help="also write a Markdown report here (and curves.png beside "
                   "it, with --curves)")
    p.add_argument("--curves", help="dvclive folder of this run, for the report's plot")
    p.add_argument("--what", default="", help="what this run is, for the report")
    p.set_defaults(func=cmd_check_metrics)


def _add_update_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("update-baseline", help="make the baseline and its bands from seed runs")
    p.add_argument("--run", action="append", metavar="SEED=METRICS[:DVCLIVE]",
                   help="one run: its train.seed, metrics folder and dvclive folder; 3 or more")
    p.add_argument("--from-baseline", action="store_true",
                   help="write the bands again from the runs in --baseline (a new --k, say)")
    p.add_argument("--baseline", default="ci/baseline.json")
    p.add_argument("--tolerances", default="ci/tolerances.yaml")
    p.add_argument("--exact", metavar="EXACT_JSON",
                   help="also write the exact record (the gate's ci/exact.json) from the run "
                   "of --exact-seed")
    p.add_argument("--exact-seed", type=non_negative_int, default=0,
                   help="the seed whose run the exact record keeps (default 0, the gate's)")
    p.add_argument("--exact-from", metavar="METRICS",
                   help="write only the exact record, from this run of --exact-seed (its "
                   "tracked metrics must equal the baseline's for that seed)")
    p.add_argument("--variants", nargs="*",
                   help="the variants to keep (default: params.yaml's, in its order)")
    p.add_argument("--k", type=non_negative, default=6.0,
                   help="a band is k x the seeds' standard deviation (default 6)")
    p.add_argument("--floor-bleu", type=non_negative, default=0.5, help="smallest BLEU band")
    p.add_argument("--floor-chrf", type=non_negative, default=0.5, help="smallest chrF band")
    p.add_argument("--floor-loss", type=non_negative, default=0.005, help="smallest loss band")
    p.set_defaults(func=cmd_update_baseline)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="fren-nmt", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (_add_translate, _add_serve, _add_export, _add_lr_find, _add_compare,
                _add_pull, _add_significance, _add_check_metrics, _add_update_baseline):
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_main(lambda: args.func(args))


if __name__ == "__main__":
    main()
