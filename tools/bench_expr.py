#!/usr/bin/env python3
"""Time the expression benchmarks with Python yaql 3.2.0 and Jinja2 3.1.6, next to ours.

Usage (from the repository root):

    cargo bench -p st2-core --bench expr      # ours; criterion saves its estimates
    python3 tools/bench_expr.py               # Python's, plus the ratio to ours

The first run creates a virtualenv under $TMPDIR (yaql==3.2.0, jinja2==3.1.6 from PyPI) and
reuses it afterwards. The expressions and data are the ones st2-core/benches/expr.rs uses.
"""

import json
import os
import subprocess
import sys
import tempfile
import timeit

VENV = os.path.join(tempfile.gettempdir(), "st2-rs-bench-venv")
PINS = ["yaql==3.2.0", "jinja2==3.1.6"]

YAQL_EXPR = "ctx(items).where($.size > 2).select($.name)"
JINJA_TEMPLATE = (
    "{{ trigger.host }}: {{ trigger.status | upper }} after {{ trigger.checks | length }} checks"
    " ({{ trigger.checks | map(attribute='name') | join(', ') }})"
    "{% if trigger.severity > 3 %} [critical]{% endif %}"
)


def items():
    return [{"name": "item%d" % i, "size": i % 5} for i in range(100)]


def trigger():
    return {
        "host": "web-01.example.com",
        "status": "degraded",
        "severity": 4,
        "checks": [{"name": "check%d" % i, "ok": i % 2 == 0} for i in range(5)],
    }


def ensure_venv():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "--quiet"] + PINS)
    return python


def per_call(fn, number):
    """Best of five runs, in nanoseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def inner():
    import jinja2
    import jinja2.sandbox
    import yaql
    from yaql.language import utils as yaql_utils

    # What orquesta builds: a root context with the standard library and ctx(), the
    # workflow data converted to hashable form under __vars.
    engine = yaql.language.factory.YaqlFactory().create()
    root = yaql.create_context()

    def ctx_(context, key=None):
        data = context["__vars"]
        return data if key is None else data[key]

    root.register_function(ctx_, name="ctx")
    context = root.create_child_context()
    context["__vars"] = yaql_utils.convert_input_data({"items": items()})
    compiled = engine(YAQL_EXPR)
    result = compiled.evaluate(context=context)
    assert len(result) == 40, result

    env = jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    template = env.from_string(JINJA_TEMPLATE)
    data = {"trigger": trigger()}
    print(template.render(data), file=sys.stderr)

    results = {
        "yaql_where_select_100": per_call(lambda: compiled.evaluate(context=context), 200),
        "yaql_compile": per_call(lambda: engine(YAQL_EXPR), 500),
        "jinja_rule_parameter": per_call(lambda: template.render(data), 2000),
    }
    print(json.dumps(results))


def rust_estimate(name):
    path = os.path.join("target", "criterion", "expr", name, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def main():
    if "--inner" in sys.argv:
        inner()
        return
    python = ensure_venv()
    out = subprocess.check_output([python, os.path.abspath(__file__), "--inner"])
    python_ns = json.loads(out)
    print("%-24s %14s %14s %10s" % ("benchmark", "python (ns)", "rust (ns)", "ratio"))
    for name, py in python_ns.items():
        rs = rust_estimate(name)
        if rs is None:
            print("%-24s %14.0f %14s %10s" % (name, py, "-", "-"))
        else:
            print("%-24s %14.0f %14.0f %9.1fx" % (name, py, rs, py / rs))


if __name__ == "__main__":
    main()
