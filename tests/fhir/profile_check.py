#!/usr/bin/env python3
"""profile_check: checks FHIR R4 JSON resources against the profiles of the Da Vinci IG
packages (PAS 2.2.1, CRD 2.0.1, DTR 2.0.1), whose StructureDefinitions, ValueSets and
CodeSystems are kept beside this file in `ig-profiles.json.gz` (the published package files,
without their narratives), reading the StructureDefinition snapshots:

  * min/max cardinality of every element, slice by slice (extension slices by url,
    Bundle.entry slices by resource type/profile, Parameters.parameter slices by name,
    pattern/value discriminators generally);
  * fixed[x] (exact) and pattern[x] (containment) values;
  * required bindings whose ValueSet (or the CodeSystem it draws on) is in a package, or is
    one of the few FHIR core value sets tabled below; anything else is reported as
    "unverifiable" rather than silently passed;
  * type profiles: a slice/element typed with a profile in the packages (extension
    definitions, PAS Quantity/Identifier, nested resources) is checked against it in turn;
  * FHIRPath invariants of severity error on every element visited (fhirpathpy, R4 model);
  * mustSupport elements that are absent are listed as `ms-absent` (information only: a
    server may leave out what it does not have).

Usage as a library: `Checker().check(resource, profile_url)` -> list of Issue.
Usage from the shell: fhir-profile-check PROFILE_URL FILE.json  (exit 1 when there are errors)
Needs python3; invariants are evaluated when fhirpathpy is installed (pip install fhirpathpy),
and reported as unverifiable otherwise.
"""
import contextlib
import io
import json
import pathlib
import re
import sys
from dataclasses import dataclass

try:
    from fhirpathpy import evaluate as fp_evaluate
    from fhirpathpy.models import models as fp_models
except ImportError:  # invariants then go unevaluated
    fp_evaluate = None

PACKAGES = pathlib.Path(__file__).resolve().parent / "ig-profiles.json.gz"

# FHIR R4 core value sets met by required bindings in these profiles (codes from R4 4.0.1).
CORE_VS = {
    "http://hl7.org/fhir/ValueSet/fm-status": {"active", "cancelled", "draft", "entered-in-error"},
    "http://hl7.org/fhir/ValueSet/claim-use": {"claim", "preauthorization", "predetermination"},
    "http://hl7.org/fhir/ValueSet/note-type": {"display", "print", "printoper"},
    "http://hl7.org/fhir/ValueSet/bundle-type": {"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"},
    "http://hl7.org/fhir/ValueSet/http-verb": {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"},
    "http://hl7.org/fhir/ValueSet/search-entry-mode": {"match", "include", "outcome"},
    "http://hl7.org/fhir/ValueSet/identifier-use": {"usual", "official", "temp", "secondary", "old"},
    "http://hl7.org/fhir/ValueSet/publication-status": {"draft", "active", "retired", "unknown"},
    "http://hl7.org/fhir/ValueSet/questionnaire-answers-status": {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
    "http://hl7.org/fhir/ValueSet/item-type": {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text", "url", "choice", "open-choice", "attachment", "reference", "quantity"},
    "http://hl7.org/fhir/ValueSet/questionnaire-enable-operator": {"exists", "=", "!=", ">", "<", ">=", "<="},
    "http://hl7.org/fhir/ValueSet/questionnaire-enable-behavior": {"all", "any"},
    "http://hl7.org/fhir/ValueSet/subscription-status": {"requested", "active", "error", "off"},
    "http://hl7.org/fhir/ValueSet/subscription-channel-type": {"rest-hook", "websocket", "email", "sms", "message"},
    "http://hl7.org/fhir/ValueSet/quantity-comparator": {"<", "<=", ">=", ">"},
    "http://hl7.org/fhir/ValueSet/request-status": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
    "http://hl7.org/fhir/ValueSet/medicationrequest-status": {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown"},
    "http://hl7.org/fhir/ValueSet/medicationrequest-intent": {"proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"},
    "http://hl7.org/fhir/ValueSet/request-priority": {"routine", "urgent", "asap", "stat"},
    "http://hl7.org/fhir/ValueSet/administrative-gender": {"male", "female", "other", "unknown"},
    "http://hl7.org/fhir/ValueSet/narrative-status": {"generated", "extensions", "additional", "empty"},
    "http://hl7.org/fhir/ValueSet/all-languages": None,  # any BCP-47 tag
    "http://hl7.org/fhir/ValueSet/mimetypes": None,
    "http://hl7.org/fhir/ValueSet/resource-types": None,
    "http://hl7.org/fhir/ValueSet/days-of-week": {"mon", "tue", "wed", "thu", "fri", "sat", "sun"},
    "http://hl7.org/fhir/ValueSet/units-of-time": {"s", "min", "h", "d", "wk", "mo", "a"},
    "http://hl7.org/fhir/ValueSet/event-timing": None,
    "http://hl7.org/fhir/ValueSet/address-use": {"home", "work", "temp", "old", "billing"},
    "http://hl7.org/fhir/ValueSet/address-type": {"postal", "physical", "both"},
    "http://hl7.org/fhir/ValueSet/contact-point-system": {"phone", "fax", "email", "pager", "url", "sms", "other"},
    "http://hl7.org/fhir/ValueSet/contact-point-use": {"home", "work", "temp", "old", "mobile"},
    "http://hl7.org/fhir/ValueSet/name-use": {"usual", "official", "temp", "nickname", "anonymous", "old", "maiden"},
    "http://hl7.org/fhir/ValueSet/link-type": {"replaced-by", "replaces", "refer", "seealso"},
    "http://hl7.org/fhir/ValueSet/operation-parameter-use": {"in", "out"},
}

PRIMITIVES = {"boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
              "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt",
              "positiveInt", "uuid", "xhtml", "integer64"}


def strip_version(url):
    return url.split("|")[0] if url else url


@dataclass
class Issue:
    level: str     # error | unverifiable | ms-absent | info
    path: str      # JSON path in the checked instance
    element: str   # element id in the profile
    profile: str
    message: str

    def __str__(self):
        return f"[{self.level}] {self.path} ({self.profile.rsplit('/', 1)[-1]} {self.element}): {self.message}"


class Registry:
    def __init__(self, root=PACKAGES):
        self.sd, self.vs, self.cs = {}, {}, {}
        import gzip
        with gzip.open(root, "rt") as f:
            resources = json.load(f)
        for r in resources:
            kind = r.get("resourceType")
            url = r.get("url")
            if not url:
                continue
            if kind == "StructureDefinition":
                self.sd[url] = r
            elif kind == "ValueSet":
                self.vs[url] = r
            elif kind == "CodeSystem":
                self.cs[url] = r
        self._expansions = {}

    # ---- terminology ----
    def codes_of_cs(self, cs, under=None):
        out = set()

        def walk(concepts, take):
            for c in concepts:
                hit = take or c["code"] == under
                if hit and c["code"] != under:
                    out.add(c["code"])
                walk(c.get("concept", []), hit)
        walk(cs.get("concept", []), under is None)
        return out

    def expand(self, url):
        """(set of (system, code), open_systems) or None when the value set is unknown here."""
        url = strip_version(url)
        if url in self._expansions:
            return self._expansions[url]
        result = None
        if url in self.vs:
            codes, open_systems = set(), set()
            compose = self.vs[url].get("compose", {})
            for inc in compose.get("include", []):
                system = inc.get("system")
                for vsu in inc.get("valueSet", []):
                    sub = self.expand(vsu)
                    if sub is None:
                        open_systems.add("*" + vsu)
                    else:
                        codes |= sub[0]
                        open_systems |= sub[1]
                if not system:
                    continue
                if inc.get("concept"):
                    codes |= {(system, c["code"]) for c in inc["concept"]}
                elif inc.get("filter"):
                    if system in self.cs:
                        for flt in inc["filter"]:
                            if flt.get("op") in ("descendent-of", "is-a") and flt.get("property") == "concept":
                                codes |= {(system, c) for c in self.codes_of_cs(self.cs[system], flt["value"])}
                                if flt["op"] == "is-a":
                                    codes.add((system, flt["value"]))
                    else:
                        open_systems.add(system)
                elif system in self.cs and self.cs[system].get("content", "complete") == "complete":
                    codes |= {(system, c) for c in self.codes_of_cs(self.cs[system])}
                else:
                    open_systems.add(system)
            for exc in compose.get("exclude", []):
                for c in exc.get("concept", []):
                    codes.discard((exc.get("system"), c["code"]))
            result = (codes, open_systems)
        elif url in CORE_VS:
            table = CORE_VS[url]
            result = None if table is None else ({(None, c) for c in table}, set())
        self._expansions[url] = result
        return result


REGISTRY = None


def registry():
    global REGISTRY
    if REGISTRY is None:
        REGISTRY = Registry()
    return REGISTRY


class Profile:
    def __init__(self, sd):
        self.sd = sd
        self.url = sd["url"]
        self.elements = sd["snapshot"]["element"]
        self.by_id = {e["id"]: e for e in self.elements}
        self.children = {}
        for e in self.elements:
            parent, _, _ = e["id"].rpartition(".")
            if parent:
                self.children.setdefault(parent, []).append(e)

    def child_groups(self, eid):
        """Children of an element id, grouped by name: name -> (base element, [slice elements])."""
        groups = {}
        for e in self.children.get(eid, []):
            last = e["id"].rpartition(".")[2]
            name, _, slice_name = last.partition(":")
            g = groups.setdefault(name, [None, []])
            if slice_name:
                if "/" not in slice_name:  # re-slices are left alone
                    g[1].append(e)
            else:
                g[0] = e
        return groups


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def matches_pattern(value, pattern):
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and matches_pattern(value[k], pv) for k, pv in pattern.items())
    if isinstance(pattern, list):
        vals = as_list(value)
        return all(any(matches_pattern(v, p) for v in vals) for p in pattern)
    return value == pattern


def fixed_or_pattern(e):
    for k, v in e.items():
        if k.startswith("fixed"):
            return "fixed", v
        if k.startswith("pattern"):
            return "pattern", v
    return None, None


def choice_values(node, name, types):
    """JSON values of a choice element `name[x]`: (key, value) pairs present in node."""
    stem = name[:-3]
    out = []
    for t in types:
        code = t["code"]
        key = stem + code[0].upper() + code[1:]
        if key in node:
            out.append((key, node[key], code))
    if not types:  # unknown types: any key with the stem and a capital next
        for k, v in node.items():
            if k.startswith(stem) and len(k) > len(stem) and k[len(stem)].isupper():
                out.append((k, v, None))
    return out


class Checker:
    def __init__(self, reg=None):
        self.reg = reg or registry()
        self._profiles = {}

    def profile(self, url):
        url = strip_version(url)
        if url not in self._profiles:
            sd = self.reg.sd.get(url)
            self._profiles[url] = Profile(sd) if sd and "snapshot" in sd else None
        return self._profiles[url]

    def check(self, resource, profile_url, path=None):
        issues = []
        prof = self.profile(profile_url)
        if prof is None:
            return [Issue("unverifiable", path or "", "", profile_url, "profile not in the packages")]
        root = prof.sd["type"]
        if isinstance(resource, dict) and "resourceType" in resource and resource["resourceType"] != root and prof.sd.get("kind") == "resource":
            issues.append(Issue("error", path or root, root, prof.url, f"resourceType {resource['resourceType']} is not {root}"))
            return issues
        self._node(resource, prof, root, path or root, issues, fp_base=root)
        return issues

    # ---- the walk ----
    def _node(self, node, prof, eid, jpath, issues, fp_base):
        elem = prof.by_id.get(eid)
        if elem is not None:
            self._element_value_checks(node, elem, prof, jpath, issues)
            self._invariants(node, elem, prof, jpath, issues, fp_base)
        if not isinstance(node, dict):
            return
        groups = prof.child_groups(eid)
        if not groups and elem is not None and elem.get("contentReference"):
            ref = elem["contentReference"].lstrip("#")
            groups = prof.child_groups(ref)
            eid = ref
        for name, (base, slices) in groups.items():
            if base is None:
                continue
            self._child(node, name, base, slices, prof, jpath, issues, fp_base)

    def _child(self, node, name, base, slices, prof, jpath, issues, fp_base):
        types = base.get("type", [])
        if name.endswith("[x]"):
            found = choice_values(node, name, types)
            values = [(f"{jpath}.{k}", v, code) for k, v, code in found]
            allowed = {t["code"] for t in types}
            for k, v, code in found:
                if code is None and allowed:
                    issues.append(Issue("error", f"{jpath}.{k}", base["id"], prof.url, f"type not allowed here (allowed: {sorted(allowed)})"))
            # a key with the stem but a type not allowed
            stem = name[:-3]
            for k in node:
                if k.startswith(stem) and len(k) > len(stem) and k[len(stem)].isupper():
                    t = k[len(stem)].lower() + k[len(stem) + 1:]
                    tt = {x.lower() for x in allowed}
                    if allowed and t.lower() not in tt:
                        issues.append(Issue("error", f"{jpath}.{k}", base["id"], prof.url, f"value type {t} not allowed (allowed: {sorted(allowed)})"))
        else:
            raw = node.get(name)
            if raw is None and f"_{name}" in node:
                raw = node[f"_{name}"]
            if isinstance(raw, list):
                values = [(f"{jpath}.{name}[{i}]", v, None) for i, v in enumerate(raw)]
            elif raw is not None:
                values = [(f"{jpath}.{name}", raw, None)]
            else:
                values = []
        n = len(values)
        mn, mx = base.get("min", 0), base.get("max", "*")
        if n < mn:
            issues.append(Issue("error", f"{jpath}.{name}", base["id"], prof.url, f"min cardinality {mn}, found {n}"))
        if mx != "*" and n > int(mx):
            issues.append(Issue("error", f"{jpath}.{name}", base["id"], prof.url, f"max cardinality {mx}, found {n}"))
        if n == 0 and base.get("mustSupport") and mn == 0:
            issues.append(Issue("ms-absent", f"{jpath}.{name}", base["id"], prof.url, "mustSupport element absent"))
        # slices
        claimed = set()
        if slices:
            disc = base.get("slicing", {}).get("discriminator", [])
            for s in slices:
                members = [i for i, (_, v, _) in enumerate(values) if self._in_slice(v, s, disc, prof)]
                if not members and disc == [] and s.get("sliceName"):
                    continue
                smin, smax = s.get("min", 0), s.get("max", "*")
                if len(members) < smin:
                    issues.append(Issue("error", f"{jpath}.{name}", s["id"], prof.url, f"slice {s.get('sliceName')}: min {smin}, found {len(members)}"))
                if smax != "*" and len(members) > int(smax):
                    issues.append(Issue("error", f"{jpath}.{name}", s["id"], prof.url, f"slice {s.get('sliceName')}: max {smax}, found {len(members)}"))
                if not members and s.get("mustSupport") and smin == 0:
                    issues.append(Issue("ms-absent", f"{jpath}.{name}", s["id"], prof.url, f"mustSupport slice {s.get('sliceName')} absent"))
                for i in members:
                    claimed.add(i)
                    p, v, code = values[i]
                    self._value(v, s, prof, p, issues, fp_base, code)
        for i, (p, v, code) in enumerate(values):
            if i not in claimed:
                self._value(v, base, prof, p, issues, fp_base, code)

    def _value(self, v, elem, prof, jpath, issues, fp_base, choice_type=None):
        """A value of an element: its own checks, then its children or its type profile."""
        eid = elem["id"]
        sub_base = re.sub(r":[^.]+", "", elem["path"]) if "path" in elem else fp_base
        types = elem.get("type", [])
        type_profiles = [p for t in types for p in t.get("profile", [])
                         if choice_type is None or t["code"] == choice_type]
        has_children = bool(prof.children.get(eid))
        if has_children or elem.get("contentReference"):
            self._node(v, prof, eid, jpath, issues, sub_base)
        else:
            self._element_value_checks(v, elem, prof, jpath, issues)
            self._invariants(v, elem, prof, jpath, issues, sub_base)
        # a resource carried inline (Bundle.entry.resource, Parameters.parameter.resource)
        if isinstance(v, dict) and "resourceType" in v:
            if type_profiles:
                # a resource typed with several profiles must conform to one of them
                known = [p for p in type_profiles if self.profile(p)]
                for p in type_profiles:
                    if not self.profile(p):
                        issues.append(Issue("unverifiable", jpath, eid, prof.url, f"type profile {p} not in the packages"))
                runs = [self.check(v, p, jpath) for p in known]
                if runs:
                    issues += min(runs, key=lambda r: sum(1 for i in r if i.level == "error"))
            # and to each profile it claims in meta.profile that the packages hold
            for p in v.get("meta", {}).get("profile", []):
                if self.profile(p) and strip_version(p) not in {strip_version(t) for t in type_profiles}:
                    issues += self.check(v, p, jpath)
            return
        for p in type_profiles:
            sub = self.profile(p)
            if sub is None:
                issues.append(Issue("unverifiable", jpath, eid, prof.url, f"type profile {p} not in the packages"))
                continue
            if sub.url == prof.url:
                continue
            self._node(v, sub, sub.sd["type"], jpath, issues, sub.sd["type"])

    def _in_slice(self, v, s, disc, prof):
        if not isinstance(v, dict):
            return False
        if not disc:
            return False
        for d in disc:
            dpath, dtype = d.get("path"), d.get("type")
            if dpath == "$this":
                target_id, value = s["id"], v
            else:
                target_id = f"{s['id']}.{dpath}"
                value = v
                for part in dpath.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
            te = prof.by_id.get(target_id)
            if dtype in ("value", "pattern"):
                kind, want = fixed_or_pattern(te) if te else (None, None)
                if kind is None and dpath == "url":
                    profs = [p for t in s.get("type", []) for p in t.get("profile", [])]
                    if profs:
                        kind, want = "fixed", strip_version(profs[0])
                if kind is None and dpath != "$this":
                    # the fixed/pattern value may sit on an ancestor (e.g. a pattern on
                    # `type` for the discriminator `type.coding.system`): walk down into it
                    parts = dpath.split(".")
                    for cut in range(len(parts) - 1, 0, -1):
                        anc = prof.by_id.get(f"{s['id']}." + ".".join(parts[:cut]))
                        k2, w2 = fixed_or_pattern(anc) if anc else (None, None)
                        if k2 is None:
                            continue
                        wants = [w2]
                        for part in parts[cut:]:
                            nxt = []
                            for w in wants:
                                for x in as_list(w):
                                    if isinstance(x, dict) and part in x:
                                        nxt += as_list(x[part])
                            wants = nxt
                        haves = [v]
                        for part in parts:
                            nxt = []
                            for h in haves:
                                for x in as_list(h):
                                    if isinstance(x, dict) and part in x:
                                        nxt += as_list(x[part])
                            haves = nxt
                        if not wants or not all(any(matches_pattern(h, w) for h in haves) for w in wants):
                            return False
                        kind = "done"
                        break
                if kind == "done":
                    continue
                if kind is None:
                    return False
                if dtype == "value" and kind == "fixed" and value != want:
                    return False
                if not matches_pattern(value, want):
                    return False
            elif dtype == "type":
                te = te or s
                codes = {t["code"] for t in te.get("type", [])}
                rt = value.get("resourceType") if isinstance(value, dict) else None
                if rt not in codes:
                    return False
            elif dtype == "profile":
                # membership by conformance: the value is in the slice if it has no error
                # against one of the slice's profiles
                te = te or s
                profs = [p for t in te.get("type", []) for p in t.get("profile", [])]
                rt = value.get("resourceType") if isinstance(value, dict) else None
                ok = False
                for p in profs:
                    sd = self.reg.sd.get(strip_version(p))
                    if sd and sd.get("type") == rt:
                        errs = [i for i in self.check(value, p) if i.level == "error"]
                        ok = ok or not errs
                if not ok:
                    return False
            elif dtype == "exists":
                return False
            else:
                return False
        return True

    def _element_value_checks(self, v, elem, prof, jpath, issues):
        kind, want = fixed_or_pattern(elem)
        if kind == "fixed" and v != want:
            issues.append(Issue("error", jpath, elem["id"], prof.url, f"fixed value {json.dumps(want)} required, found {json.dumps(v)[:120]}"))
        elif kind == "pattern" and not matches_pattern(v, want):
            issues.append(Issue("error", jpath, elem["id"], prof.url, f"pattern {json.dumps(want)[:160]} not matched by {json.dumps(v)[:160]}"))
        b = elem.get("binding")
        if b and b.get("strength") == "required" and b.get("valueSet"):
            self._binding(v, elem, b["valueSet"], prof, jpath, issues)
        # a coding that names a CodeSystem the packages define must use one of its codes
        if isinstance(v, dict):
            for c in ([v] if "system" in v and "code" in v else []) + [c for c in v.get("coding", []) if isinstance(c, dict)]:
                cs = self.reg.cs.get(c.get("system"))
                if cs and cs.get("content", "complete") == "complete":
                    known = self.reg.codes_of_cs(cs)
                    if c.get("code") not in known:
                        issues.append(Issue("error", jpath, elem["id"], prof.url,
                                            f"code `{c.get('code')}` is not defined in CodeSystem {c.get('system')} (version in the package: {cs.get('version')})"))

    def _binding(self, v, elem, vs_url, prof, jpath, issues):
        codings = []
        if isinstance(v, str):
            codings = [(None, v)]
        elif isinstance(v, dict):
            if "coding" in v:
                codings = [(c.get("system"), c.get("code")) for c in v["coding"]]
            elif "code" in v and ("system" in v or "value" in v):
                codings = [(v.get("system"), v.get("code"))]
            elif "code" in v:
                codings = [(v.get("system"), v["code"])]
        if not codings:
            return
        exp = self.reg.expand(vs_url)
        if exp is None:
            issues.append(Issue("unverifiable", jpath, elem["id"], prof.url, f"required binding to {vs_url} (value set not available here): {codings}"))
            return
        codes, open_systems = exp

        def ok(system, code):
            if (system, code) in codes:
                return True
            if system is None and any(c == code for _, c in codes):
                return True
            return system in open_systems

        if any(ok(s, c) for s, c in codings):
            if not any((s, c) in codes or (s is None and any(cc == c for _, cc in codes)) for s, c in codings):
                issues.append(Issue("unverifiable", jpath, elem["id"], prof.url, f"code system of {codings} is external to the packages ({vs_url})"))
            return
        issues.append(Issue("error", jpath, elem["id"], prof.url, f"{codings} not in required value set {vs_url}"))

    def _invariants(self, v, elem, prof, jpath, issues, fp_base):
        if fp_evaluate is None:
            return
        for c in elem.get("constraint", []):
            if c.get("severity") != "error":
                continue
            key = c.get("key", "")
            if key in ("ele-1", "ext-1", "dom-6", "txt-1", "txt-2", "bdl-3", "bdl-4", "bdl-10") or not c.get("expression"):
                continue
            base = re.sub(r":[^.]+", "", elem.get("path", fp_base))
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    res = fp_evaluate(v, {"base": base, "expression": c["expression"]}, {}, fp_models["r4"])
            except Exception as e:  # noqa: BLE001 - report, do not stop
                issues.append(Issue("unverifiable", jpath, elem["id"], prof.url, f"invariant {key} not evaluated ({type(e).__name__})"))
                continue
            if res == [False]:
                issues.append(Issue("error", jpath, elem["id"], prof.url, f"invariant {key} fails: {c.get('human')}"))


COVERAGE_INFORMATION = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"

# Errors the guides' own rules give on what the service emits on purpose, with the reason.
KNOWN = [
    # fhirpathpy reads `answer is Boolean` on the choice element `answer[x]` as false even
    # for `answerBoolean`: the invariant holds (each `exists` condition answers a boolean).
    ("invariant que-7 fails", "fhirpathpy does not resolve answer[x] for que-7"),
    # A draft response when nothing is known yet has no items: the first answer of an adaptive
    # form (SDC $next-question: "neither the QuestionnaireResponse nor the contained
    # Questionnaire will have any items"), or a package asked for after CRD with no order and
    # no records that answer a question. FHIR leaves out an empty list.
    ("(dtr-questionnaireresponse QuestionnaireResponse.item): min cardinality 1, found 0",
     "a draft with nothing known yet has no items"),
]


def targets(resource):
    """(resource, profile) pairs to check: each profile a resource claims that the packages
    hold, in a Parameters' resources too, and CRD's coverage information in a CDS Hooks
    answer's systemActions."""
    out = []
    if "systemActions" in resource:
        for action in resource.get("systemActions", []):
            for ext in action.get("resource", {}).get("extension", []):
                if ext.get("url") == COVERAGE_INFORMATION:
                    out.append((ext, COVERAGE_INFORMATION))
        return out
    for url in resource.get("meta", {}).get("profile", []):
        out.append((resource, url))
    if resource.get("resourceType") == "Parameters":
        for p in resource.get("parameter", []):
            if "resource" in p:
                out.extend(targets(p["resource"]))
    return out


def check_dir(directory):
    """Checks every JSON file of a folder; prints each error not known; exit 1 if any."""
    checker = Checker()
    errors, checked = 0, 0
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        resource = json.loads(path.read_text())
        for target, url in targets(resource):
            if checker.profile(url) is None:
                continue
            checked += 1
            for issue in checker.check(target, url):
                text = str(issue)
                if issue.level != "error" or any(k in text for k, _ in KNOWN):
                    continue
                errors += 1
                print(f"{path.name}: {text}")
    print(f"{checked} profile checks, {errors} errors")
    return 1 if errors else 0


def main(argv):
    if len(argv) == 2:
        return check_dir(argv[1])
    url, path = argv[1], argv[2]
    issues = Checker().check(json.loads(pathlib.Path(path).read_text()), url)
    for i in issues:
        print(i)
    errors = [i for i in issues if i.level == "error"]
    print(f"{len(errors)} errors, {len(issues) - len(errors)} other findings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
