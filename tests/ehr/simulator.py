"""An EHR that uses priorauth as its payer's CDS Hooks, DTR and PAS service, in a process of
its own and only over HTTP, the way an EHR vendor's integration calls a payer.

    simulator.py keys DIR
        Makes the EHR's ES384 signing key (DIR/ehr-key.pem) and its public JWKS
        (DIR/jwks.json), which the payer registers (`priorauth clients register --jwks`).

    simulator.py run --base URL --client-id ID --key PEM --member-id ID --reviewer-key KEY --out DIR
        Plays the guides' flow and exits 0 only if every step answered as the guides say:

        1. discovery: the CDS Services list and SMART's `.well-known/smart-configuration`;
        2. SMART Backend Services: a `private_key_jwt` client assertion traded for a token;
        3. a PAS Subscription (rest-hook to this EHR), answered by its handshake;
        4. CRD `order-sign`, signed as CDS Hooks says, with no prefetch: the service must read
           the chart from this EHR's FHIR server with the `fhirAuthorization` token; an order
           of a drug no rule covers gets an answer too; a re-sign keeps the assertion id;
        5. DTR `$questionnaire-package` as called after CRD (coverage, the Questionnaire CRD
           named, the assertion as context); the form filled by its x-fhir-query variables run
           against this EHR's FHIR server and its FHIRPath initialExpressions, the payer's
           pre-fill kept, and the clinician's first answers added;
        6. PAS `$submit` of a Bundle shaped as the guide's medical-services example, carrying
           the QuestionnaireResponse: pended for information, with the missing facts in words
           and PAS's Task naming the questionnaire and the request;
        7. DTR again with the Task's context, the clinician answering what was asked, and a
           PAS update (`Claim.related`): approved (A1) with its authorization number; the
           superseded request is closed and the subscription says so; `$inquire` with the
           guide's inquiry keys (trace number, member, provider) finds the approval, and the
           same trace number with another member finds nothing;
        8. a request the policy's criteria fail (a T-cell lineage) is pended for a clinician
           (A4); the payer's reviewer (over the service's API, with the reviewer's key) denies
           it on a criterion that fails it; the EHR hears the denial (A3) with its criterion
           and reviewer (and the payer's X12 886 reason code, `--denial-reason`), and
           `$inquire` finds it;
        9. a third order is submitted and then cancelled (certification type 3): the answer
           is `C`;
        10. the approved order of step 7 is cancelled (its treatment stopped): the answer is
           `C`, the EHR hears it, and `$inquire` finds it cancelled.

        Every answer of the payer is written to DIR (one JSON file per answer), for the
        validators to check.

The EHR has its own ids: its patient and practitioner ids, its own plan code on the Coverage
(the payer's eligibility, not the EHR, says which plan covers the member), and its own
identifier systems. Nothing here imports priorauth. PyJWT with `cryptography` signs; fhirpathpy
evaluates the form's expressions (both from PyPI, in the tests' Python environment).
"""

import argparse
import json
import pathlib
import queue
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "fhir"))
from prepopulate import fill, resolve, search  # noqa: E402  (the shared chart search and form filler)

KID = "ehr-signing-key-1"
PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"
X12 = "https://codesystem.x12.org/005010"
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "fhir" / "pas-examples"


class Failed(Exception):
    """A step did not answer as the guides say."""


def check(condition, what, detail=""):
    if not condition:
        raise Failed(f"{what}{': ' + str(detail)[:2000] if detail else ''}")


# ---- keys ----


def make_keys(directory):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP384R1())
    (directory / "ehr-key.pem").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "ES384"})
    (directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))


def signed(key, claims):
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


def assertion(key, issuer, audience):
    """A JWT as SMART Backend Services and CDS Hooks ask: short-lived, used once."""
    now = int(time.time())
    return signed(key, {"iss": issuer, "sub": issuer, "aud": audience, "iat": now,
                        "exp": now + 120, "jti": str(uuid.uuid4())})


# ---- HTTP ----


def call(method, url, token=None, body=None, form=None):
    """(status, JSON body or None) of one call."""
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/fhir+json" if "resourceType" in body else "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


# ---- the EHR's own FHIR server (what CRD reads) and its subscription endpoint ----


def chart(member_id, today):
    """The member's chart as this EHR holds it: its own ids and codes."""
    patient = {"resourceType": "Patient", "id": "lk-884120", "birthDate": "1979-08-23",
               "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.999.2.7.5.737384.14", "value": "MRN-884120"}],
               "name": [{"family": "Okonkwo", "given": ["Adaeze"]}], "gender": "female"}
    coverage = {"resourceType": "Coverage", "id": "lk-cov-1", "status": "active",
                "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                                "system": "urn:oid:1.2.840.114350.1.13.999.2.7.2.698084", "value": member_id}],
                "subscriberId": member_id,
                "beneficiary": {"reference": "Patient/lk-884120"},
                "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
                "payor": [{"reference": "Organization/lk-payer-17", "display": "Oregon Health Plan"}],
                # The EHR's own benefit plan code: the payer's eligibility decides the plan.
                "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                           "value": "LK-OHP-CCO-A", "name": "OHP CCO A"}]}
    condition = {"resourceType": "Condition", "id": "lk-dx-1", "subject": {"reference": "Patient/lk-884120"},
                 "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C91.02"},
                                     {"system": "urn:oid:1.2.840.114350.1.13.999.2.7.2.728286", "code": "ALL-REL"}]}}
    observations = [
        ("lk-wt-old", "29463-7", "2026-01-10", 74.0, "kg"),
        ("lk-wt-new", "29463-7", today, 68.5, "kg"),
        ("lk-ht", "8302-2", today, 165.0, "cm"),
    ]
    role = {"resourceType": "PractitionerRole", "id": "lk-role-2", "practitioner": {"reference": "Practitioner/lk-dr-2231"},
            "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "doctor"}]}],
            "specialty": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207RH0003X"}]}]}
    resources = [patient, coverage, condition, role] + [
        {"resourceType": "Observation", "id": id, "status": "final", "subject": {"reference": "Patient/lk-884120"},
         "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "effectiveDateTime": day,
         "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
        for id, code, day, value, unit in observations]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


class Ehr:
    """The EHR's HTTP side: a FHIR server over its chart that answers only its own token, and
    the endpoint its PAS subscription posts to."""

    def __init__(self, chart_bundle):
        self.chart = chart_bundle
        self.token = "ehr-issued-" + uuid.uuid4().hex
        self.reads = []
        self.refused = 0
        self.notifications = queue.Queue()
        self.heard = []
        ehr = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if self.headers.get("Authorization") != f"Bearer {ehr.token}":
                    ehr.refused += 1
                    return self.answer(401, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]})
                query = self.path.removeprefix("/fhir/")
                ehr.reads.append(query)
                kind, _, rest = query.partition("/")
                if rest and "?" not in kind:
                    found = [e["resource"] for e in ehr.chart["entry"]
                             if e["resource"]["resourceType"] == kind and e["resource"]["id"] == rest]
                    return self.answer(200, found[0]) if found else self.answer(404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})
                self.answer(200, search(ehr.chart, query))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/notify":
                    ehr.notifications.put(json.loads(body))
                    return self.answer(200, {})
                self.answer(404, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def query(self, text, context):
        """An x-fhir-query of a form, run against this EHR's own FHIR server over HTTP."""
        text = resolve(text, context)
        status, body = call("GET", f"{self.base}/fhir/{text}", token=self.token)
        check(status == 200, f"the EHR's own FHIR server answers {text}", body)
        return body

    def notification(self, seconds, about):
        """The next event notification whose PAS response Bundle `about` accepts (others, a
        handshake or a heartbeat, are kept aside)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                body = self.notifications.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                break
            bundles = [e["resource"] for e in body.get("entry", []) if e.get("resource", {}).get("resourceType") == "Bundle"]
            if notification_type(body) == "event-notification" and bundles and about(bundles[0]):
                return body
            self.heard.append(body)
        raise Failed(f"no such notification within {seconds} s; heard {json.dumps(self.heard)[:1500]}")


def notification_type(bundle):
    for parameter in (bundle.get("entry") or [{}])[0].get("resource", {}).get("parameter", []):
        if parameter.get("name") == "type":
            return parameter.get("valueCode")
    return None


# ---- what the payer answers ----


def coverage_information(action):
    """{part: value} of the coverage-information extension on a systemAction's resource."""
    for extension in action["resource"].get("extension", []):
        if extension["url"].endswith("ext-coverage-information"):
            parts = {}
            for part in extension["extension"]:
                value = next((v for k, v in part.items() if k.startswith("value")), None)
                parts.setdefault(part["url"], value)
            return parts
    raise Failed("an order without coverage information", action)


def claim_response(bundle):
    for entry in bundle.get("entry", []):
        if entry["resource"]["resourceType"] == "ClaimResponse":
            return entry["resource"]
    raise Failed("a PAS answer without a ClaimResponse", bundle)


def review_actions(bundle):
    """The X12 review action code of each item of the ClaimResponse."""
    codes = []
    for item in claim_response(bundle).get("item", []):
        for adjudication in item.get("adjudication", []):
            for extension in adjudication.get("extension", []):
                if extension["url"].endswith("extension-reviewAction"):
                    for part in extension.get("extension", []):
                        if part["url"] == "number":
                            continue
                        coding = part.get("valueCodeableConcept", {}).get("coding", [{}])[0]
                        if coding.get("system", "").endswith("/306"):
                            codes.append(coding["code"])
    return codes


def denial_reasons(bundle):
    """The X12 886 reason codes of the ClaimResponse's review actions."""
    return [part["valueCodeableConcept"]["coding"][0]["code"]
            for item in claim_response(bundle).get("item", [])
            for adjudication in item.get("adjudication", [])
            for extension in adjudication.get("extension", []) if extension["url"].endswith("extension-reviewAction")
            for part in extension.get("extension", []) if part["url"] == "reasonCode"]


# ---- the flow ----


class Flow:
    def __init__(self, args):
        self.base = args.base.rstrip("/")
        self.client_id = args.client_id
        self.key = pathlib.Path(args.key).read_bytes()
        self.member_id = args.member_id
        self.reviewer_key = args.reviewer_key
        self.denial_reason = args.denial_reason
        self.out = pathlib.Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.today = time.strftime("%Y-%m-%d", time.gmtime())
        self.ehr = Ehr(chart(self.member_id, self.today))
        self.patient = self.ehr.chart["entry"][0]["resource"]
        self.coverage = self.ehr.chart["entry"][1]["resource"]

    def keep(self, name, body):
        (self.out / f"{name}.json").write_text(json.dumps(body, indent=1))

    def step(self, text):
        print(f"- {text}", flush=True)

    def fhir(self, method, path, body=None):
        return call(method, f"{self.fhir_base}/{path}", token=self.access_token, body=body)

    def run(self):
        self.discover()
        self.authorize()
        self.subscribe()
        order, assertion_id, questionnaire = self.order_sign()
        response = self.document(questionnaire, assertion_id, {})
        trace, task = self.submit(order, response)
        # The clinician answers what the payer asked, in the form the Task points to.
        answered = self.document(questionnaire, task["questionnaire-context"], CLINICIAN, task["payer-url"])
        first_request = task["questionnaire-context"]
        trace, claim_bundle, number = self.update(order, answered, trace)
        # The original, superseded by the update, is closed; the EHR hears it.
        closed = self.ehr.notification(30, lambda final: claim_response(final).get("preAuthRef") == first_request)
        self.keep("notification-superseded", closed)
        superseded = next(e["resource"] for e in closed["entry"] if e["resource"]["resourceType"] == "Bundle")
        check(review_actions(superseded) == ["C"], "the superseded request is heard closed (C)", review_actions(superseded))
        self.inquire(trace, claim_bundle, "A1", number)
        self.step(f"$inquire finds {number} (A1)")
        self.review(order, answered)
        self.cancel(answered)
        self.cancel_approved(order, answered, trace, claim_bundle, number)
        check(self.ehr.refused == 0, "every read of the EHR's FHIR server carried its token")
        print("the EHR's flow passed", flush=True)

    def discover(self):
        status, services = call("GET", f"{self.base}/cds-services")
        check(status == 200, "GET /cds-services", services)
        hooks = {s["hook"]: s["id"] for s in services["services"]}
        check("order-sign" in hooks, "an order-sign service is offered", services)
        self.order_sign_service = hooks["order-sign"]
        status, smart = call("GET", f"{self.base}/fhir/.well-known/smart-configuration")
        check(status == 200, "SMART configuration", smart)
        check("private_key_jwt" in smart.get("token_endpoint_auth_methods_supported", []), "private_key_jwt is offered", smart)
        check("ES384" in smart.get("token_endpoint_auth_signing_alg_values_supported", []), "ES384 is offered", smart)
        self.token_endpoint = smart["token_endpoint"]
        self.fhir_base = f"{self.base}/fhir"
        status, capability = call("GET", f"{self.fhir_base}/metadata")
        check(status == 200 and capability.get("resourceType") == "CapabilityStatement", "the CapabilityStatement", capability)
        self.keep("metadata", capability)
        self.step(f"discovery: {self.order_sign_service}, token endpoint {self.token_endpoint}")

    def authorize(self):
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion(self.key, self.client_id, self.token_endpoint),
                "scope": "system/Claim.c system/Questionnaire.read system/Subscription.write system/*.read"}
        status, token = call("POST", self.token_endpoint, form=form)
        check(status == 200 and token.get("token_type", "").lower() == "bearer", "a SMART access token", token)
        self.access_token = token["access_token"]
        # The same assertion again is a replay.
        status, _ = call("POST", self.token_endpoint, form=form)
        check(status == 401, "a replayed client assertion is refused", status)
        # Without a token, the FHIR endpoints refuse.
        status, _ = call("POST", f"{self.fhir_base}/Claim/$submit", body={"resourceType": "Bundle"})
        check(status == 401, "PAS without a token answers 401", status)
        self.step(f"SMART token for {token.get('scope')} ({token.get('expires_in')} s)")

    def subscribe(self):
        subscription = json.loads((EXAMPLE / "Subscription-PASSubscriptionExample.json").read_text())
        subscription.pop("id", None)
        subscription.pop("text", None)
        subscription["channel"]["endpoint"] = f"{self.ehr.base}/notify"
        status, saved = self.fhir("POST", "Subscription", subscription)
        check(status == 201 and saved.get("status") == "active", "the subscription is saved and active", saved)
        self.keep("subscription", saved)
        handshake = self.ehr.notifications.get(timeout=20)
        check(notification_type(handshake) == "handshake", "the subscription's handshake", handshake)
        self.keep("handshake", handshake)
        self.step(f"subscribed as Subscription/{saved['id']}, handshake heard")

    def hook(self, orders):
        service = f"{self.base}/cds-services/{self.order_sign_service}"
        body = {
            "hook": "order-sign", "hookInstance": str(uuid.uuid4()),
            "fhirServer": f"{self.ehr.base}/fhir",
            "fhirAuthorization": {"access_token": self.ehr.token, "token_type": "Bearer", "expires_in": 300,
                                  "scope": "system/Patient.read system/Coverage.read system/Condition.read system/Observation.read system/PractitionerRole.read",
                                  "subject": "priorauth"},
            "context": {"userId": "Practitioner/lk-dr-2231", "patientId": self.patient["id"],
                        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]}},
        }
        return call("POST", service, token=assertion(self.key, self.client_id, service), body=body)

    def order_sign(self):
        order = {"resourceType": "MedicationRequest", "id": "lk-ord-5521", "status": "draft", "intent": "order",
                 "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.999.2.7.2.798268", "value": "5521"}],
                 "medicationCodeableConcept": {"coding": [
                     {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1597262"},
                     {"system": "urn:oid:1.2.840.114350.1.13.999.2.7.2.698288", "code": "BLIN-35"}], "text": "blinatumomab 35 mcg vial"},
                 "subject": {"reference": "Patient/lk-884120"}, "authoredOn": self.today,
                 "requester": {"reference": "Practitioner/lk-dr-2231"},
                 "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 28, "unit": "mcg/day", "system": "http://unitsofmeasure.org", "code": "ug/d"}}]}],
                 "dispenseRequest": {"quantity": {"value": 784, "unit": "mcg"}}}
        # A drug no rule of this payer covers: it must be answered, not left out.
        other = {"resourceType": "MedicationRequest", "id": "lk-ord-5522", "status": "draft", "intent": "order",
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}], "text": "amlodipine 5 mg"},
                 "subject": {"reference": "Patient/lk-884120"}, "authoredOn": self.today}
        service = f"{self.base}/cds-services/{self.order_sign_service}"
        status, _ = call("POST", service, token=assertion(self.key, "https://unregistered.example", service), body={"hook": "order-sign"})
        check(status == 401, "a hook signed by a client the payer does not know is refused", status)
        status, answer = self.hook([order, other])
        check(status == 200, "order-sign answers 200", answer)
        self.keep("crd-answer", answer)
        actions = {a["resource"]["id"]: a for a in answer.get("systemActions", [])}
        check(set(actions) == {"lk-ord-5521", "lk-ord-5522"}, "every order is answered", list(actions))
        info = coverage_information(actions["lk-ord-5521"])
        check(info.get("pa-needed") == "auth-needed", "Blincyto needs prior authorization", info)
        questionnaire = info.get("questionnaire")
        check(questionnaire and "/Questionnaire/" in questionnaire, "CRD names the DTR Questionnaire", info)
        assertion_id = info.get("coverage-assertion-id")
        check(assertion_id, "a coverage assertion id", info)
        unknown = coverage_information(actions["lk-ord-5522"])
        check(unknown.get("covered") in ("conditional", "covered", "not-covered"), "the other order's coverage", unknown)
        read = sorted(q.split("?")[0] for q in self.ehr.reads)
        for kind in ("Patient/lk-884120", "Coverage", "Condition", "Observation"):
            check(kind in read, f"CRD read {kind} from the EHR's FHIR server", read)
        # A re-sign of the same order keeps its assertion id.
        status, again = self.hook([order, other])
        check(status == 200, "a re-sign answers 200", again)
        same = coverage_information(next(a for a in again["systemActions"] if a["resource"]["id"] == "lk-ord-5521"))
        check(same.get("coverage-assertion-id") == assertion_id, "a re-sign keeps the assertion id", (assertion_id, same))
        self.step(f"CRD: auth-needed, {questionnaire}, assertion {assertion_id}; read {len(self.ehr.reads)} queries from the chart")
        return order, assertion_id, questionnaire

    def document(self, questionnaire, context, clinician, operation=None):
        """DTR: the package for the coverage, the Questionnaire and the context (CRD's
        assertion, or the pended request a Task names), filled as a DTR client does: the
        payer's pre-fill, the chart by the form's own expressions, then the clinician."""
        operation = operation or f"{self.fhir_base}/Questionnaire/$questionnaire-package"
        status, answer = call("POST", operation, token=self.access_token, body={"resourceType": "Parameters", "parameter": [
            {"name": "coverage", "resource": self.coverage},
            {"name": "questionnaire", "valueCanonical": questionnaire},
            {"name": "context", "valueString": context}]})
        check(status == 200, "the DTR package", answer)
        self.keep("package" if not clinician else "package-for-pended", answer)
        parameter = answer["parameter"][0]
        check(parameter["name"] == "PackageBundle", "the output is PackageBundle", parameter["name"])
        entries = [e["resource"] for e in parameter["resource"]["entry"]]
        form = next(r for r in entries if r["resourceType"] == "Questionnaire")
        draft = next((r for r in entries if r["resourceType"] == "QuestionnaireResponse"), None)
        # SDC population: the form's expressions, run against this EHR's own chart.
        filled = fill(form, self.patient, self.ehr.query)
        check("patient.birth_date" in filled, "the birth date comes from the chart", filled)
        weight = next((v for k, v in filled.items() if "weight" in k), None)
        check(weight == ["68.5"], "the newest weight comes from the chart", filled)
        items = {i["linkId"]: i for i in (draft or {}).get("item", [])}
        kinds = {i["linkId"]: i for i in walk(form.get("item", []))}
        for link, values in filled.items():
            items.setdefault(link, {"linkId": link, "answer": [typed(kinds[link], v) for v in values]})
        # The clinician: lineage, Ph status and the kind of request at first; everything the
        # payer then asks for from the clinical record (CLINICIAN). Choices are picked among
        # the question's own options.
        for link, value in {**FIRST_ANSWERS, **clinician}.items():
            if link not in kinds or link in items:
                continue
            item = kinds[link]
            if item["type"] == "choice":
                options = [o["valueCoding"] for o in item.get("answerOption", []) if "valueCoding" in o]
                chosen = [o for o in options if o["code"] == value]
                check(chosen, f"the form offers {value} for {link}", options)
                items[link] = {"linkId": link, "answer": [{"valueCoding": chosen[0]}]}
            else:
                items[link] = {"linkId": link, "answer": [typed(item, value)]}
        response = dict(draft or {"resourceType": "QuestionnaireResponse", "questionnaire": questionnaire,
                                  "subject": {"reference": f"Patient/{self.patient['id']}"}})
        response.update({"id": "lk-dtr-1" if not clinician else "lk-dtr-2", "status": "completed", "item": list(items.values()),
                         "authored": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.step(f"DTR ({context}): {len(kinds)} questions; {len(filled)} filled from the chart; {len(items)} answered")
        return response

    def claim_bundle(self, order, response, hcpcs, units, certification, related=None):
        """A PAS request Bundle shaped as the guide's medical-services example, for this
        member, order and answers."""
        bundle = json.loads((EXAMPLE / "Bundle-MedicalServicesAuthorizationBundleExample.json").read_text())
        trace = uuid.uuid4().hex[:12]
        bundle.pop("text", None)
        bundle["identifier"] = {"system": "urn:oid:1.2.840.114350.1.13.999.2.7.3.688884.100", "value": uuid.uuid4().hex}
        bundle["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        resources = {e["resource"]["resourceType"] + "/" + e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
        for resource in resources.values():
            resource.pop("text", None)
        claim = resources["Claim/MedicalServicesAuthorizationExample"]
        claim["identifier"][0]["value"] = trace
        claim["created"] = bundle["timestamp"]
        claim["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C91.02"}]}}]
        claim["supportingInfo"] = [{"sequence": 1, "category": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes", "code": "additionalInformation"}]},
                                    "valueReference": {"reference": f"QuestionnaireResponse/{response['id']}"}}]
        item = claim["item"][0]
        item["extension"] = [e for e in item["extension"] if not e["url"].endswith(("authorizationNumber", "administrationReferenceNumber"))]
        for extension in item["extension"]:
            if extension["url"].endswith("extension-certificationType"):
                extension["valueCodeableConcept"]["coding"][0] = {"system": f"{X12}/1322", "code": certification}
        item["productOrService"] = {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": hcpcs}]}
        item["quantity"] = {"value": units}
        item.pop("servicedDate", None)
        item["servicedPeriod"] = {"start": self.today, "end": self.today}
        if certification == "3":
            item["modifierExtension"] = [{"url": f"{PAS}/modifierextension-infoCancelled", "valueBoolean": True}]
        if related:
            claim["meta"] = {"profile": [f"{PAS}/profile-claim-update"]}
            claim["related"] = [{"claim": {"identifier": {"system": claim["identifier"][0]["system"], "value": related}},
                                 "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship", "code": "prior"}]}}]
        patient = resources["Patient/SubscriberExample"]
        patient["birthDate"] = self.patient["birthDate"]
        patient["identifier"] = self.patient["identifier"]
        coverage = resources["Coverage/InsuranceExample"]
        coverage["subscriberId"] = self.member_id
        coverage["identifier"] = self.coverage["identifier"]
        bundle["entry"].append({"fullUrl": f"http://lakeside.example/fhir/QuestionnaireResponse/{response['id']}",
                                "resource": dict(response, subject={"reference": "Patient/SubscriberExample"})})
        return trace, bundle

    def submit(self, order, response):
        """The first submission, with the form partly answered: pended for the missing
        information, with PAS's Task naming the questionnaire and the request."""
        trace, bundle = self.claim_bundle(order, response, "J9039", 784, "I")
        status, answer = self.fhir("POST", "Claim/$submit", bundle)
        check(status == 200, "PAS $submit answers 200", answer)
        self.keep("pas-pended", answer)
        check(review_actions(answer) == ["A4"], "the request is pended (A4)", review_actions(answer))
        note = " ".join(n.get("text", "") for n in claim_response(answer).get("processNote", []))
        check("Still needed by" in note, "the answer says in words what is missing and by when", note)
        tasks = [e["resource"] for e in answer["entry"] if e["resource"]["resourceType"] == "Task"]
        check(tasks, "a Task asks for the information", answer)
        task = {i["type"]["coding"][0]["code"]: next(v for k, v in i.items() if k.startswith("value")) for i in tasks[0]["input"]}
        check({"payer-url", "questionnaire-context"} <= set(task), "the Task names the questionnaire and its context", task)
        # A retry of the same Bundle is the same answer.
        status, again = self.fhir("POST", "Claim/$submit", bundle)
        check(status == 200 and claim_response(again).get("id") == claim_response(answer).get("id"), "a retry answers the same request", again)
        self.step(f"PAS: pended for information (trace {trace}): {note[:90]}…")
        return trace, task

    def update(self, order, response, prior):
        """PAS's update of the pended request with the answers: the original is withdrawn, the
        update decided."""
        trace, bundle = self.claim_bundle(order, response, "J9039", 784, "I", related=prior)
        status, answer = self.fhir("POST", "Claim/$submit", bundle)
        check(status == 200, "the update answers 200", answer)
        self.keep("pas-updated", answer)
        actions = review_actions(answer)
        check(actions == ["A1"], "the answered update is approved (A1)", actions)
        number = claim_response(answer).get("preAuthRef")
        check(number and number.startswith("PA-"), "the approval carries its authorization number", claim_response(answer))
        self.step(f"PAS update (trace {trace}, related to {prior}): A1, authorization {number}")
        return trace, bundle, number

    def review(self, order, answered):
        """A request the policy's criteria fail (a T-cell lineage) is pended for a clinician;
        the payer's reviewer confirms the denial on a criterion that fails it, and the EHR
        hears the final answer."""
        items = [i for i in answered["item"] if i["linkId"] != "diagnosis.lineage"]
        lineage = {"linkId": "diagnosis.lineage", "answer": [{"valueCoding": dict(
            next(i for i in answered["item"] if i["linkId"] == "diagnosis.lineage")["answer"][0]["valueCoding"], code="t_cell", display="T-cell")}]}
        trace, bundle = self.claim_bundle(order, dict(answered, id="lk-dtr-3", item=items + [lineage]), "J9039", 784, "I")
        status, answer = self.fhir("POST", "Claim/$submit", bundle)
        check(status == 200, "PAS $submit answers 200", answer)
        self.keep("pas-pended-for-review", answer)
        check(review_actions(answer) == ["A4"], "a recommended denial is pended for a clinician (A4)", review_actions(answer))
        request_id = claim_response(answer).get("preAuthRef")
        status, record = call("GET", f"{self.base}/v1/requests/{request_id}", token=self.reviewer_key)
        check(status == 200, "the reviewer reads the request", record)
        grounds = [g["id"] if isinstance(g, dict) else g for g in record.get("denial_grounds", [])]
        check(grounds, "the request shows the criteria that fail it", record)
        status, determined = call("POST", f"{self.base}/v1/requests/{request_id}/determination", token=self.reviewer_key,
                                  body={"decision": "deny", "criterion": grounds[0],
                                        "reason": "T-cell lineage: the policy covers B-cell precursor ALL only."})
        check(status == 200, "the reviewer's denial is recorded", determined)
        heard = self.ehr.notification(30, lambda final: claim_response(final).get("preAuthRef") == request_id)
        self.keep("notification-denied", heard)
        final = next(e["resource"] for e in heard["entry"] if e["resource"]["resourceType"] == "Bundle")
        check(review_actions(final) == ["A3"], "the subscriber hears the denial (A3)", review_actions(final))
        note = " ".join(n.get("text", "") for n in claim_response(final).get("processNote", []))
        check(grounds[0] in note and "Dr. Rivera" in note, "the denial names its criterion and its reviewer", note)
        if self.denial_reason:
            check(denial_reasons(final) == [self.denial_reason], "the denial carries the payer's X12 reason code", denial_reasons(final))
        self.inquire(trace, bundle, "A3", request_id)
        self.step(f"reviewer denied {request_id} on {grounds[0]}; notification heard (A3); $inquire finds it")

    def inquire(self, trace, claim_bundle, action, reference):
        """The guide's inquiry (trace number, member, provider, nothing else) finds the
        request; the same trace number with another member finds nothing."""
        inquiry = {"resourceType": "Bundle", "type": "collection", "timestamp": claim_bundle["timestamp"],
                   "identifier": {"system": "urn:oid:1.2.840.114350.1.13.999.2.7.3.688884.100", "value": uuid.uuid4().hex},
                   "entry": []}
        for entry in claim_bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Claim":
                resource = {k: v for k, v in resource.items() if k not in ("supportingInfo", "diagnosis", "related")}
                resource["meta"] = {"profile": [f"{PAS}/profile-claim-inquiry"]}
            if resource["resourceType"] in ("Claim", "Organization", "Coverage", "Patient"):
                inquiry["entry"].append(dict(entry, resource=resource))
        status, answer = self.fhir("POST", "Claim/$inquire", inquiry)
        check(status == 200, "$inquire answers 200", answer)
        self.keep(f"inquiry-{action}", answer)
        found = answer["parameter"][0]["resource"] if answer.get("resourceType") == "Parameters" else answer
        check(review_actions(found) == [action], f"the inquiry returns {action}", review_actions(found))
        check(claim_response(found).get("preAuthRef") == reference, "the inquiry finds this request", claim_response(found))
        stranger = json.loads(json.dumps(inquiry))
        for entry in stranger["entry"]:
            if entry["resource"]["resourceType"] == "Coverage":
                entry["resource"]["subscriberId"] = "ZZ" + self.member_id
                entry["resource"]["identifier"][0]["value"] = "ZZ" + self.member_id
            if entry["resource"]["resourceType"] == "Patient":
                entry["resource"]["identifier"] = [{"system": "urn:oid:1.2.840.114350.1.13.999.2.7.5.737384.14", "value": "MRN-000001"}]
        status, none = self.fhir("POST", "Claim/$inquire", stranger)
        # PAS: 0..* Bundles; none found is no failed transaction (200, no Bundle).
        check(status == 200 and not none.get("parameter"), "the same trace number for another member finds nothing", (status, none))

    def cancel_approved(self, order, response, trace, claim_bundle, number):
        """The approved order's treatment is stopped: its cancellation cancels the
        authorization (C), the subscription says so, and the inquiry finds it cancelled."""
        _, cancel = self.claim_bundle(order, response, "J9039", 784, "3", related=trace)
        status, cancelled = self.fhir("POST", "Claim/$submit", cancel)
        check(status == 200, "the cancellation of the approval answers 200", cancelled)
        self.keep("pas-approval-cancelled", cancelled)
        check(review_actions(cancelled) == ["C"], "the cancelled approval is answered C", review_actions(cancelled))
        heard = self.ehr.notification(30, lambda final: claim_response(final).get("preAuthRef") == number
                                      and review_actions(final) == ["C"])
        self.keep("notification-approval-cancelled", heard)
        self.inquire(trace, claim_bundle, "C", number)
        self.step(f"authorization {number} cancelled by the provider: C, heard, and found so")

    def cancel(self, response):
        order = {"resourceType": "MedicationRequest", "id": "lk-ord-5530"}
        trace, bundle = self.claim_bundle(order, dict(response, item=response["item"][:4]), "J9039", 392, "I")
        status, answer = self.fhir("POST", "Claim/$submit", bundle)
        check(status == 200, "a second order is submitted", answer)
        check(review_actions(answer) == ["A4"], "the second order is pended", review_actions(answer))
        first = review_actions(answer)
        _, cancel = self.claim_bundle(order, response, "J9039", 392, "3", related=trace)
        status, cancelled = self.fhir("POST", "Claim/$submit", cancel)
        check(status == 200, "the cancellation answers 200", cancelled)
        self.keep("pas-cancelled", cancelled)
        check(review_actions(cancelled) == ["C"], "the cancellation is answered C", review_actions(cancelled))
        self.step(f"second order {first}, then cancelled: C")


# What the clinician answers when the payer asks: a relapsed Ph-negative B-cell precursor ALL,
# Blincyto alone at 28 mcg a day for 28 days of a 42-day cycle, the first cycle of the course.
FIRST_ANSWERS = {"diagnosis.lineage": "b_cell_precursor", "diagnosis.ph_status": "negative", "request.kind": "initial"}
CLINICIAN = {
    "request.regimen": "single_agent", "request.dose": (28, "ug/d"), "request.dose_days": 28, "request.cycle_length_days": 42,
    "request.cycles": 1, "request.first_cycle": 1, "request.units": 784, "request.units_period_days": 42,
    "diagnosis.condition": "acute_lymphoblastic_leukemia", "diagnosis.disease_status": "relapsed",
    "history.live_vaccine_within_2_weeks": False, "history.live_vaccine_planned": False,
}


def walk(items):
    for item in items:
        yield item
        yield from walk(item.get("item", []))


def typed(item, value):
    """A filled value as the answer type of its item."""
    kind = item.get("type")
    if kind == "decimal":
        return {"valueDecimal": float(value)}
    if kind == "integer":
        return {"valueInteger": int(float(value))}
    if kind == "date":
        return {"valueDate": value}
    if kind == "quantity":
        # (value, unit code), the unit one of the item's own unit options.
        number, code = value
        units = [e["valueCoding"] for e in item.get("extension", []) if e["url"].endswith("questionnaire-unitOption")]
        unit = next((u for u in units if u["code"] == code), None)
        check(unit, f"the form offers the unit {code} for {item['linkId']}", units)
        return {"valueQuantity": {"value": float(number), "unit": unit.get("display", code), "system": unit["system"], "code": code}}
    if kind == "boolean":
        return {"valueBoolean": value in (True, "true")}
    return {"valueString": value}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys")
    keys.add_argument("dir")
    run = commands.add_parser("run")
    for name in ("base", "client-id", "key", "member-id", "reviewer-key", "out"):
        run.add_argument(f"--{name}", required=True)
    run.add_argument("--denial-reason", help="the X12 886 code the payer gives its denials, if any")
    args = parser.parse_args()
    if args.command == "keys":
        make_keys(args.dir)
        return 0
    try:
        Flow(args).run()
    except Failed as failure:
        print(f"FAILED: {failure}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
