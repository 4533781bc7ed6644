"""Fills a DTR Questionnaire from a chart as a DTR client would (SDC expression-based
population): the launch context's patient, each `variable` x-fhir-query run against the
chart, then each item's `initialExpression` evaluated by fhirpathpy, an implementation of
FHIRPath independent of priorauth.

    python prepopulate.py QUESTIONNAIRE.json CHART.json   prints {linkId: [values]} as JSON

The chart is a Bundle of the member's resources (a Patient first). `search` answers the
queries a FHIR server would for priorauth's forms and for the CRD service's reads: a resource
type with `patient`, `code` (`system|code`, several separated by commas), `clinical-status`,
`status`, `practitioner`, `_sort=-date` and `_count`. The EHR simulator
(`tests/ehr/simulator.py`) serves its chart with it and fills forms with `fill`.
"""

import json
import re
import sys
from urllib.parse import parse_qsl

from fhirpathpy import evaluate

LAUNCH = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-launchContext"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
INITIAL = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression"


def resolve(query, context):
    """An x-fhir-query with its `{{…}}` FHIRPath placeholders evaluated in `context`."""
    return re.sub(r"\{\{(.+?)\}\}", lambda m: str(evaluate({}, m.group(1), context)[0]), query)


def search(chart, query, context=None):
    """A searchset Bundle of the chart's resources that match the query (placeholders
    resolved in `context` first)."""
    query = resolve(query, context or {})
    kind, _, parameters = query.partition("?")
    found = [e["resource"] for e in chart["entry"] if e["resource"]["resourceType"] == kind]
    count = None
    for name, value in parse_qsl(parameters):
        if name == "patient":
            subject = lambda r: (r.get("subject") or r.get("beneficiary") or {}).get("reference")
            found = [r for r in found if subject(r) in (value, f"Patient/{value}")]
        elif name == "code":
            wanted = [code.rpartition("|") for code in value.split(",")]
            found = [r for r in found if any((c.get("system"), c.get("code")) == (system, code)
                                             for system, _, code in wanted for c in r.get("code", {}).get("coding", []))]
        elif name == "status":
            found = [r for r in found if r.get("status") == value]
        elif name == "practitioner":
            found = [r for r in found if r.get("practitioner", {}).get("reference") in (value, f"Practitioner/{value}")]
        elif name == "clinical-status":
            found = [r for r in found if any(c.get("code") == value for c in r.get("clinicalStatus", {}).get("coding", []))]
        elif name == "_sort" and value == "-date":
            found.sort(key=lambda r: r.get("effectiveDateTime", ""), reverse=True)
        elif name == "_count":
            count = int(value)
        else:
            raise SystemExit(f"query parameter not emulated: {name}")
    found = found[:count] if count is not None else found
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}


def items(item_list):
    for item in item_list:
        yield item
        yield from items(item.get("item", []))


def fill(questionnaire, patient, query):
    """{linkId: [values]} of every item an `initialExpression` fills: the launch context's
    patient is `patient`, and each x-fhir-query variable is answered by `query(text, context)`
    (a searchset Bundle)."""
    context = {}
    for extension in questionnaire.get("extension", []):
        if extension["url"] == LAUNCH:
            name = next(e["valueCoding"]["code"] for e in extension["extension"] if e["url"] == "name")
            context[name] = patient
    for extension in questionnaire.get("extension", []):
        if extension["url"] == VARIABLE:
            expression = extension["valueExpression"]
            assert expression["language"] == "application/x-fhir-query", expression
            context[expression["name"]] = query(expression["expression"], context)
    answers = {}
    for item in items(questionnaire.get("item", [])):
        for extension in item.get("extension", []):
            if extension["url"] == INITIAL:
                expression = extension["valueExpression"]
                assert expression["language"] == "text/fhirpath", expression
                values = evaluate({}, expression["expression"], context)
                if values:
                    answers[item["linkId"]] = [str(v) for v in values]
    return answers


def main():
    questionnaire = json.load(open(sys.argv[1]))
    chart = json.load(open(sys.argv[2]))
    patient = chart["entry"][0]["resource"]
    answers = fill(questionnaire, patient, lambda text, context: search(chart, text, context))
    print(json.dumps(answers, sort_keys=True))


if __name__ == "__main__":
    main()
