# The paper's tables, verdicts and plots from every evaluated cell.


rule report:
    output:
        directory("report"),
    input:
        expand("results/{cell}/eval.csv", cell=CELLS + IMAGENET_CELLS),
        expand("results/{cell}/metrics.json", cell=CELLS + IMAGENET_CELLS),
        expand("results/{cell}/train_summary.json", cell=CELLS + IMAGENET_CELLS),
        expand("results/external/{name}/metrics.json", name=list(PARAMS.external)),
        code("report"),
        "src/augmix/data/published.csv",
    params:
        job=job_params("report"),
    shell:
        "augmix report"
