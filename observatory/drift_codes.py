"""Exit codes and output formats of the drift commands (light: no analytics imports).

Kept apart from :mod:`observatory.drift_report` so that the ``observatory`` command
can register the drift commands without importing scipy and Plotly at start-up.
"""

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL = 0, 1, 2
EXIT_USAGE, EXIT_RUNTIME, EXIT_NO_DATA = 3, 4, 5
FORMATS = {"html": ".html", "md": ".md", "json": ".json"}
