"""``kelm explore``: a local web page to see what a model saw -- the linked spans of a question,
the subgraph retrieved per choice with its question-answer paths, each run's scores and
attention, and a browser of the graph.

* :mod:`~kelm.explore.session` -- :class:`Explorer`: the graph, runs and questions, no page;
* :mod:`~kelm.explore.runs` -- a run loaded once and its explanation of one question;
* :mod:`~kelm.explore.views` -- subgraphs as vis-network data, linked spans as highlighted text;
* :mod:`~kelm.explore.app` -- the Gradio page (``gradio`` and ``pyvis``: the ``explore`` extra).

The package sits above evaluation and below the command line: it reads trained runs and
every layer under them.
"""

from kelm.explore.session import Answer, Explorer, StatementView

__all__ = ["Answer", "Explorer", "StatementView"]
