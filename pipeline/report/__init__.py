"""`filter-report OUTPUT_DIR`: what a dataset build kept and dropped, and why.

One module per job: `load` (read a build folder, finished or not), `rules` (each
filter's own keep() on stored scores), `summary` (the numbers), `terminal` (rich
tables), `plots` + `images` + `html` (the one-file HTML report), `whatif`, `export`,
`validate`, and `cli` (the command line).
"""



def main(argv=None) -> int:
    from pipeline.report.cli import main as cli_main  # imported late: `import pipeline.report.rules` stays light

    return cli_main(argv)
