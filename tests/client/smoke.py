"""A day's calls through a client generated from /openapi.json by openapi-python-client.

Run by crates/priorauth-service/tests/client.rs against a live server: PRIORAUTH_URL,
SUBMITTER_KEY, REVIEWER_KEY, APPROVE_CASE and REVIEW_CASE (case files dated today) come from
the test; the generated package `priorauth_client` is on PYTHONPATH. Every call goes through
the generated functions and models, so a change to the API that the document does not
follow, or a document the generator cannot turn into working code, fails here.
"""

import json
import os
import sys

from priorauth_client import AuthenticatedClient, Client
from priorauth_client.api.authorizations import read_authorization, record_usage
from priorauth_client.api.console import evaluate_case, list_plans
from priorauth_client.api.fhir import fhir_capabilities
from priorauth_client.api.operations import healthz
from priorauth_client.api.requests import list_requests, read_request, submit_request
from priorauth_client.api.review import read_denial_letter, record_determination, review_queue
from priorauth_client.models import (
    DeterminationBody,
    DeterminationDecision,
    EvaluateBody,
    Problem,
    QueuePage,
    RequestFile,
    RequestRecord,
    SubmitBody,
    Submitted,
    Usage,
    UsageBody,
)


def check(condition, what):
    if not condition:
        print(f"smoke: FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"smoke: ok: {what}")


def case(name):
    with open(os.environ[name]) as f:
        return json.load(f)


url = os.environ["PRIORAUTH_URL"]
public = Client(base_url=url)
clinic = AuthenticatedClient(base_url=url, token=os.environ["SUBMITTER_KEY"])
reviewer = AuthenticatedClient(base_url=url, token=os.environ["REVIEWER_KEY"])

check(healthz.sync(client=public) == "ok", "healthz answers ok without a key")
capabilities = fhir_capabilities.sync_detailed(client=public)
check(
    capabilities.status_code == 200 and capabilities.parsed.resource_type == "CapabilityStatement",
    "the FHIR CapabilityStatement",
)

plans = list_plans.sync(client=clinic)
check(any(p.id == "masshealth" for p in plans), "the plans list MassHealth")

# An approval: the authorization it creates, read back and spent.
submitted = submit_request.sync_detailed(
    client=clinic,
    body=SubmitBody.from_dict({"plan": "masshealth", "case": case("APPROVE_CASE")}),
)
check(submitted.status_code == 201 and isinstance(submitted.parsed, Submitted), "a submission is created")
answer = submitted.parsed
check(answer.status.value == "approved" and answer.authorization is not None, "it is approved with an authorization")
check(answer.decision.quantity.total_units > 0, "the decision states its quantity")
record = read_request.sync(answer.id, client=clinic)
check(isinstance(record, RequestRecord) and record.history[0].kind == "submitted", "the request reads back with its history")
number = answer.authorization.number
usage = record_usage.sync(
    number,
    client=clinic,
    body=UsageBody(units=1, date_of_service=case("APPROVE_CASE")["request"]["date"]),
)
check(isinstance(usage, Usage) and usage.used_units == 1, "one unit is spent")
authorization = read_authorization.sync(number, client=clinic)
check(authorization.remaining_units == authorization.approved_units - 1, "the authorization shows what is left")

# A review: queued for a clinician, who denies it; the notice's data.
queued = submit_request.sync(client=clinic, body=SubmitBody.from_dict({"plan": "masshealth", "case": case("REVIEW_CASE")}))
check(queued.status.value == "pending_review", "a request for review waits for a clinician")
page = review_queue.sync(client=reviewer)
check(isinstance(page, QueuePage) and any(i.id == queued.id for i in page.items), "the reviewer's queue holds it")
# The clinic sends a clinical note with it: the file is the body, its type the Content-Type
# (the generated function sends one type for all, so the file goes through its HTTP client).
note = b"%PDF-1.4\n%%EOF\n"
sent = clinic.get_httpx_client().post(f"/v1/requests/{queued.id}/attachments", params={"title": "Clinic note"}, content=note, headers={"Content-Type": "application/pdf"})
check(sent.status_code == 201 and RequestFile.from_dict(sent.json()).bytes_ == len(note), "the clinic's note is stored")
# The reviewer is offered what a denial may cite: the criteria that fail the request.
in_review = read_request.sync(queued.id, client=reviewer)
check(isinstance(in_review, RequestRecord) and in_review.denial_grounds, "the reviewer is offered the grounds of a denial")
criterion = in_review.denial_grounds[0].id
decided = record_determination.sync(
    queued.id,
    client=reviewer,
    body=DeterminationBody(decision=DeterminationDecision.DENY, reason="Not supported by the records sent.", criterion=criterion),
)
check(isinstance(decided, RequestRecord) and decided.status.value == "denied", "the clinician's denial is recorded")
mine = list_requests.sync(client=clinic, status="denied")
check(mine is not None and any(item.id == queued.id for item in mine.items), "the clinic finds the denial in its own list")
letter = read_denial_letter.sync(queued.id, client=clinic)
check(letter.criterion.additional_properties["id"] == criterion, "the denial notice cites the criterion")

# Errors come back as problems naming the field.
refused = submit_request.sync_detailed(client=clinic, body=SubmitBody.from_dict({"plan": "no-such-plan", "case": case("APPROVE_CASE")}))
check(
    refused.status_code == 422 and isinstance(refused.parsed, Problem) and refused.parsed.errors[0].field == "plan",
    "an unknown plan is a problem naming `plan`",
)
unauthorized = submit_request.sync_detailed(client=public, body=SubmitBody.from_dict({"plan": "masshealth", "case": case("APPROVE_CASE")}))
check(unauthorized.status_code == 401, "no key is 401")

evaluation = evaluate_case.sync(client=clinic, body=EvaluateBody.from_dict({"case": case("APPROVE_CASE")}))
check(len(evaluation.results) >= 6 and all(r.result.policy for r in evaluation.results), "every policy decides the case")
print("smoke: all calls answered as the document says")
