# The paper's tables and plots from every evaluated cell.


rule report:
    output:
        directory("report"),
    input:
        expand("results/{cell}/eval.csv", cell=CELLS + IMAGENET_CELLS),
        expand("results/{cell}/metrics.json", cell=CELLS + IMAGENET_CELLS),
        expand("results/{cell}/train_summary.json", cell=CELLS + IMAGENET_CELLS),
        "src/augmix/report.py",
        "src/augmix/data/published.csv",
    params:
        sections=sections("grid", "eval"),
    shell:
        "augmix report"
