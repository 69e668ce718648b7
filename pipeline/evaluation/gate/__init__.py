"""The metrics gate: does a change move the small CI pipeline's metrics beyond their noise?

The baseline (ci/baseline.json) holds every metric of several runs of the gate's pipeline that
differ only in train.seed, and the data report's counts. A metric passes while it stays
within its band of the seeds' mean, in either direction; outside it, it is WORSE or BETTER,
and both fail: a short run that looks better can be a full run broken (a schedule, a
regularizer), and a baseline is moved on purpose, in the change that moves it. The bands
(ci/tolerances.yaml) are k times each metric's standard deviation over the seeds, never under
a floor; `tolerances_yaml` writes them with where each comes from. The data counts do not
depend on the seed: any change to one is CHANGED. And the scores are recomputed from the
files the run scored, with sacreBLEU's defaults: a change to the metric is a MISMATCH. So is
a search whose own figures disagree with the model's teacher-forced forward (evaluate's
search_check, pipeline/evaluation/search_check.py): its counts must be 0, whatever the
model learned.

Noise bands are the judge when training took another path (another seed, a reordered sum).
When it did not (the kept weights' hash equal to the exact record's, ci/exact.json: seed 0's
run to the last digit and line), there is no noise: every figure, and every line of every
scored file, must be the record's, and a difference is CHANGED, with what moved and by how
much. So a change to evaluation alone (a search setting, the text path) fails however small.

The numbers depend on the CPU's instruction set unless it is pinned (ci/isa.env, set by
ci/pipeline.sh): the report names the CPU and the pin of this run and of the baseline's.

One module a job, each read by `fren-nmt check-metrics` and `update-baseline` (pipeline/cli.py):
runs.py (what one run measured, and on which machine), baseline.py (the seeds' file and the
bands made from it), check.py (the verdict of each row), report.py (the table, the summary
line, the pull request's Markdown and the curves' plot).
"""
