"""Traceability: explicit links from requirements to design, tasks, code, tests and commits.

- :mod:`.scan`    finds IDs in source files, test names and markers, and ``git log``;
- :mod:`.matrix`  builds the matrix, finds gaps, computes coverage and impact, and reads and
  writes ``storage/traceability/matrix.yml``;
- :mod:`.report`  renders Markdown and HTML reports.

Trace-link *recovery* (suggesting links where no ID was written) lives in
:mod:`musubi.sdd.recovery`.
"""

__all__: list[str] = []
