"""Validates FHIR R4 (4.0.1) JSON resources with the `fhir.resources` package (6.1.0, pydantic 1):
structure, element names, types, cardinality of required elements, primitive formats.

Usage: validate.py FILE_OR_DIR...   Prints one line per resource; exits 1 if any is invalid.
A file may hold a resource, or a CDS Hooks response whose systemActions' resources are checked.
"""
import json
import pathlib
import sys

from fhir.resources import __fhir_version__, construct_fhir_element

assert __fhir_version__ == "4.0.1", __fhir_version__


def resources(path):
    data = json.loads(path.read_text())
    if "resourceType" in data:
        yield path.name, data
    for i, action in enumerate(data.get("systemActions", [])):
        yield f"{path.name} systemActions[{i}]", action["resource"]


def main(args):
    failed = checked = 0
    files = []
    for arg in args:
        p = pathlib.Path(arg)
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    for path in files:
        for name, resource in resources(path):
            checked += 1
            try:
                construct_fhir_element(resource["resourceType"], resource)
            except Exception as error:  # the validator's own message names the element
                failed += 1
                print(f"INVALID {name}: {error}")
    print(f"{checked} resources checked, {failed} invalid (FHIR {__fhir_version__})")
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
