//! Python's in-place list and dict methods, and macros that read `varargs` / `kwargs`, as
//! StackStorm's Jinja2 environment runs them.

use serde_json::json;
use st2_core::expr::ErrorKind;
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};

fn ctx() -> RenderContext {
    let vars = json!({
        "l": [3, 1, 2],
        "d": {"x": 1, "y": "two"},
        "hosts": [{"name": "a", "up": true}, {"name": "b", "up": false}, {"name": "c", "up": true}],
    });
    RenderContext::new(vars.as_object().cloned().unwrap_or_default())
}

fn render(template: &str) -> String {
    Jinja::new(JinjaConfig::default())
        .render(template, &ctx())
        .unwrap_or_else(|e| panic!("{template}: {e}"))
}

fn error(template: &str) -> String {
    match Jinja::new(JinjaConfig::default()).render(template, &ctx()) {
        Ok(out) => panic!("{template}: rendered {out:?}"),
        Err(e) => e.message,
    }
}

#[test]
fn lists_built_in_a_loop() {
    assert_eq!(
        render(
            "{% set up = [] %}{% for h in hosts %}{% if h.up %}\
             {% set _ = up.append(h.name) %}{% endif %}{% endfor %}{{ up | join(',') }} {{ up }}"
        ),
        "a,c ['a', 'c']"
    );
    assert_eq!(
        render(
            "{% set m = {} %}{% for h in hosts %}{% set _ = m.update({h.name: h.up}) %}{% endfor %}{{ m }}"
        ),
        "{'a': True, 'b': False, 'c': True}"
    );
}

#[test]
fn context_containers_change_in_place_and_are_shared() {
    assert_eq!(
        render("{% set alias = l %}{{ alias.append(4) }}{{ l }} {{ l | length }}"),
        "None[3, 1, 2, 4] 4"
    );
    assert_eq!(render("{{ d.update({'w': 1}) }}{{ d.w }}"), "None1");
    assert_eq!(
        render("{{ d.update(z=3) }}{{ d.setdefault('x', 9) }}{{ d.setdefault('n') }}{{ d }}"),
        "None1None{'x': 1, 'y': 'two', 'z': 3, 'n': None}"
    );
    assert_eq!(
        render("{{ d.pop('x') }}{{ d.pop('q', 'dflt') }}{{ d.popitem() }}{{ d }}"),
        "1dflt('y', 'two'){}"
    );
    // What reading methods and filters see after a change.
    assert_eq!(
        render(
            "{% set _ = l.append(0) %}{{ l | sort }} {{ l[-1] }} {{ 0 in l }} {{ l == [3, 1, 2, 0] }} \
             {{ l.count(1) }} {{ l.index(2) }} {{ d.items() | list }} {{ l | tojson }}"
        ),
        "[0, 1, 2, 3] 0 True True 1 2 [('x', 1), ('y', 'two')] [3, 1, 2, 0]"
    );
}

#[test]
fn every_list_method() {
    assert_eq!(
        render(
            "{% set x = [1, 2] %}{% set _ = x.extend([3, 4]) %}{% set _ = x.insert(0, 0) %}\
             {% set _ = x.insert(-1, 'n') %}{% set _ = x.insert(99, 'end') %}{{ x }} \
             {{ x.pop() }} {{ x.pop(0) }} {% set _ = x.remove('n') %}{{ x }} \
             {% set _ = x.reverse() %}{{ x }} {% set _ = x.sort() %}{{ x }} \
             {% set _ = x.sort(reverse=true) %}{{ x }} {% set y = x.copy() %}{% set _ = y.clear() %}{{ y }}{{ x }}"
        ),
        "[0, 1, 2, 3, 'n', 4, 'end'] end 0 [1, 2, 3, 4] [4, 3, 2, 1] [1, 2, 3, 4] [4, 3, 2, 1] [][4, 3, 2, 1]"
    );
    assert_eq!(
        render("{% set x = [1] %}{% set _ = x.extend(x) %}{% set _ = x.extend(x) %}{{ x }}"),
        "[1, 1, 1, 1]"
    );
    // Nested literals are mutable too.
    assert_eq!(
        render(
            "{% set grid = [[1], {'k': []}] %}{% set _ = grid[0].append(2) %}{% set _ = grid[1].k.append(3) %}{{ grid }}"
        ),
        "[[1, 2], {'k': [3]}]"
    );
}

#[test]
fn python_errors() {
    assert!(error("{% set x = [] %}{{ x.pop() }}").contains("pop from empty list"));
    assert!(error("{% set x = [1] %}{{ x.pop(5) }}").contains("pop index out of range"));
    assert!(error("{% set x = [1] %}{{ x.remove(2) }}").contains("x not in list"));
    assert!(error("{{ d.pop('nope') }}").contains("KeyError: 'nope'"));
    assert!(error("{% set x = [1, 'a'] %}{{ x.sort() }}").contains("TypeError"));
    assert!(error("{{ l.append() }}").contains("exactly 1 argument"));
    assert!(error("{{ l.extend(5) }}").contains("not iterable"));
    assert!(error("{{ d.update([1]) }}").contains("element #0"));
}

#[test]
fn a_container_never_holds_itself() {
    for t in [
        "{{ l.append(l) }}",
        "{% set a = [] %}{% set b = [a] %}{{ a.append(b) }}",
        "{% set a = {} %}{{ a.update({'me': [a]}) }}",
        "{% set a = [] %}{{ a.extend([[a]]) }}",
        "{% set a = [] %}{% set b = [a] | list %}{{ a.append(b) }}",
    ] {
        assert!(error(t).contains("cannot be made to hold itself"), "{t}");
    }
    // The same value twice is fine.
    assert_eq!(
        render(
            "{% set a = [1] %}{% set b = [] %}{% set _ = b.append(a) %}{% set _ = b.append(a) %}{{ b }}"
        ),
        "[[1], [1]]"
    );
}

#[test]
fn values_built_by_filters_say_why_they_cannot_change() {
    let message = error("{% set x = l | list %}{{ x.append(1) }}");
    assert!(
        message.contains("cannot change this value in place"),
        "{message}"
    );
}

#[test]
fn templates_without_mutation_are_unchanged() {
    // A template that never mutates keeps minijinja's values (and its output).
    assert_eq!(
        render("{{ l }} {{ d }} {{ [1, [2]] }}"),
        "[3, 1, 2] {'x': 1, 'y': 'two'} [1, [2]]"
    );
}

#[test]
fn expressions_keep_their_type() {
    let jinja = Jinja::new(JinjaConfig::default());
    let v = jinja
        .eval_json("[l.append(9), l][1]", &ctx())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v, json!([3, 1, 2, 9]));
}

#[test]
fn macros_collect_extra_arguments() {
    assert_eq!(
        render("{% macro m(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"),
        "(2,){'k': 3}"
    );
    assert_eq!(
        render("{% macro m() %}{{ varargs | join('-') }}{% endmacro %}{{ m(1, 2, 3) }}|{{ m() }}"),
        "1-2-3|"
    );
    assert_eq!(
        render(
            "{% macro m(a, b=2) %}{{ a }}{{ b }}{{ kwargs }}{% endmacro %}{{ m(1) }} {{ m(1, b=5, c=6, a2=7) }}"
        ),
        "12{} 15{'c': 6, 'a2': 7}"
    );
    // Only what the body reads is accepted.
    assert!(
        error("{% macro m(a) %}{{ kwargs }}{% endmacro %}{{ m(1, 2) }}")
            .contains("takes not more than 1 argument")
    );
    assert!(
        error("{% macro m(a) %}{{ varargs }}{% endmacro %}{{ m(1, z=2) }}")
            .contains("no keyword argument 'z'")
    );
    assert!(error("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}").contains("too many"));
    // `caller` still reaches a wrapped macro; whitespace control is kept.
    assert_eq!(
        render(
            "{% macro box() -%}[{{ caller() }}{{ varargs }}]{%- endmacro -%}\n  \
             {% call box() %}in{% endcall %}"
        ),
        "[in()]"
    );
}

#[test]
fn the_do_tag_is_not_jinja2s_default() {
    let e = Jinja::new(JinjaConfig::default())
        .render("{% do l.append(1) %}", &ctx())
        .expect_err("do is an extension");
    assert_eq!(e.kind, ErrorKind::Syntax);
    // A variable called `do…` is fine.
    assert_eq!(render("{% set done = 1 %}{{ done }}"), "1");
}
