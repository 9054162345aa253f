"""control.agent.intent's label selectors against tests/selector_ref.py (Kubernetes semantics), for random
selectors and label sets: what they match, what they refuse and which field the refusal names; then every
selector field of the intent, with ``{}``, absent, null and matchExpressions."""
from __future__ import annotations

import dataclasses
import itertools
import textwrap

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

import selector_ref as ref
from control.agent.compiler import compile_cluster
from control.lab.expect import Expectation
from control.agent.intent import (EVERYTHING, NOTHING, IntentError, LabelSelector, Requirement, SelectorError, load,
                                  match_labels)
from policy_ref import ListRef
from vrouter.flow import make_key
from vrouter.policy import DIRECTIONS

MANY = settings(max_examples=settings().max_examples * 5)      # cheap: 300 by default, profile-scaled

KEYS = ["app", "tier", "env", "example.com/team", "a.b-c_d", "x" * 63, "k8s.io/" + "n" * 63, "A1"]
BAD_KEYS = ["", "-app", "app-", "a b", "a/b/c", "/app", "app/", "Example.com/app", "ex_ample.com/app", "x" * 64,
            "é", ".app", "a" * 254 + "/x", 7]
VALUES = ["a", "b", "c", "", "v-1.2_3", "z" * 63, "A"]
BAD_VALUES = ["-a", "a-", "a b", "z" * 64, "é", "a/b", 1, True, None, 2.5]
OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"]
BAD_OPERATORS = ["in", "notin", "Equals", "=", "", "DoesntExist", None, 3]


@st.composite
def requirements(draw, keys=KEYS, values=VALUES):
    op = draw(st.sampled_from(OPERATORS))
    r = {"key": draw(st.sampled_from(keys)), "operator": op}
    if op in ("In", "NotIn"):
        r["values"] = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
    else:
        shape = draw(st.sampled_from(["absent", "empty", "null"]))
        if shape != "absent":
            r["values"] = [] if shape == "empty" else None
    return r


@st.composite
def selectors(draw, keys=KEYS, values=VALUES):
    """A valid LabelSelector in YAML form: None (null), {}, or matchLabels and/or matchExpressions, each
    absent, null, empty or filled."""
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return None
    out = {}
    for fld, items in (("matchLabels", st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=3)),
                       ("matchExpressions", st.lists(requirements(keys, values), max_size=3))):
        how = draw(st.sampled_from(["absent", "null", "empty", "filled", "filled"]))
        if how == "null":
            out[fld] = None
        elif how == "empty":
            out[fld] = {} if fld == "matchLabels" else []
        elif how == "filled":
            out[fld] = draw(items)
    return out


@st.composite
def labels_for(draw, raw):
    """Labels likely to make ``raw`` hold or fail narrowly: every key it names present with one of its
    values, another value, or absent; plus a random label or two."""
    names = set((raw or {}).get("matchLabels") or {})
    vals = set(((raw or {}).get("matchLabels") or {}).values())
    for r in (raw or {}).get("matchExpressions") or []:
        names.add(r["key"])
        vals.update(r.get("values") or [])
    out = {}
    for k in sorted(names, key=str):
        how = draw(st.sampled_from(["known", "known", "other", "absent"]))
        if how == "known" and vals:
            out[k] = draw(st.sampled_from(sorted(vals)))
        elif how != "absent":
            out[k] = draw(st.sampled_from(VALUES))
    out.update(draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)))
    return out


@MANY
@given(data=st.data())
def test_matches_like_kubernetes(data):
    raw = data.draw(selectors())
    labels = data.draw(labels_for(raw))
    sel = LabelSelector.parse(raw, "s")
    want = ref.matches(raw, labels)
    assert sel.matches(labels) == want, (raw, labels, str(sel))
    assert match_labels(sel, labels) == want
    # parsed once: the same selector again is equal (and hashes alike); printing it loses nothing
    assert sel == LabelSelector.parse(raw, "t") and hash(sel) == hash(LabelSelector.parse(raw, "t"))


def test_matches_covers_both_answers_and_every_operator():
    # the property above would be weak if random selectors almost never matched (or always did)
    seen = set()
    for raw, labels, want in [
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]}, {"app": "b"}, True),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {"app": "a"}, False),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {"app": ""}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": ""}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": []}]}, {"app": ""}, False),
        ({"matchLabels": {"app": ""}}, {}, False),
        ({"matchLabels": {"app": ""}}, {"app": ""}, True),
        ({"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "a"},
         False),
        ({}, {}, True), ({"matchLabels": None, "matchExpressions": None}, {"x": "y"}, True), (None, {}, False),
    ]:
        assert LabelSelector.parse(raw).matches(labels) is want and ref.matches(raw, labels) is want, raw
        seen.add(want)
    assert seen == {True, False}


# ---------------------------------------------------------------------------------------------- validation

def _mutations(draw, raw: dict) -> dict:
    """``raw`` with one thing a user gets wrong."""
    what = draw(st.sampled_from(["label-key", "label-value", "req-key", "req-value", "operator", "values-shape",
                                 "unknown-field", "unknown-req-field", "not-a-mapping", "req-not-a-mapping",
                                 "labels-not-a-mapping", "exprs-not-a-list", "misplaced-exprs"]))
    raw = dict(raw)
    if not isinstance(raw.get("matchLabels") or {}, dict) or not isinstance(raw.get("matchExpressions") or [], list):
        return raw                      # already broken at that level by an earlier mutation
    ml = dict(raw.get("matchLabels") or {})
    me = [dict(r) if isinstance(r, dict) else r for r in raw.get("matchExpressions") or []]
    if what == "label-key":
        ml[draw(st.sampled_from(BAD_KEYS))] = draw(st.sampled_from(VALUES))
    elif what == "label-value":
        ml[draw(st.sampled_from(KEYS))] = draw(st.sampled_from(BAD_VALUES))
    elif what == "req-key":
        me.append({"key": draw(st.sampled_from(BAD_KEYS + [None])), "operator": "Exists"})
    elif what == "req-value":
        me.append({"key": "app", "operator": draw(st.sampled_from(["In", "NotIn"])),
                   "values": ["a", draw(st.sampled_from(BAD_VALUES))]})
    elif what == "operator":
        me.append({"key": "app", "operator": draw(st.sampled_from(BAD_OPERATORS)), "values": ["a"]})
    elif what == "values-shape":
        op = draw(st.sampled_from(OPERATORS))
        me.append({"key": "app", "operator": op,
                   "values": draw(st.sampled_from([[], None, "a", {"a": 1}])) if op in ("In", "NotIn")
                   else draw(st.sampled_from([["a"], [""], "a"]))})
    elif what == "unknown-field":
        unknown = ["matchlabels", "matchLabel", "app", "key", "operator", "values", "MatchExpressions"]
        raw[draw(st.sampled_from(unknown))] = {}
    elif what == "unknown-req-field":
        me.append({"key": "app", "operator": "Exists", draw(st.sampled_from(["value", "Values", "op", "x"])): ["a"]})
    elif what == "not-a-mapping":
        return draw(st.sampled_from([[], ["app"], "app=a", 3, True]))
    elif what == "req-not-a-mapping":
        me.append(draw(st.sampled_from(["app", ["app", "In"], 1])))
    elif what == "labels-not-a-mapping":
        raw["matchLabels"] = draw(st.sampled_from([["app"], "app=a", 1]))
        return raw
    elif what == "exprs-not-a-list":
        raw["matchExpressions"] = draw(st.sampled_from([{"key": "app", "operator": "Exists"}, "app", 1]))
        return raw
    elif what == "misplaced-exprs":
        ml["matchExpressions"] = [{"key": "app", "operator": "Exists"}]
    if ml:
        raw["matchLabels"] = ml
    if me:
        raw["matchExpressions"] = me
    return raw


@st.composite
def any_selectors(draw):
    raw = draw(selectors())
    if raw is not None and draw(st.integers(0, 3)):
        for _ in range(draw(st.integers(1, 2))):
            raw = _mutations(draw, raw) if isinstance(raw, dict) else raw
    return raw


@MANY
@given(raw=any_selectors())
def test_refuses_what_kubernetes_refuses_and_names_the_field(raw):
    want = ref.problems(raw, "spec.x")
    try:
        sel = LabelSelector.parse(raw, "spec.x")
    except SelectorError as e:
        assert want, f"refused a valid selector {raw!r}: {e}"
        assert e.field in want, (e.field, want, raw)
        assert e.msg and str(e) == f"{e.field}: {e.msg}"
    else:
        assert not want, f"accepted {raw!r}, which is wrong at {want}"
        assert isinstance(sel, LabelSelector)


@settings(max_examples=settings().max_examples * 2)
@given(raw=any_selectors().filter(lambda r: r is not None))
def test_a_policy_with_a_bad_selector_is_refused_naming_file_document_and_field(raw):
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "n"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": raw}]}]}}
    path = "spec.ingress[0].from[0].podSelector"
    want = ref.problems(raw, path)
    text = yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}, doc])
    try:
        load([("np.yaml", text)])
    except IntentError as e:
        assert want and e.field in want, (str(e), want)
        assert (e.file, e.doc, e.kind, e.namespace, e.name) == ("np.yaml", 2, "NetworkPolicy", "n", "p")
        assert str(e).startswith(f"np.yaml doc 2 (NetworkPolicy n/p): {e.field}: ")
    else:
        assert not want


@pytest.mark.parametrize("raw,fld,text", [
    ({"matchExpressions": [{"key": "app", "operator": "In"}]}, "s.matchExpressions[0].values",
     "must be given (at least one value) when operator is In"),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": []}]}, "s.matchExpressions[0].values",
     "at least one value"),
    ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["a"]}]}, "s.matchExpressions[0].values",
     "must be empty when operator is Exists"),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": ["a"]}]},
     "s.matchExpressions[0].values", "must be empty when operator is DoesNotExist"),
    ({"matchExpressions": [{"key": "app", "operator": "in", "values": ["a"]}]}, "s.matchExpressions[0].operator",
     "unknown operator 'in' (one of In, NotIn, Exists, DoesNotExist; did you mean In?)"),
    ({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["a"]}]}, "s.matchExpressions[0].operator",
     "unknown operator 'Equals'"),
    ({"matchExpressions": [{"key": "app"}]}, "s.matchExpressions[0].operator", "missing"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "s.matchExpressions[0].key", "missing"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "value": ["a"]}]}, "s.matchExpressions[0].value",
     "unknown field (did you mean values?)"),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": "a"}]}, "s.matchExpressions[0].values",
     "must be a list of strings"),
    ({"matchExpressions": [{"key": "v", "operator": "In", "values": [True]}]}, "s.matchExpressions[0].values[0]",
     'must be a string, not True (quote it: "true")'),
    ({"matchExpressions": {"key": "app", "operator": "Exists"}}, "s.matchExpressions", "must be a list"),
    ({"matchLabels": {"app": "web", "matchExpressions": [{"key": "a", "operator": "Exists"}]}},
     "s.matchLabels.matchExpressions", "misplaced: matchExpressions goes beside matchLabels, not inside it"),
    ({"matchLabels": {"app": 1}}, "s.matchLabels.app", "label keys and values must be strings, not 1 (quote it)"),
    ({"matchLabels": {"app": "x" * 64}}, "s.matchLabels.app", "has 64 characters (at most 63)"),
    ({"matchLabels": {"app": "-web"}}, "s.matchLabels.app", "must be empty or alphanumeric characters"),
    ({"matchLabels": {"Example.com/app": "a"}}, "s.matchLabels.Example.com/app", "lowercase DNS subdomain"),
    ({"matchLabels": {"a/b/c": "a"}}, "s.matchLabels.a/b/c", "at most one '/'"),
    ({"matchLabels": {"x" * 64: "a"}}, "s.matchLabels." + "x" * 64, "the name part has 64 characters"),
    ({"vn": "web"}, "s.vn", "unknown field: a LabelSelector has matchLabels and matchExpressions only "
                            "(a label to match goes under matchLabels: {vn: ...})"),
    ({"matchlabels": {"vn": "web"}}, "s.matchlabels", "unknown field (did you mean matchLabels?)"),
    ({"key": "vn", "operator": "Exists"}, "s.key", "misplaced: key/operator/values go in an entry of matchExpressions"),
    (["vn"], "s", "must be a LabelSelector mapping"),
])
def test_selector_errors_name_the_field(raw, fld, text):
    with pytest.raises(SelectorError) as ei:
        LabelSelector.parse(raw, "s")
    assert ei.value.field == fld and text in ei.value.msg, str(ei.value)
    assert fld in ref.problems(raw, "s")          # the model agrees it is wrong there


def test_selector_values_are_immutable_and_built_validated():
    sel = LabelSelector.of({"tier": "web", "app": "a"}, Requirement("env", "NotIn", ("prod", "dev", "prod")))
    assert sel.match_labels == (("app", "a"), ("tier", "web")) and sel.labels == {"app": "a", "tier": "web"}
    assert sel.match_expressions[0].values == ("dev", "prod")
    assert str(sel) == "app=a,tier=web,env notin (dev,prod)"
    assert sel == LabelSelector.parse({"matchLabels": {"app": "a", "tier": "web"}, "matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["dev", "prod"]}]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        sel.null = True
    sel.labels["app"] = "b"                       # a copy
    assert sel.matches({"app": "a", "tier": "web"}) and not sel.matches({"app": "a", "tier": "web", "env": "dev"})
    assert str(EVERYTHING) == "<everything>" and EVERYTHING.empty and EVERYTHING.matches({})
    assert str(NOTHING) == "<nothing>" and not NOTHING.empty and not NOTHING.matches({})
    assert LabelSelector.parse(None) is NOTHING and LabelSelector.parse({}) == EVERYTHING
    assert [str(Requirement("k", op, v)) for op, v in (("In", ("a",)), ("Exists", ()), ("DoesNotExist", ()))] == [
        "k in (a)", "k", "!k"]
    for bad in [("k", "In", ()), ("k", "Exists", ("a",)), ("k", "Equals", ("a",)), ("-k", "Exists", ()),
                ("k", "In", ("-a",))]:
        with pytest.raises(ValueError):
            Requirement(*bad)
    with pytest.raises(ValueError):
        LabelSelector.of({"k": "a b"})
    with pytest.raises(ValueError):
        LabelSelector(null=True, match_labels=(("a", "b"),))


def test_match_labels_none_and_plain_mappings():
    # None: a left-out field whose rule is "no constraint" (what compiler.py and expect.py rely on)
    assert match_labels(None, {}) and match_labels(None, {"a": "b"})
    assert match_labels({}, {"a": "b"}) and match_labels({"a": "b"}, {"a": "b", "c": "d"})
    assert not match_labels({"a": "b"}, {"a": "c"}) and not match_labels({"a": "b"}, {})
    assert not match_labels(NOTHING, {}) and match_labels(EVERYTHING, {})
    assert match_labels(LabelSelector.parse({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}), {})


# ---------------------------------------------------------------------------------------------- in the intent

NSS = textwrap.dedent("""\
    apiVersion: v1
    kind: Namespace
    metadata: {name: a, labels: {team: x, env: prod}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: b, labels: {team: y}}
    ---
    apiVersion: v1
    kind: Namespace
    metadata: {name: c}
""")


def _vns(ns="a"):
    out = ""
    for name, labels in (("v1", "{role: hub}"), ("v2", "{role: spoke, tier: web}"), ("v3", "{}")):
        out += textwrap.dedent(f"""\
            ---
            apiVersion: core.contrail.juniper.net/v1alpha1
            kind: Subnet
            metadata: {{name: {name}-s, namespace: {ns}}}
            spec: {{cidr: 10.{ord(ns)}.{name[1]}.0/24}}
            ---
            apiVersion: core.contrail.juniper.net/v1alpha1
            kind: VirtualNetwork
            metadata: {{name: {name}, namespace: {ns}, labels: {labels}}}
            spec: {{v4SubnetReference: {{name: {name}-s}}}}
        """)
    return out


def _vnr(name, spec, ns="a", labels="{}"):
    return f"---\napiVersion: core.contrail.juniper.net/v1\nkind: VirtualNetworkRouter\n" \
           f"metadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec:\n" + textwrap.indent(spec, "  ")


def _members(spec):
    it = load(NSS + _vns() + _vnr("r", spec))
    return sorted(v.name for v in it.vnr_members(it.virtual_network_routers[("a", "r")]))


@pytest.mark.parametrize("selector,want", [
    ("{}", ["v1", "v2", "v3"]),
    ("{matchLabels: {}, matchExpressions: []}", ["v1", "v2", "v3"]),
    ("{matchLabels: {role: hub}}", ["v1"]),
    ("{matchExpressions: [{key: role, operator: In, values: [hub, spoke]}]}", ["v1", "v2"]),
    ("{matchExpressions: [{key: role, operator: NotIn, values: [hub]}]}", ["v2", "v3"]),
    ("{matchExpressions: [{key: role, operator: Exists}]}", ["v1", "v2"]),
    ("{matchExpressions: [{key: role, operator: DoesNotExist}]}", ["v3"]),
    ("{matchLabels: {tier: web}, matchExpressions: [{key: role, operator: In, values: [hub]}]}", []),
    ("{matchLabels: {tier: web}, matchExpressions: [{key: role, operator: NotIn, values: [hub]}]}", ["v2"]),
])
def test_vnr_virtual_network_selector(selector, want):
    assert _members(f"type: mesh\nvirtualNetworkSelector: {selector}\n") == want


@pytest.mark.parametrize("spec,fld,text", [
    ("type: mesh\n", "spec.virtualNetworkSelector",
     "missing (use {} for every VirtualNetwork of the namespace)"),
    ("type: mesh\nvirtualNetworkSelector:\n", "spec.virtualNetworkSelector", "missing"),          # null
    ("type: mesh\nvirtualNetworkSelector: {vn: web}\n", "spec.virtualNetworkSelector.vn",
     "a label to match goes under matchLabels"),
    ("type: mesh\nvirtualNetworkSelector: {}\nmatchExpressions: [{key: role, operator: Exists}]\n",
     "spec.matchExpressions", "misplaced: goes inside spec.virtualNetworkSelector"),
    ("type: mesh\nvirtualNetworkSelector: {}\nmatchLabels: {role: hub}\n", "spec.matchLabels",
     "misplaced: goes inside spec.virtualNetworkSelector"),
    ("type: mesh\nvirtualNetworkSelecter: {}\n", "spec.virtualNetworkSelecter",
     "unknown field (did you mean virtualNetworkSelector?)"),
    ("tpye: mesh\nvirtualNetworkSelector: {}\n", "spec.tpye", "unknown field (did you mean type?)"),
    ("type: mesh\nvirtualNetworkSelector: {matchExpressions: [{key: role, operator: Exists, values: [hub]}]}\n",
     "spec.virtualNetworkSelector.matchExpressions[0].values", "must be empty when operator is Exists"),
    ("type: hub\nvirtualNetworkSelector: {}\nimport: {virtualNetworkRouters: [{namespaceSelector: {}}]}\n",
     "spec.import.virtualNetworkRouters[0].virtualNetworkRouterSelector", "missing (use {} for every"),
    ("type: hub\nvirtualNetworkSelector: {}\nimport: {virtualNetworkRouters: [{matchLabels: {vnr: s}}]}\n",
     "spec.import.virtualNetworkRouters[0].matchLabels",
     "misplaced: goes inside virtualNetworkRouterSelector (or namespaceSelector)"),
    ("type: hub\nvirtualNetworkSelector: {}\nimport: {virtualNetworkRouterSelector: {}}\n",
     "spec.import.virtualNetworkRouterSelector", "misplaced: goes in an entry of spec.import.virtualNetworkRouters"),
    ("type: hub\nvirtualNetworkSelector: {}\nvirtualNetworkRouters: []\n", "spec.virtualNetworkRouters",
     "misplaced: goes inside spec.import"),
    ("type: hub\nvirtualNetworkSelector: {}\nimport: {virtualNetworkRouters: [{virtualNetworkRouterSelector: {},"
     " namespaceSelecter: {}}]}\n", "spec.import.virtualNetworkRouters[0].namespaceSelecter",
     "did you mean namespaceSelector?"),
    ("type: hub\nvirtualNetworkSelector: {}\nimport: {virtualNetworkRouters: [{virtualNetworkRouterSelector: "
     "{matchExpressions: [{key: vnr, operator: Equals, values: [s]}]}}]}\n",
     "spec.import.virtualNetworkRouters[0].virtualNetworkRouterSelector.matchExpressions[0].operator",
     "unknown operator 'Equals'"),
])
def test_vnr_selector_errors_name_file_document_and_field(spec, fld, text):
    with pytest.raises(IntentError) as ei:
        load([("vnr.yaml", NSS + _vns() + _vnr("r", spec))])
    e = ei.value
    assert (e.file, e.doc, e.kind, e.namespace, e.name, e.field) == ("vnr.yaml", 10, "VirtualNetworkRouter", "a",
                                                                     "r", fld), str(e)
    assert text in e.msg, str(e)


def test_vnr_import_namespace_selector_absent_null_empty_and_expressions():
    targets = "".join(_vnr(f"t-{ns}", "type: spoke\nvirtualNetworkSelector: {}\n", ns, "{vnr: t}") for ns in "abc")
    base = NSS + _vns()

    def imported(entry):
        spec = f"type: hub\nvirtualNetworkSelector: {{}}\nimport: {{virtualNetworkRouters: [{entry}]}}\n"
        it = load(base + targets + _vnr("hub", spec, "a"))
        return sorted(f"{r.namespace}/{r.name}" for r in it.vnr_imports(it.virtual_network_routers[("a", "hub")]))

    sel = "virtualNetworkRouterSelector: {matchLabels: {vnr: t}}"
    assert imported(f"{{{sel}}}") == ["a/t-a"]                                    # absent: own namespace
    assert imported(f"{{{sel}, namespaceSelector: null}}") == ["a/t-a"]           # null is absent
    assert imported(f"{{{sel}, namespaceSelector: {{}}}}") == ["a/t-a", "b/t-b", "c/t-c"]   # {}: all
    assert imported(f"{{{sel}, namespaceSelector: {{matchExpressions: [{{key: team, operator: In, "
                    f"values: [x, y]}}]}}}}") == ["a/t-a", "b/t-b"]
    assert imported(f"{{{sel}, namespaceSelector: {{matchExpressions: [{{key: team, operator: DoesNotExist}}]}}}}") \
        == ["c/t-c"]
    assert imported(f"{{{sel}, namespaceSelector: {{matchExpressions: [{{key: kubernetes.io/metadata.name, "
                    f"operator: NotIn, values: [a]}}]}}}}") == ["b/t-b", "c/t-c"]
    # an empty virtualNetworkRouterSelector: every VNR in scope, never the VNR itself
    assert imported("{virtualNetworkRouterSelector: {}}") == ["a/t-a"]
    assert imported("{virtualNetworkRouterSelector: {matchExpressions: [{key: vnr, operator: NotIn, values: [t]}]},"
                    " namespaceSelector: {}}") == []


POLICY = textwrap.dedent("""\
    ---
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: p, namespace: a}
    spec:
""")


def _policy(spec):
    return load(NSS + POLICY + textwrap.indent(spec, "  ")).network_policies[("a", "p")]


def test_network_policy_selectors_absent_empty_and_expressions():
    np_ = _policy("podSelector: {}\ningress: [{from: [{namespaceSelector: {}}, {podSelector: {}}, "
                  "{namespaceSelector: {matchLabels: {team: y}}, podSelector: {matchExpressions: "
                  "[{key: app, operator: NotIn, values: [db]}]}}]}]\n")
    assert np_.pod_selector == EVERYTHING
    all_ns, own_ns, both = np_.ingress[0].peers
    assert all_ns.namespace_selector == EVERYTHING and all_ns.pod_selector is None        # every pod of every ns
    assert own_ns.pod_selector == EVERYTHING and own_ns.namespace_selector is None        # every pod of ns a
    assert str(both.pod_selector) == "app notin (db)" and both.namespace_selector.labels == {"team": "y"}
    for spec, fld, text in [
        ("ingress: []\n", "spec.podSelector", "missing (use {} for every pod of the namespace)"),
        ("podSelector:\n", "spec.podSelector", "missing"),
        ("podSelector: {}\nmatchLabels: {app: db}\n", "spec.matchLabels", "misplaced: goes inside spec.podSelector"),
        ("podSelector: {app: db}\n", "spec.podSelector.app", "a label to match goes under matchLabels"),
        ("podSelector: {}\ningress: [{podSelector: {}}]\n", "spec.ingress[0].podSelector",
         "misplaced: goes in a peer: spec.ingress[0].from[]"),
        ("podSelector: {}\ningress: [{from: [{podSelector: {}}], form: []}]\n", "spec.ingress[0].form",
         "unknown field (did you mean from?)"),
        ("podSelector: {}\negress: [{from: [{podSelector: {}}]}]\n", "spec.egress[0].from",
         "egress rules have to, not from"),
        ("podSelector: {}\ningress: [{from: [{podselector: {}}]}]\n", "spec.ingress[0].from[0].podselector",
         "unknown field (did you mean podSelector?)"),
        ("podSelector: {}\ningress: [{from: [{podSelector: {}, nameSpace: x}]}]\n", "spec.ingress[0].from[0].nameSpace",
         "unknown field (podSelector, namespaceSelector, ipBlock only)"),
        ("podSelector: {}\ningress: [{from: [{matchLabels: {app: web}}]}]\n", "spec.ingress[0].from[0].matchLabels",
         "misplaced: goes inside podSelector or namespaceSelector"),
        ("podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{key: team, operator: In}]}}]}]\n",
         "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values", "at least one value"),
        ("podSelector: {}\ningress: [{from: [{podSelector: null, namespaceSelector: null}]}]\n",
         "spec.ingress[0].from[0]", "needs podSelector, namespaceSelector or ipBlock"),
    ]:
        with pytest.raises(IntentError) as ei:
            _policy(spec)
        assert ei.value.field == fld and text in ei.value.msg, (spec, str(ei.value))


def test_object_labels_are_validated_like_selector_labels():
    for labels, fld, text in [("{app: -web}", "metadata.labels.app", "must be empty or alphanumeric"),
                              ("{Team.io/x: a}", "metadata.labels.Team.io/x", "lowercase DNS subdomain"),
                              ("{app: 1}", "metadata.labels.app", "(quote it)")]:
        with pytest.raises(IntentError) as ei:
            load(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: q, labels: {labels}}}\n")
        assert ei.value.field == fld and text in ei.value.msg, str(ei.value)


# ---------------------------------------------------------------------------------------------- NetworkPolicy

NP_NAMESPACES = {"ns-a": {"team": "x"}, "ns-b": {"team": "y"}, "ns-c": {}}
POD_POOL = {"app": ("a", "b"), "tier": ("web", "db")}
NS_POOL = {"team": ("x", "y"), "kubernetes.io/metadata.name": tuple(NP_NAMESPACES)}


@st.composite
def pool_selectors(draw, pool):
    """A valid selector (never null) over ``pool``'s keys and values: matchLabels and/or matchExpressions."""
    ml = draw(st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in pool.items()}))
    exprs = []
    for _ in range(draw(st.integers(0, 2))):
        key, op = draw(st.sampled_from(sorted(pool))), draw(st.sampled_from(OPERATORS))
        e = {"key": key, "operator": op}
        if op in ("In", "NotIn"):
            e["values"] = draw(st.lists(st.sampled_from(pool[key]), min_size=1, max_size=2, unique=True))
        exprs.append(e)
    out = {}
    if ml or draw(st.booleans()):
        out["matchLabels"] = ml
    if exprs:
        out["matchExpressions"] = exprs
    return out


@st.composite
def policy_peers(draw):
    shape = draw(st.sampled_from(["pod", "namespace", "both"]))
    peer = {}
    if shape != "namespace":
        peer["podSelector"] = draw(pool_selectors(POD_POOL))
    if shape != "pod":
        peer["namespaceSelector"] = draw(pool_selectors(NS_POOL))
    return peer


@st.composite
def policy_cases(draw):
    """Pods in three namespaces, all on one VN; 1-2 ingress policies whose selectors use every form."""
    pods = [(f"p{i}", draw(st.sampled_from(sorted(NP_NAMESPACES))),
             draw(st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in POD_POOL.items()})))
            for i in range(draw(st.integers(2, 5)))]
    policies = [(f"np{k}", draw(st.sampled_from(sorted(NP_NAMESPACES))), draw(pool_selectors(POD_POOL)),
                 [draw(st.lists(policy_peers(), max_size=2)) for _ in range(draw(st.integers(0, 2)))])
                for k in range(draw(st.integers(1, 2)))]
    return pods, policies


def kubernetes_allows(src, dst, policies) -> bool:
    """Ingress to ``dst`` from ``src`` (both (name, namespace, labels)), straight from the API reference: a
    pod no policy selects accepts all; else some rule of a selecting policy must have no peers or a peer
    that matches (namespaceSelector absent: the policy's namespace; podSelector absent: every pod)."""
    def peer_matches(policy_ns, peer):
        ns_labels = {**NP_NAMESPACES[src[1]], "kubernetes.io/metadata.name": src[1]}
        in_ns = src[1] == policy_ns if "namespaceSelector" not in peer else \
            ref.matches(peer["namespaceSelector"], ns_labels)
        return in_ns and ("podSelector" not in peer or ref.matches(peer["podSelector"], src[2]))

    selecting = [p for p in policies if p[1] == dst[1] and ref.matches(p[2], dst[2])]
    return not selecting or any(not peers or any(peer_matches(p[1], peer) for peer in peers)
                                for p in selecting for peers in p[3])


def _verdict(rules, src, dst):
    key = make_key(0, "tcp", src, dst, 40000, 80)
    action, _ = ListRef(rules, "pass").eval(np.atleast_1d(key)[0], DIRECTIONS["egress"])   # towards the vif
    return action == 0


@settings(max_examples=settings().max_examples * 2)
@given(case=policy_cases())
def test_network_policy_selectors_select_like_kubernetes(case):
    pods, policies = case
    docs = [{"apiVersion": "vrouter.io/v1", "kind": "Node", "metadata": {"name": f"n{i}"},
             "spec": {"fabricAddress": f"192.0.2.{i}", "control": f"ipc:///x{i}", "fabricMac": f"02:fa:00:00:00:0{i}"}}
            for i in (1, 2)]
    docs += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": lab}}
             for n, lab in NP_NAMESPACES.items()]
    docs += [{"apiVersion": "core.contrail.juniper.net/v1", "kind": "Subnet", "metadata": {"name": "red-v4",
              "namespace": "ns-a"}, "spec": {"cidr": "10.1.0.0/24"}},
             {"apiVersion": "core.contrail.juniper.net/v1", "kind": "VirtualNetwork",
              "metadata": {"name": "red", "namespace": "ns-a"}, "spec": {"v4SubnetReference": {"name": "red-v4"}}}]
    docs += [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": lab,
              "annotations": {"k8s.v1.cni.cncf.io/networks": "ns-a/red"}}, "spec": {"nodeName": f"n{1 + i % 2}"}}
             for i, (name, ns, lab) in enumerate(pods)]
    docs += [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": name, "namespace": ns},
              "spec": {"podSelector": sel, "policyTypes": ["Ingress"], "ingress": [{"from": peers} for peers in rules]}}
             for name, ns, sel, rules in policies]
    intent = load(yaml.safe_dump_all(docs))
    cluster = compile_cluster(intent, encap="vxlan")
    red = {i.pod: i for i in cluster.interfaces if i.vn == ("ns-a", "red")}
    expect = Expectation(intent, cluster)
    for src, dst in itertools.permutations(pods, 2):
        want = kubernetes_allows(src, dst, policies)
        s, d = red[(src[1], src[0])], red[(dst[1], dst[0])]
        listed = cluster.nodes[d.node].policies.get(d.vif)
        got = True if listed is None else _verdict(listed["rules"], str(s.addresses[0]), str(d.addresses[0]))
        assert got == want, (src, dst, policies)
        assert (expect.connect(s.pod, str(d.addresses[0]))[0] == d.pod) == want, (src, dst, policies)
