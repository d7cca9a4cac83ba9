"""Stage 10, the book: its chapters and profiles (`chapters`), what a notebook calls while it
runs (`notebook`: parameters, results), Papermill execution and the Jupyter Book build (`build`),
the artifact graph made on both cores (`plan`), provenance, charts, Try-it and the browser check."""
