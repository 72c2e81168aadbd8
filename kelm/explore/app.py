"""The ``kelm explore`` page (Gradio Blocks) over an :class:`~kelm.explore.session.Explorer`.

Tabs: **Question** (type a question and its choices or pick one from the QA file; the linked
spans, each choice's subgraph as an interactive vis-network graph with its paths, the runs'
scores and attention), **Runs** (load another run directory) and **Graph** (search a node by
name or alias, its neighbours by relation, click a neighbour to go there).

Every handler turns a bad input into a message in the page (the status line) rather than an
error: a :class:`~kelm.errors.KelmError` shows its message, anything else its type and message
(the traceback goes to the server's log). The handlers have API names (``/explore``,
``/show_choice``, ``/link``, ``/search``, ``/neighbours``, ``/load_run``, ``/pick``), so
``gradio_client`` can drive the page as a browser does.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from typing import Any

# Imported here, not in the functions: Gradio reads the handlers' annotations (gr.SelectData)
# from this module's globals. Only `kelm explore` imports this module.
import gradio as gr

from kelm.errors import KelmError
from kelm.evaluation.zeroshot import NORMALIZATIONS
from kelm.explore.session import LABELS, Answer, Explorer
from kelm.explore.views import graph_json, highlighted, subgraph_data, vis_network_script

log = logging.getLogger(__name__)

#: The graph block: a container vis-network draws into, redrawn whenever the value (the graph's
#: JSON, :func:`~kelm.explore.views.graph_json`) changes.
GRAPH_TEMPLATE = '<div class="kelm-graph" style="height:560px;width:100%;"></div>'
GRAPH_JS = """
const draw = () => {
  const box = element.querySelector('.kelm-graph');
  if (!box) return;
  let data = {};
  try { data = JSON.parse(props.value || '{}'); } catch (e) { data = {message: String(e)}; }
  box.innerHTML = '';
  if (!data.nodes || data.nodes.length === 0) {
    const note = document.createElement('p');
    note.className = 'kelm-graph-message';
    note.textContent = data.message || 'no graph';
    box.appendChild(note);
    return;
  }
  if (typeof vis === 'undefined') { box.textContent = 'vis-network did not load'; return; }
  const network = new vis.Network(
    box,
    {nodes: new vis.DataSet(data.nodes), edges: new vis.DataSet(data.edges)},
    data.options || {}
  );
  network.once('afterDrawing', () => box.setAttribute('data-drawn', 'true'));
};
draw();
watch('value', draw);
"""

TOP_PATHS = 3  # paths highlighted before one is picked (as `kelm show`)
SCORE_HEADERS = ["choice", "text", "gold"]


def _page_errors(outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a handler whose first output is the status line: on an error, the status says what
    went wrong and the other ``outputs - 1`` outputs stay as they were."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def handler(*args: Any) -> Any:
            try:
                return fn(*args)
            except KelmError as exc:
                message = f"**error:** {html.escape(str(exc), quote=False)}"
            except Exception as exc:  # the page shows a message, never a traceback
                log.exception("kelm explore: %s failed", fn.__name__)
                message = f"**error:** {type(exc).__name__}: {html.escape(str(exc), quote=False)}"
            rest = tuple(gr.skip() for _ in range(outputs - 1))
            return (message, *rest) if rest else message

        return handler

    return wrap


# ---------------------------------------------------------------------- what the page shows
def score_table(answer: Answer) -> dict[str, Any]:
    """One row per choice, one column per run: ``score (p=...)``, ``*`` on the prediction."""
    gold = answer.item.answer
    headers = SCORE_HEADERS + [_run_header(r.run, r.model) for r in answer.runs]
    rows = []
    for c, choice in enumerate(answer.item.choices):
        row = [choice.label, choice.text, "gold" if choice.label == gold else ""]
        for run in answer.runs:
            got = run.choices[c]
            mark = " *" if run.prediction == c else ""
            row.append(f"{got.score:.3f} (p={got.probability:.2f}){mark}")
        rows.append(row)
    return {"headers": headers, "data": rows}


def _run_header(run_dir: str, model: str) -> str:
    return f"{model} ({run_dir.rstrip('/').rsplit('/', 1)[-1]})"


def attention_table(answer: Answer, top: int = 5) -> dict[str, Any]:
    """What each run attended to, per choice: QA-GNN's heaviest nodes, KagNet's heaviest
    paths, ERNIE's linked entities (the runs without any: nothing)."""
    rows = []
    for run in answer.runs:
        name = _run_header(run.run, run.model)
        for choice, got in zip(answer.item.choices, run.choices, strict=True):
            for node, weight in got.nodes[:top]:
                if weight is not None:
                    rows.append([name, choice.label, "node", node, round(weight, 4)])
            for path, weight in got.paths[:top]:
                rows.append([name, choice.label, "path", path, round(weight, 4)])
            if got.entities:
                rows.append([name, choice.label, "entities", ", ".join(got.entities), None])
            if got.loglik:  # the zero-shot LM: its log-likelihoods under each normalisation
                tokens = f"{int(got.loglik.get('tokens', 0))} choice tokens"
                for norm in NORMALIZATIONS:
                    if norm in got.loglik:
                        value = round(got.loglik[norm], 4)
                        rows.append([name, choice.label, f"log-lik {norm}", tokens, value])
    return {"headers": ["run", "choice", "kind", "what", "weight"], "data": rows}


def status_line(answer: Answer) -> str:
    """The summary: each run's prediction against the gold answer, and the time taken."""
    labels = [c.label for c in answer.item.choices]
    parts = []
    for run in answer.runs:
        predicted = labels[run.prediction]
        verdict = ""
        if answer.item.answer is not None:
            verdict = " (right)" if predicted == answer.item.answer else " (wrong)"
        parts.append(f"{_run_header(run.run, run.model)} picks **{predicted}**{verdict}")
    for name, error in answer.run_errors.items():
        parts.append(f"{name}: error: {html.escape(error, quote=False)}")
    if not answer.runs and not answer.run_errors:
        parts.append("no run loaded (--model RUN_DIR, or the Runs tab)")
    gold = f"gold **{answer.item.answer}**; " if answer.item.answer else ""
    return f"{gold}{'; '.join(parts)}. ({answer.seconds:.2f} s)"


def choice_view(explorer: Explorer, answer: Answer | None, label: str | None, path: Any) -> tuple:
    """The graph (JSON), concepts line and paths table of one choice; ``path`` an index into
    its paths to highlight (``None``: the first :data:`TOP_PATHS`)."""
    if answer is None:
        return graph_json(None, "explore a question first"), "", {"headers": ["#"], "data": []}
    views = {s.label: s for s in answer.statements}
    view = views.get(label or "") or answer.statements[0]
    hot = list(range(min(TOP_PATHS, len(view.paths))))
    if path not in (None, ""):
        index = int(path)
        if not 0 <= index < len(view.paths):
            raise KelmError(f"choice {view.label} has no path {index + 1}")
        hot = [index]
    data = subgraph_data(view.sub, view.paths, explorer.names, explorer.relations, hot=hot)
    message = "" if data["nodes"] else "no graph concept found in this statement"
    concepts = (
        f"**{view.label}. {html.escape(view.choice, quote=False)}**: question concepts "
        f"{', '.join(view.question_concepts) or '-'}; answer concepts "
        f"{', '.join(view.answer_concepts) or '-'}; {view.sub.num_nodes} nodes, "
        f"{len(view.paths)} paths"
    )
    rows = [
        [i + 1, text, None if score is None else round(score, 4)]
        for i, (text, score) in enumerate(zip(view.path_texts, view.path_scores, strict=True))
    ]
    table = {"headers": ["#", "path", "KagNet score"], "data": rows}
    return graph_json(data if data["nodes"] else None, message), concepts, table


def neighbour_table(neighbours: dict[str, list[str]]) -> dict[str, Any]:
    """One row per (relation, neighbour): click a neighbour to go there."""
    rows = [[rel, node] for rel, nodes in neighbours.items() for node in nodes]
    return {"headers": ["relation", "neighbour"], "data": rows}


# ---------------------------------------------------------------------- the page
def build_app(explorer: Explorer) -> Any:
    """The Gradio Blocks of the page (not launched)."""
    info = explorer.index.info()
    intro = (
        f"# kelm explore\nGraph `{explorer.graph_dir}`: {info['nodes']:,} nodes, "
        f"{info['edges']:,} edges, {explorer.index.num_relations} relations. "
        f"Runs: {', '.join(r.name for r in explorer.runs) or 'none'}."
    )
    with gr.Blocks(title="kelm explore", analytics_enabled=False) as app:
        answer_state = gr.State(None)
        gr.Markdown(intro)
        with gr.Tab("Question"):
            pick = gr.Dropdown(
                choices=[(t, i) for i, t in enumerate(explorer.item_titles())],
                value=None,
                label=f"From the QA file ({len(explorer.items):,} questions)",
                visible=bool(explorer.items),
                elem_id="kelm-pick",
            )
            with gr.Row():
                question = gr.Textbox(label="Question", scale=3, elem_id="kelm-question")
                choices = gr.Textbox(
                    label="Choices, one per line", lines=4, scale=2, elem_id="kelm-choices"
                )
                gold = gr.Dropdown(
                    choices=["", *LABELS], value="", label="Gold answer (optional)", scale=1
                )
            go = gr.Button("Explore", variant="primary", elem_id="kelm-go")
            status = gr.Markdown("", elem_id="kelm-status")
            linked = gr.HighlightedText(
                label="Linked spans (each labelled with its graph nodes)", elem_id="kelm-linked"
            )
            scores = gr.Dataframe(
                headers=SCORE_HEADERS,
                label="Scores per choice (* the run's pick)",
                elem_id="kelm-scores",
                interactive=False,
            )
            with gr.Row():
                which = gr.Radio(choices=[], label="Choice to draw", elem_id="kelm-choice")
                path = gr.Dropdown(choices=[], label="Highlight a path", elem_id="kelm-path")
            concepts = gr.Markdown("")
            graph = gr.HTML(
                value=graph_json(None, "explore a question to see its subgraph"),
                html_template=GRAPH_TEMPLATE,
                js_on_load=GRAPH_JS,
                head=f"<script>{vis_network_script()}</script>",
                elem_id="kelm-graph",
            )
            paths = gr.Dataframe(
                headers=["#", "path", "KagNet score"],
                label="Question-answer paths",
                interactive=False,
            )
            attention = gr.Dataframe(
                headers=["run", "choice", "kind", "what", "weight"],
                label="What the runs attended to (QA-GNN nodes, KagNet paths, ERNIE entities; "
                "the zero-shot LM's log-likelihoods)",
                interactive=False,
                elem_id="kelm-attention",
            )
        with gr.Tab("Runs"):
            runs_list = gr.Markdown(_runs_markdown(explorer))
            run_dir = gr.Textbox(
                label="Run directory (kelm train, or kelm evaluate --zero-shot)",
                elem_id="kelm-run-dir",
            )
            load = gr.Button("Load run")
            run_status = gr.Markdown("")
        with gr.Tab("Link"):
            with gr.Row():
                link_text = gr.Textbox(label="Text to link", scale=3, elem_id="kelm-link-text")
                link_mode = gr.Radio(
                    choices=["concept", "entity"], value="entity", label="Mode", scale=1
                )
            link_go = gr.Button("Link")
            link_status = gr.Markdown("", elem_id="kelm-link-status")
            link_spans = gr.HighlightedText(label="Linked spans", elem_id="kelm-link-spans")
            candidates = gr.Dataframe(
                headers=CANDIDATE_HEADERS,
                label="Each span's candidates, best first (entity mode: score = prior and "
                "context combined)",
                interactive=False,
                elem_id="kelm-candidates",
            )
        with gr.Tab("Graph"):
            with gr.Row():
                query = gr.Textbox(
                    label="Search a node by name or alias", scale=2, elem_id="kelm-search"
                )
                found = gr.Dropdown(choices=[], label="Nodes", scale=2, allow_custom_value=True)
            graph_status = gr.Markdown("", elem_id="kelm-graph-status")
            neighbours = gr.Dataframe(
                headers=["relation", "neighbour"],
                label="Neighbours (click one to go there)",
                interactive=False,
                elem_id="kelm-neighbours",
            )

        # ------------------------------------------------------------ handlers
        @_page_errors(10)
        def explore(q: str, cs: str, answer_label: str) -> tuple:
            item = explorer.make_item(q, (cs or "").splitlines(), answer_label)
            got = explorer.ask(item)
            text = highlighted(got.text, got.spans)
            first = _shown_choice(got)
            drawn, line, table = choice_view(explorer, got, first, None)
            labels = [c.label for c in item.choices]
            return (
                status_line(got),
                got,
                text,
                score_table(got),
                gr.update(choices=labels, value=first),
                gr.update(choices=_path_choices(got, first), value=None),
                drawn,
                line,
                table,
                attention_table(got),
            )

        explore_outputs = [status, answer_state, linked, scores, which, path, graph, concepts]
        explore_outputs += [paths, attention]
        go.click(
            explore,
            [question, choices, gold],
            explore_outputs,
            api_name="explore",
        )
        question.submit(
            explore,
            [question, choices, gold],
            explore_outputs,
            api_name=False,
        )

        @_page_errors(5)
        def show_choice(got: Answer | None, label: str) -> tuple:
            drawn, line, table = choice_view(explorer, got, label, None)
            choices_of = _path_choices(got, label) if got is not None else []
            return gr.skip(), drawn, line, table, gr.update(choices=choices_of, value=None)

        which.change(
            show_choice,
            [answer_state, which],
            [status, graph, concepts, paths, path],
            api_name="show_choice",
        )

        @_page_errors(4)
        def show_path(got: Answer | None, label: str, index: Any) -> tuple:
            drawn, line, table = choice_view(explorer, got, label, index)
            return gr.skip(), drawn, line, table

        path.change(
            show_path,
            [answer_state, which, path],
            [status, graph, concepts, paths],
            api_name="show_path",
        )

        @_page_errors(4)
        def pick_item(index: Any) -> tuple:
            if index in (None, ""):
                return "", gr.skip(), gr.skip(), gr.skip()
            item = explorer.items[int(index)]
            text = "\n".join(c.text for c in item.choices)
            return f"picked {item.id}", item.question, text, item.answer or ""

        pick.change(pick_item, [pick], [status, question, choices, gold], api_name="pick")

        @_page_errors(2)
        def load_run(directory: str) -> tuple:
            run = explorer.add_run(directory)
            return f"loaded {run.name}", _runs_markdown(explorer)

        load.click(load_run, [run_dir], [run_status, runs_list], api_name="load_run")

        @_page_errors(2)
        def search(text: str) -> tuple:
            hits = explorer.search(text)
            if not hits:
                return f"no node matches {text!r}", gr.update(choices=[], value=None)
            plural = "s" if len(hits) > 1 else ""
            return f"{len(hits)} matching node{plural}", gr.update(choices=hits, value=hits[0])

        query.submit(search, [query], [graph_status, found], api_name="search")

        @_page_errors(2)
        def show_node(name: str) -> tuple:
            if not name:
                return "", {"headers": ["relation", "neighbour"], "data": []}
            grouped = explorer.neighbours(name)
            total = sum(len(v) for v in grouped.values())
            return f"**{html.escape(name, quote=False)}**: {total} neighbours", neighbour_table(
                grouped
            )

        found.change(show_node, [found], [graph_status, neighbours], api_name="neighbours")

        @_page_errors(2)
        def click_neighbour(event: gr.SelectData) -> tuple:
            row = event.row_value if event.row_value is not None else []
            name = row[1] if len(row) > 1 else event.value
            return f"going to {name}", gr.update(choices=[name], value=name)

        neighbours.select(click_neighbour, None, [graph_status, found], api_name=False)

        @_page_errors(3)
        def link_page(text: str, mode: str) -> tuple:
            if not (text or "").strip():
                raise KelmError("type a text to link")
            got = explorer.link(text, mode)
            line = f"{len(got['spans'])} linked span{'s' if len(got['spans']) != 1 else ''}"
            return line, highlighted(got["text"], got["spans"]), candidate_table(got["spans"])

        link_outputs = [link_status, link_spans, candidates]
        link_go.click(link_page, [link_text, link_mode], link_outputs, api_name="link_page")
        link_text.submit(link_page, [link_text, link_mode], link_outputs, api_name=False)

        # API: link a text in either mode (entity spans carry their candidates' scores)
        gr.api(_link_api(explorer), api_name="link")
    return app


CANDIDATE_HEADERS = ["span", "rank", "node", "score", "prior", "context"]


def candidate_table(spans: list[dict[str, Any]], top: int = 5) -> dict[str, Any]:
    """The first ``top`` candidates of every span: entity spans' with their score, prior and
    context cosine (``kelm link --json``'s ``candidates``), concept spans' names only (every
    node of a concept span matches it equally)."""
    rows = []
    for span in spans:
        candidates = span.get("candidates") or [{"name": name} for name in span["names"]]
        for rank, candidate in enumerate(candidates[:top]):
            rows.append(
                [
                    span["text"],
                    rank + 1,
                    candidate["name"],
                    *(_rounded(candidate.get(key)) for key in ("score", "prior", "context")),
                ]
            )
    return {"headers": CANDIDATE_HEADERS, "data": rows}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _link_api(explorer: Explorer) -> Callable[[str, str], dict[str, Any]]:
    def link(text: str, mode: str = "concept") -> dict[str, Any]:
        """Link ``text`` to graph nodes (``mode`` concept or entity): ``{"text", "spans"}``;
        a bad input gives ``{"error": message}``."""
        try:
            return explorer.link(text, mode)
        except KelmError as exc:
            return {"error": str(exc)}

    return link


def _shown_choice(answer: Answer) -> str:
    """The choice drawn first: the first run's pick, else the gold answer, else A."""
    labels = [c.label for c in answer.item.choices]
    if answer.runs:
        return labels[answer.runs[0].prediction]
    return answer.item.answer or labels[0]


def _path_choices(answer: Answer, label: str) -> list[tuple[str, int]]:
    view = next((s for s in answer.statements if s.label == label), answer.statements[0])
    return [(f"{i + 1}. {text}", i) for i, text in enumerate(view.path_texts)]


def _runs_markdown(explorer: Explorer) -> str:
    if not explorer.runs:
        return "No run loaded."
    return "\n".join(f"- {r.name}: `{r.run_dir}`" for r in explorer.runs)


def launch(
    explorer: Explorer,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    block: bool = True,
) -> Any:
    """Serve the page on ``host:port`` (a free port when ``None``); ``block=False`` returns
    the app with its server running (``app.close()`` stops it)."""
    app = build_app(explorer)
    # the system's fonts, not Google's: the page needs no network
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        quiet=True,
        theme=theme,
        ssr_mode=False,
        footer_links=["api"],
        mcp_server=False,
    )
    return app


__all__ = ["build_app", "launch"]
