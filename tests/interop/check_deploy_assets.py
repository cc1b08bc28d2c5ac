#!/usr/bin/env python3
"""Checks the Prometheus and Grafana assets under deploy/ against the metric
catalogue orderflow exports, so a renamed metric cannot leave an alert that
never fires or a dashboard panel that stays empty.

    python3 tests/interop/check_deploy_assets.py [REPO_ROOT]

For every PromQL expression (the `expr` of each rule in
deploy/prometheus/alerts.yml, and of each target of every dashboard in
deploy/grafana/dashboards/), it extracts the `orderflow_*` names and checks
each is in the catalogue below, where `_bucket`, `_sum` and `_count` are
allowed on histograms only; and it checks that the labels the expression
groups by or matches on are labels of the metrics it uses. It also checks the
files load and hang together (rule annotations, rule_files, datasource uid).

Stdlib only, plus PyYAML when it is importable; without PyYAML the alert
expressions are found with a line-based reader of `expr:` entries and the
other YAML files are only checked to exist. Exits 1 listing every problem.
"""

import json
import re
import sys
from pathlib import Path

try:
    import yaml  # type: ignore
except ImportError:  # a bare machine: fall back to reading `expr:` lines
    yaml = None

# name -> (type, labels). Fixed names: see src/telemetry/.
CATALOG = {
    "orderflow_http_requests_total": ("counter", {"method", "route", "status"}),
    "orderflow_http_request_duration_seconds": ("histogram", {"method", "route"}),
    "orderflow_orders_ended_total": ("counter", {"status"}),
    "orderflow_saga_duration_seconds": ("histogram", {"status"}),
    "orderflow_step_duration_seconds": ("histogram", {"step"}),
    "orderflow_actors_live": ("gauge", {"kind"}),
    "orderflow_actor_passivations_total": ("counter", {"kind"}),
    "orderflow_entities_parked": ("gauge", {"kind"}),
    "orderflow_entity_passivations_total": ("counter", {"kind"}),
    "orderflow_actor_restarts_total": ("counter", {"kind"}),
    "orderflow_occ_conflicts_total": ("counter", {"kind"}),
    "orderflow_duplicates_dropped_total": ("counter", {"kind"}),
    "orderflow_inbox_messages_total": ("counter", {"consumer", "outcome"}),
    "orderflow_consumer_pending": ("gauge", {"consumer"}),
    "orderflow_consumer_ack_pending": ("gauge", {"consumer"}),
    "orderflow_dead_letters_received_total": ("counter", {"consumer"}),
    "orderflow_dead_letters_replayed_total": ("counter", set()),
    "orderflow_dead_letters_discarded_total": ("counter", set()),
    "orderflow_dead_letters_backlog": ("gauge", set()),
    "orderflow_gateway_breaker_state": ("gauge", {"provider"}),
    "orderflow_gateway_breaker_transitions_total": ("counter", {"provider", "to"}),
    "orderflow_gateway_breaker_rejected_total": ("counter", {"provider"}),
    "orderflow_gateway_calls_total": ("counter", {"provider", "operation", "outcome"}),
    "orderflow_gateway_call_duration_seconds": ("histogram", {"provider", "operation"}),
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
DATASOURCE_UID = "prometheus"

METRIC_RE = re.compile(r"orderflow_[a-z_]+")
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER_RE = re.compile(r"\{([^{}]*)\}")
MATCHER_LABEL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def resolve(name):
    """(catalogue name, problem or None) of one name found in an expression."""
    if name in CATALOG:
        return name, None
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in CATALOG:
                if CATALOG[base][0] == "histogram":
                    return base, None
                return None, f"{name}: {suffix} on {base}, which is a {CATALOG[base][0]}, not a histogram"
    return None, f"{name}: not an orderflow metric"


def check_expr(where, expr, problems):
    """Checks one PromQL expression; returns the catalogue names it uses."""
    used = set()
    for name in METRIC_RE.findall(expr):
        base, problem = resolve(name)
        if problem:
            problems.append(f"{where}: unknown metric {problem}")
        else:
            used.add(base)
    if not used:
        return used
    allowed = set(TARGET_LABELS)
    for base in used:
        allowed |= CATALOG[base][1]
        if CATALOG[base][0] == "histogram":
            allowed.add("le")
    labels = set()
    for group in GROUPING_RE.findall(expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    for selector in MATCHER_RE.findall(expr):
        # Grafana's legend-style {{...}} never reaches here: legends are not
        # expressions. Strip quoted values so `=` inside them is not a label.
        selector = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', selector)
        labels |= set(MATCHER_LABEL_RE.findall(selector))
    labels.discard("__name__")
    for label in sorted(labels - allowed):
        problems.append(
            f"{where}: label {label!r} is not a label of {', '.join(sorted(used))} "
            f"(those have {', '.join(sorted(allowed))})"
        )
    return used


def alert_exprs_by_lines(text):
    """(rule name, expr) pairs of an alerts file, read without a YAML parser:
    `expr:` with an inline value, or a block scalar (`|`, `>`) on the lines
    indented deeper than the key."""
    lines = text.splitlines()
    out = []
    name = "?"
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*-?\s*(?:alert|record):\s*(.+?)\s*$", line)
        if m:
            name = m.group(1).strip("'\"")
        m = re.match(r"^(\s*)-?\s*expr:\s*(.*?)\s*$", line)
        if m:
            indent, value = len(m.group(1)), m.group(2)
            if value and value[0] in "|>":
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                out.append((name, " ".join(b for b in block if b)))
                continue
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out.append((name, value))
        i += 1
    return out


def dashboard_exprs(dashboard):
    """(panel title, expr) of every target, rows' nested panels included."""

    def walk(panels):
        for panel in panels or []:
            yield from walk(panel.get("panels"))
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    yield panel.get("title", "?"), target["expr"]

    return list(walk(dashboard.get("panels")))


def datasource_uids(node):
    """Every datasource uid a dashboard refers to."""
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and ds.get("type") == "prometheus":
            yield ds.get("uid")
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def load_yaml(path, problems):
    try:
        return yaml.safe_load(path.read_text())
    except Exception as e:  # yaml.YAMLError, OSError
        problems.append(f"{path}: does not load: {e}")
        return None


def check_compose(path, prometheus, problems):
    """What `docker compose config` would catch that matters here (Docker is
    not available on every machine that runs the tests): the file loads with
    its anchors, three NATS members route to each other, three orderflow
    nodes know every member and ask for R3, host ports are distinct, and
    Prometheus scrapes exactly the orderflow services."""
    compose = load_yaml(path, problems)
    if compose is None:
        return
    services = compose.get("services") or {}
    nats = sorted(n for n in services if n.startswith("nats-"))
    apps = sorted(n for n in services if n.startswith("orderflow-"))
    if len(nats) != 3 or len(apps) != 3:
        problems.append(f"{path}: wants 3 nats-* and 3 orderflow-* services, has {nats} and {apps}")
    for name in nats:
        env = services[name].get("environment") or {}
        routes = {env.get(f"NATS_ROUTE_{i}") for i in (1, 2, 3)}
        if routes != {f"nats://{n}:6222" for n in nats} or not env.get("NATS_NAME"):
            problems.append(f"{path}: {name} does not route to every member: {sorted(map(str, routes))}")
    for name in apps:
        env = services[name].get("environment") or {}
        urls = set(str(env.get("ORDERFLOW_NATS__URL", "")).split(","))
        if urls != {f"nats://{n}:4222" for n in nats}:
            problems.append(f"{path}: {name} does not name every NATS member: {sorted(urls)}")
        if str(env.get("ORDERFLOW_NATS__REPLICAS")) != "3":
            problems.append(f"{path}: {name} does not ask for R3 streams")
        if "build" not in services[name]:
            problems.append(f"{path}: {name} is not built from the repository's Dockerfile")
    host_ports = [p.rsplit(":", 1)[0] for svc in services.values() for p in svc.get("ports") or []]
    if len(host_ports) != len(set(host_ports)):
        problems.append(f"{path}: a host port is published twice: {sorted(host_ports)}")
    targets = {
        t for job in prometheus.get("scrape_configs") or [] for sc in job.get("static_configs") or []
        for t in sc.get("targets") or []
    }
    if targets != {f"{a}:8080" for a in apps}:
        problems.append(f"{path}: Prometheus scrapes {sorted(targets)}, not the orderflow services")


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    deploy = root / "deploy"
    prometheus_yml = deploy / "prometheus" / "prometheus.yml"
    alerts_yml = deploy / "prometheus" / "alerts.yml"
    datasources_yml = deploy / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    providers_yml = deploy / "grafana" / "provisioning" / "dashboards" / "orderflow.yml"
    dashboards = sorted((deploy / "grafana" / "dashboards").glob("*.json"))

    problems = []
    for path in (prometheus_yml, alerts_yml, datasources_yml, providers_yml):
        if not path.is_file():
            problems.append(f"{path}: missing")
    if not dashboards:
        problems.append(f"{deploy / 'grafana' / 'dashboards'}: no dashboard")
    if problems:
        return report(problems, 0, set())

    exprs = []  # (where, expr)
    if yaml is not None:
        alerts = load_yaml(alerts_yml, problems) or {}
        for group in alerts.get("groups") or []:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record") or "?"
                where = f"{alerts_yml.name}: {name}"
                if not str(rule.get("expr") or "").strip():
                    problems.append(f"{where}: no expr")
                    continue
                exprs.append((where, str(rule["expr"])))
                if "alert" in rule:
                    annotations = rule.get("annotations") or {}
                    for key in ("summary", "description"):
                        if not str(annotations.get(key) or "").strip():
                            problems.append(f"{where}: no {key} annotation")
        if not exprs:
            problems.append(f"{alerts_yml}: no rule")
        config = load_yaml(prometheus_yml, problems) or {}
        if "alerts.yml" not in (config.get("rule_files") or []):
            problems.append(f"{prometheus_yml}: rule_files does not load alerts.yml")
        if not any(job.get("static_configs") for job in config.get("scrape_configs") or []):
            problems.append(f"{prometheus_yml}: no scrape target")
        sources = (load_yaml(datasources_yml, problems) or {}).get("datasources") or []
        if DATASOURCE_UID not in {s.get("uid") for s in sources}:
            problems.append(f"{datasources_yml}: no datasource with uid {DATASOURCE_UID!r}")
        load_yaml(providers_yml, problems)
        check_compose(root / "docker-compose.yml", config, problems)
    else:
        print("check_deploy_assets: PyYAML not importable; reading alert expressions line by line", file=sys.stderr)
        found = alert_exprs_by_lines(alerts_yml.read_text())
        if not found:
            problems.append(f"{alerts_yml}: no expr found")
        exprs += [(f"{alerts_yml.name}: {name}", expr) for name, expr in found]

    for path in dashboards:
        try:
            dashboard = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            problems.append(f"{path}: does not load: {e}")
            continue
        found = dashboard_exprs(dashboard)
        if not found:
            problems.append(f"{path}: no query")
        exprs += [(f"{path.name}: {title}", expr) for title, expr in found]
        for uid in set(datasource_uids(dashboard)) - {DATASOURCE_UID}:
            problems.append(f"{path}: datasource uid {uid!r} is not the provisioned {DATASOURCE_UID!r}")

    used = set()
    for where, expr in exprs:
        used |= check_expr(where, expr, problems)
    return report(problems, len(exprs), used)


def report(problems, n_exprs, used):
    if problems:
        print(f"check_deploy_assets: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    unused = sorted(set(CATALOG) - used)
    print(f"check_deploy_assets: ok: {n_exprs} expressions, {len(used)} of {len(CATALOG)} catalogue metrics used")
    if unused:
        print(f"  not used anywhere: {', '.join(unused)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
