"""The pipeline stages, one module each: open the job's tracking run, read params through the job's
view (augmix.jobs), call the library, write the outputs atomically. `augmix <stage>` imports only the
module of the stage it runs, so each stage's code dependencies are its own import closure."""
