"""Stage curves: the variants' validation-loss curves in one table (plots/val_loss.tsv), which
dvc.yaml's plot draws as one picture, a line per variant (.dvc/plots/by_variant.json)."""

from pipeline.errors import run_main
from pipeline.evaluation.plots import curves_by_variant
from pipeline.files import write_tsv
from pipeline.params import load_params, variant_names

DVCLIVE = "dvclive"
OUT = "plots/val_loss.tsv"


def main() -> None:
    table = curves_by_variant(DVCLIVE, variant_names(load_params()), "val_loss")
    write_tsv(OUT, table)
    print(f"curves: {OUT}: {table['variant'].nunique()} variants, {len(table)} points")


if __name__ == "__main__":
    run_main(main)
