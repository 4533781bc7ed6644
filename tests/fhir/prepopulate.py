"""Fills a DTR Questionnaire from a chart as a DTR client would (SDC expression-based
population): the launch context's patient, each `variable` x-fhir-query run against the
chart, then each item's `initialExpression` evaluated by fhirpathpy, an implementation of
FHIRPath independent of priorauth.

    python prepopulate.py QUESTIONNAIRE.json CHART.json   prints {linkId: [values]} as JSON

The chart is a Bundle of the member's resources (a Patient first); the x-fhir-query subset
run here is what a FHIR server answers to the queries priorauth's forms use: a resource type
with `patient`, `code` (`system|code`), `clinical-status`, `_sort=-date` and `_count`.
"""

import json
import re
import sys
from urllib.parse import parse_qsl

from fhirpathpy import evaluate

LAUNCH = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-launchContext"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
INITIAL = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-initialExpression"


def search(chart, query, context):
    """A searchset Bundle of the chart's resources that match the query."""
    query = re.sub(r"\{\{(.+?)\}\}", lambda m: str(evaluate({}, m.group(1), context)[0]), query)
    kind, _, parameters = query.partition("?")
    found = [e["resource"] for e in chart["entry"] if e["resource"]["resourceType"] == kind]
    count = None
    for name, value in parse_qsl(parameters):
        if name == "patient":
            found = [r for r in found if r.get("subject", {}).get("reference") in (value, f"Patient/{value}")]
        elif name == "code":
            system, _, code = value.rpartition("|")
            found = [r for r in found if any(c.get("system") == system and c.get("code") == code for c in r.get("code", {}).get("coding", []))]
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


def main():
    questionnaire = json.load(open(sys.argv[1]))
    chart = json.load(open(sys.argv[2]))
    context = {}
    for extension in questionnaire.get("extension", []):
        if extension["url"] == LAUNCH:
            name = next(e["valueCoding"]["code"] for e in extension["extension"] if e["url"] == "name")
            context[name] = chart["entry"][0]["resource"]
    for extension in questionnaire.get("extension", []):
        if extension["url"] == VARIABLE:
            expression = extension["valueExpression"]
            assert expression["language"] == "application/x-fhir-query", expression
            context[expression["name"]] = search(chart, expression["expression"], context)
    answers = {}
    for item in items(questionnaire.get("item", [])):
        for extension in item.get("extension", []):
            if extension["url"] == INITIAL:
                expression = extension["valueExpression"]
                assert expression["language"] == "text/fhirpath", expression
                values = evaluate({}, expression["expression"], context)
                if values:
                    answers[item["linkId"]] = [str(v) for v in values]
    print(json.dumps(answers, sort_keys=True))


main()
