"""Component ids, in one place so pages, callbacks, JS and tests agree."""

# shell
API = "api-config"
BANNER = "backend-banner"
HEALTH = "backend-health"  # the banner's last /healthz answer
HEALTH_TICK = "health-tick"
URL = "url"

# launch page
PRESET = "launch-preset"
RUN_NAME = "launch-name"
FIELDS = "launch-fields"
FIELD = "cfg-field"  # pattern-matching: {"type": FIELD, "name": <config field>}
FIELD_FEEDBACK = "cfg-feedback"  # {"type": FIELD_FEEDBACK, "name": <config field>}
FIELD_BOX = "cfg-box"  # a field's column: {"type": FIELD_BOX, "name": <config field>}
FIELD_PRESET = "cfg-preset"  # "preset: <value>" under a changed field, same pattern
PRESET_VALUES = "launch-preset-values"  # the chosen preset's config, to mark changed fields
DATA_FILES = "launch-data-files"  # the csv file pickers: shown for dataset csv only
START = "launch-start"
LAUNCH_ERROR = "launch-error"
LAUNCH_REDIRECT = "launch-redirect"
DATASET = "launch-dataset"
DATA_FILE = "launch-data-file"
REFERENCE_FILE = "launch-reference-file"
DATA_UPLOAD = "launch-data-upload"
DATA_UPLOAD_MESSAGE = "launch-data-upload-message"
EDIT_FROM = "launch-edit-from"  # the run an edit form copies: {run_id, preset, config} or None
EDIT_NOTE = "launch-edit-note"
EDIT_MISSING = "launch-edit-missing"  # the alert shown instead of the form: no such run

# run page
RUN_ID = "run-id"
# Written by assets/live.js: a flush's summary of the records (count, last, best epoch), the
# pushed run, alerts and graph, a request to re-read what only the backend computes, and
# whether the socket is connected.
LIVE_METRICS = "live-metrics"
LIVE_PANELS = "live-panels"
LIVE_EVAL = "live-eval"
LIVE_STATUS = "live-status"
RUN_FETCHED = "run-fetched"  # the last re-read: {run, card}
RUN_LABEL = "run-label"  # the run's lineage label, for the header
RUN_HEALTH = "run-health"  # /healthz, handed on only while the run is queued
RUN_HEADER = "run-header"
RUN_TITLE = "run-title"
RUN_FULL_NAME = "run-full-name"
RUN_STATUS = "run-status-badge"
RUN_F1_AT_BEST = "run-f1-at-best"  # F1/SHD at the label-free best checkpoint
RUN_MAX_F1 = "run-max-f1"  # the highest F1 of any evaluation
RUN_PROGRESS = "run-progress"
RUN_PROGRESS_TEXT = "run-progress-text"
RUN_STOP = "run-stop"
RUN_SWEEP = "run-sweep"  # the link to the sweep a member run belongs to
RUN_EDIT = "run-edit-restart"  # opens the launch form pre-filled with this run's config
RUN_SHOWN = "run-shown"  # what the panels show now: re-render only what changed
RUN_MESSAGE = "run-message"
RUN_STATE = "run-state"  # the progress line's state: run_state.progress_state
RUN_WAITING = "run-waiting"  # the charts' placeholder until the first epoch
RUN_STOPPING = "run-stopping"  # "Stopping…", closed when the run has ended
RUN_REDIRECT = "run-redirect"
ALERTS = "run-alerts"
RESTART = "restart-with-fix"  # pattern-matching: {"type": RESTART, "alert": <alert id>}
RESTART_REQUEST = "restart-request"  # the clicked alert, handed to the server callback
SCORECARD = "run-scorecard"
HEATMAP = "graph-adjacency"
GRAPH_PREFIX = "graph-"
LIVE_CHART = "live-chart"  # the class of every chart live.js extends with new records
CHART_BOX = "chart-box"  # a live chart and its waiting line (classes)
CHART_WAITING = "chart-waiting"
CUSTOM_BOX = "custom-box"  # the training loop's own metrics: hidden until a record has one
CUSTOM_GRAPH = "graph-custom"
CUSTOM_PICKER = "custom-picker"  # which of many custom keys the chart shows
LIVE_GRAPHS = (
    "clip", "loss-shares", "loss-total", "logit-std", "lr", "edges", "accuracy", "grad-terms",
    "update-ratio",
)

# the pages that list runs follow WS /ws/runs (dashboard/runs_feed.py, assets/runs_feed.js)
RUNS_FEED = "runs-feed"  # bumped when a run the page shows changed: re-read then
RUNS_FEED_SCOPE = "runs-feed-scope"  # which runs' events count: runs_feed.scope
RUNS_FEED_BOX = "runs-feed-box"  # in the DOM while a page with a feed is shown

# runs page
RUNS_TABLE = "runs-table"
RUNS_COMPARE = "runs-compare"
RUNS_STOP = "runs-stop"
RUNS_MESSAGE = "runs-message"
RUNS_EMPTY = "runs-empty"  # the first-time hint shown instead of an empty table

# compare page
COMPARE_RUNS = "compare-runs"
COMPARE_METRIC = "compare-metric"
COMPARE_GRAPH = "compare-graph"
COMPARE_CONFIG = "compare-config"

# sweep page
SWEEP_ID = "sweep-id"
SWEEP_SUMMARY = "sweep-summary"
SWEEP_TABLE = "sweep-table"
SWEEP_PLOT = "sweep-plot"
SWEEP_PLOT_NOTE = "sweep-plot-note"
SWEEP_LEVELS = "sweep-levels"  # scorecard levels kept per member: {id: [status, epoch, level]}
SWEEP_SHOWN = "sweep-shown"  # what the page shows now: redraw only when it changes
SWEEPS_TABLE = "sweeps-table"  # the list of sweeps


def graph_id(name: str) -> str:
    return GRAPH_PREFIX + name
