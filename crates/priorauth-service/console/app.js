// The priorauth console: intake, decision view, payer comparison, review queue,
// authorizations, appeals and the UM report, over the service's own API. No framework, no
// other origin.
'use strict';

const state = { key: sessionStorage.getItem('priorauth-key'), questions: null, plans: null, policies: null, sources: {}, navigation: 0 };
const $ = (selector, root = document) => root.querySelector(selector);
const view = () => $('#view');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/// Renders a view, unless the user navigated elsewhere while it was loading.
function show(navigation, ...children) {
  if (navigation === state.navigation) setChildren(view(), ...children);
}

/// Replaces a node's children, flattening lists and leaving out nulls.
function setChildren(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter(child => child !== null && child !== undefined));
}

/// A call of the API with the signed-in key: a JSON body, or a file sent as it is (`type`).
async function api(method, path, body, type = 'application/json') {
  const json = type === 'application/json';
  const key = state.key;
  const response = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + key, 'Content-Type': type },
    body: body === undefined || !json ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  if (response.status === 401) {
    // Only a refusal of the key still in use signs out: a late answer to a call made with a
    // key since replaced (a mistyped one, then the right one) must not sign out the new one.
    if (state.key === key) signOut('That key was not accepted: check it and sign in again.');
    throw new Error('Your key was not accepted.');
  }
  if (!response.ok) throw new Error(data?.detail || ('HTTP ' + response.status));
  return data;
}

/// A time (stored and answered in UTC) as the plan's people read it: in the plan's time zone.
function when(iso, planId) {
  const zone = state.plans?.find(p => p.id === planId)?.time_zone || 'UTC';
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: zone, timeZoneName: 'short' });
  } catch {
    return new Date(iso).toISOString();
  }
}

function outcomeBadge(outcome) {
  return el('span', { class: 'outcome ' + outcome }, outcome.replace('_', ' '));
}

function signOut(message) {
  sessionStorage.removeItem('priorauth-key');
  state.key = null;
  state.me = null;
  state.questions = null;
  $('#signin-error').textContent = typeof message === 'string' ? message : '';
  route();
}

async function load() {
  if (!state.questions) {
    [state.me, state.questions, state.plans, state.policies] = await Promise.all([api('GET', '/v1/me'), api('GET', '/v1/questions'), api('GET', '/v1/plans'), api('GET', '/v1/policies')]);
    const who = $('#whoami');
    who.textContent = `${state.me.name} · ${state.me.role} · ${state.me.organization}`;
    who.hidden = false;
    // Each role sees the views it works in.
    for (const link of document.querySelectorAll('nav a[data-roles]')) link.hidden = !link.dataset.roles.split(' ').includes(state.me.role);
  }
}

/// Minutes left on a clock in words: "3 h 5 min", or "overdue by 1 h 1 min".
function timeLeft(minutes) {
  if (minutes === null || minutes === undefined) return '';
  const m = Math.abs(minutes);
  const text = `${Math.floor(m / 60)} h ${m % 60} min`;
  return minutes < 0 ? 'overdue by ' + text : text;
}

/// A member as the lists show them: name and id, or what is known.
function memberText(member) {
  if (!member || (!member.name && !member.id)) return 'not named';
  return [member.name, member.id ? `(${member.id})` : null].filter(Boolean).join(' ');
}

// ---- Intake ----

function fieldFor(question, onChange) {
  const id = 'q-' + question.key.replace(/\./g, '-');
  const wrap = el('div', { class: 'field', 'data-key': question.key });
  const label = el('label', { for: id }, question.label);
  wrap.append(label);
  let input;
  switch (question.kind) {
    case 'enum':
      input = el('select', { id }, el('option', { value: '' }, '(not given)'), question.choices.map(c => el('option', { value: c.value }, c.label)));
      break;
    case 'bool':
      input = el('select', { id }, el('option', { value: '' }, '(not given)'), el('option', { value: 'true' }, 'yes'), el('option', { value: 'false' }, 'no'));
      break;
    case 'date':
      input = el('input', { id, type: 'date' });
      break;
    case 'integer':
      input = el('input', { id, type: 'number', step: '1', min: '0', inputmode: 'numeric' });
      break;
    case 'number':
      input = el('input', { id, type: 'number', step: 'any', min: '0' });
      break;
    case 'dose': {
      input = el('input', { id, type: 'number', step: 'any', min: '0' });
      const unit = el('select', { id: id + '-unit', 'aria-label': 'dose unit' }, question.choices.map(c => el('option', { value: c.value }, c.value)));
      unit.addEventListener('change', onChange);
      wrap.append(input, ' ', unit);
      input.addEventListener('input', onChange);
      return wrap;
    }
    case 'tkis': {
      const rows = el('div', { class: 'tkis' });
      const add = el('button', { type: 'button', onclick: () => { rows.append(tkiRow(question, onChange)); onChange(); } }, 'Add a TKI');
      const none = el('label', {}, el('input', { type: 'checkbox', id, onchange: onChange }), ' none tried');
      label.removeAttribute('for');
      wrap.append(rows, add, ' ', none);
      return wrap;
    }
    default:
      input = el('input', { id, type: 'text' });
  }
  input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input', onChange);
  wrap.append(input);
  return wrap;
}

function tkiRow(question, onChange) {
  const drug = el('select', { 'aria-label': 'TKI' }, question.choices.map(c => el('option', { value: c.value }, c.label)));
  const outcome = el('select', { 'aria-label': 'how it went' }, question.outcomes.map(c => el('option', { value: c.value }, c.label)));
  drug.addEventListener('change', onChange);
  outcome.addEventListener('change', onChange);
  const row = el('div', { class: 'tki' }, drug, ' ', outcome, ' ', el('button', { type: 'button', onclick: () => { row.remove(); onChange(); } }, 'Remove'));
  return row;
}

function readCase(form, questions) {
  const kase = { request: {}, patient: {}, diagnosis: {}, history: {}, prescriber: {} };
  for (const question of questions) {
    const [section, key] = question.key.split('.');
    const id = 'q-' + question.key.replace(/\./g, '-');
    const input = form.querySelector('#' + id);
    if (!input) continue;
    let value = null;
    if (question.kind === 'tkis') {
      const rows = [...form.querySelectorAll('.tki')].map(r => ({ drug: r.children[0].value, outcome: r.children[1].value }));
      value = rows.length ? rows : (input.checked ? [] : null);
    } else if (input.value === '') {
      value = null;
    } else if (question.kind === 'bool') value = input.value === 'true';
    else if (question.kind === 'integer') value = parseInt(input.value, 10);
    else if (question.kind === 'number') value = parseFloat(input.value);
    else if (question.kind === 'dose') value = { value: parseFloat(input.value), unit: form.querySelector('#' + id + '-unit').value };
    else value = input.value;
    if (value === null || (typeof value === 'number' && Number.isNaN(value))) continue;
    // Facts declared in data by the policies (facts.toml) go in `facts`, by their full name.
    if (question.declared) (kase.facts = kase.facts || {})[question.key] = value;
    else kase[section][key] = value;
  }
  return kase;
}

async function intake() {
  const navigation = state.navigation;
  await load();
  const plan = el('select', { id: 'plan' }, state.plans.map(p => el('option', { value: p.id }, p.name)));
  const urgency = el('select', { id: 'urgency' }, el('option', { value: 'standard' }, 'standard'), el('option', { value: 'expedited' }, 'expedited: waiting could seriously harm the member'));
  const identity = [
    ['member-id', 'Member id (on the plan\'s card)', { required: true, maxlength: '64' }],
    ['member-name', 'Member name', { required: true, maxlength: '200' }],
    ['prescriber-name', 'Prescriber name', { maxlength: '200' }],
    ['prescriber-npi', 'Prescriber NPI (10 digits)', { pattern: '\\d{10}', inputmode: 'numeric', maxlength: '10' }],
  ].map(([id, label, attrs]) => el('div', { class: 'field' }, el('label', { for: id }, label), el('input', { id, ...attrs })));
  const drug = el('select', { id: 'drug' });
  const form = el('form', { id: 'intake-form', novalidate: true });
  const preview = el('div', { class: 'panel', id: 'preview' }, el('p', {}, 'Answer the questions; the outcome and the questions that can still change it update as you go.'));
  const setDrugs = () => {
    const chosen = state.plans.find(p => p.id === plan.value);
    setChildren(drug, ...Object.keys(chosen.policies).map(d => el('option', { value: d }, state.questions[0].choices.find(c => c.value === d)?.label || d)));
    build();
  };
  let questions = [];
  let timer = null;
  const changed = () => { clearTimeout(timer); timer = setTimeout(refresh, 150); };
  const build = () => {
    const chosen = state.plans.find(p => p.id === plan.value);
    const policy = state.policies.find(p => p.id === chosen.policies[drug.value]);
    // The policy's own questions, and the quantity an authorization needs whatever the policy.
    const quantity = ['request.hcpcs', 'request.cycles', 'request.units', 'request.units_period_days'];
    const wanted = new Set([...policy.questions, ...quantity].filter(k => k !== 'request.drug' && k !== 'request.line_of_business'));
    questions = state.questions.filter(q => wanted.has(q.key));
    setChildren(form,
      el('p', { class: 'hint' }, `${policy.title}: ${questions.length} questions. Those that can still change the outcome are marked.`),
      questions.map(q => fieldFor(q, changed)),
      el('button', { type: 'submit', class: 'primary' }, 'Submit the request'),
    );
    refresh();
  };
  async function refresh() {
    const chosen = state.plans.find(p => p.id === plan.value);
    const kase = readCase(form, questions);
    kase.request.drug = drug.value;
    kase.request.line_of_business = chosen.line_of_business;
    try {
      const answer = await api('POST', '/v1/evaluate', { case: kase });
      const mine = answer.results.find(r => r.result.policy === chosen.policies[drug.value]);
      const missing = new Set(mine.result.missing);
      for (const field of form.querySelectorAll('.field')) {
        const needed = missing.has(field.dataset.key);
        field.classList.toggle('needed', needed);
        field.querySelector('.badge')?.remove();
        if (needed) field.querySelector('label, legend')?.append(el('span', { class: 'badge' }, '(can still change the outcome)'));
      }
      const size = [];
      if (answer.bsa_m2) size.push(`Body surface area ${answer.bsa_m2} m²`);
      if (answer.allowed_dose) size.push(`label dose up to ${answer.allowed_dose.value} ${answer.allowed_dose.unit}`);
      setChildren(preview,
        el('h3', {}, 'Outcome under ', mine.title),
        el('p', {}, outcomeBadge(mine.result.outcome), mine.result.authorization ? ` ${mine.result.authorization.start} to ${mine.result.authorization.end}` : ''),
        size.length ? el('p', { id: 'body-size' }, size.join('; ')) : null,
        missing.size ? el('p', {}, `Still needed: ${missing.size} answer(s).`) : null,
        decisionTree(mine, chosen.policies[drug.value]),
      );
    } catch (error) {
      setChildren(preview, el('p', { class: 'error', role: 'alert' }, error.message));
    }
  }
  form.addEventListener('submit', async event => {
    event.preventDefault();
    const chosen = state.plans.find(p => p.id === plan.value);
    const kase = readCase(form, questions);
    kase.request.drug = drug.value;
    // Nothing is sent until the form is valid: who the request is for, and answers of the right form.
    const invalid = [...document.querySelectorAll('#identity-fields input'), ...form.querySelectorAll('input, select')].find(i => !i.checkValidity());
    if (invalid) { invalid.reportValidity(); invalid.focus(); return; }
    const value = id => $('#' + id).value.trim() || undefined;
    Object.assign(kase.patient, { member_id: value('member-id'), name: value('member-name') });
    Object.assign(kase.prescriber, { name: value('prescriber-name'), npi: value('prescriber-npi') });
    try {
      const answer = await api('POST', '/v1/requests', { plan: chosen.id, case: kase, urgency: urgency.value });
      location.hash = '#request/' + answer.id;
    } catch (error) {
      preview.prepend(el('p', { class: 'error', role: 'alert' }, error.message));
    }
  });
  plan.addEventListener('change', setDrugs);
  drug.addEventListener('change', build);
  show(navigation,
    el('h2', {}, 'New request'),
    el('fieldset', { id: 'identity-fields' }, el('legend', {}, 'Who the request is for'), identity),
    el('div', { class: 'field' }, el('label', { for: 'urgency' }, 'Urgency'), urgency),
    el('div', { class: 'field' }, el('label', { for: 'plan' }, 'Plan'), plan),
    el('div', { class: 'field' }, el('label', { for: 'drug' }, 'Drug'), drug),
    el('div', { class: 'layout' }, form, preview),
  );
  setDrugs();
}

// ---- Decision view ----

function decisionTree(entry, policyId) {
  const source = el('div', { class: 'source-panel' });
  const lists = entry.pathways.map(pathway => {
    const items = pathway.nodes.map(node => el('li', { class: 'd' + Math.min(node.depth, 8) },
      el('span', { class: 'mark ' + node.status }, node.status.replace('_', ' ')),
      el('button', { type: 'button', class: 'criterion', 'aria-label': `${node.text}: show the source`, onclick: () => showSource(source, policyId, node) }, node.text)));
    return el('details', { open: pathway.decided || entry.pathways.length === 1 || undefined },
      el('summary', {}, el('span', { class: 'mark ' + pathway.status }, pathway.status.replace('_', ' ')), ` ${pathway.title} (${pathway.outcome})`),
      el('ul', { class: 'tree' }, items));
  });
  return el('div', { class: 'tree-wrap' }, el('h4', {}, 'Criteria'), lists, source);
}

function quotePattern(quote) {
  const words = quote.replace(/\*\*/g, '').split(/\s+/).filter(Boolean)
    .map(w => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/-/g, '-\\s*'));
  return new RegExp(words.join('[\\s*]+'));
}

async function showSource(panel, policyId, node) {
  if (!state.sources[policyId]) state.sources[policyId] = await api('GET', `/v1/policies/${policyId}/source`);
  const text = state.sources[policyId];
  const match = quotePattern(node.quote).exec(text);
  const pre = el('div', { class: 'source', tabindex: '0', 'aria-label': 'source document' });
  if (match) {
    const mark = el('mark', {}, match[0]);
    pre.append(text.slice(0, match.index), mark, text.slice(match.index + match[0].length));
    setChildren(panel, el('h4', {}, node.section), node.interpretation ? el('p', { class: 'hint' }, 'Interpretation: ' + node.interpretation) : null, pre);
    mark.scrollIntoView({ block: 'center' });
  } else {
    pre.append(text);
    setChildren(panel, el('h4', {}, node.section), el('p', {}, `"${node.quote}"`), pre);
  }
}

async function requestView(id) {
  const navigation = state.navigation;
  await load();
  const request = await api('GET', '/v1/requests/' + id);
  const answer = await api('POST', '/v1/evaluate', { case: request.case });
  const mine = answer.results.find(r => r.result.policy === request.policy);
  const d = request.decision;
  const c = request.case || {};
  const patient = c.patient || {}, prescriber = c.prescriber || {}, asked = c.request || {};
  const dose = asked.dose ? `${asked.dose.value} ${asked.dose.unit}` : 'not given';
  // The criteria that keep the request from approval, with the case's value beside each.
  // To a reviewer: every criterion that fails it (what a denial may cite); else those of the decision.
  const reasonOf = id => (d.reasons || []).find(r => r.id === id) || {};
  const failing = request.denial_grounds
    ? request.denial_grounds.map(g => ({ status: g.status === 'met' ? 'applies' : g.status, criterion: g.text, value: reasonOf(g.id).value, source: reasonOf(g.id).source }))
    : (d.reasons || []).filter(r => r.status !== 'met' && r.depth === 0);
  // Files come while the request is pending, from its clinic or a reviewer (the service checks again).
  const canSendFiles = ['pending_information', 'pending_review'].includes(request.status) && ['submitter', 'reviewer'].includes(state.me.role);
  const routed = d.outcome === 'review' && d.pathway ? `Its pathway "${d.pathway.replace(/-/g, ' ')}" asks for a clinician's review.` : null;
  const parts = [
    el('h2', {}, `Request for ${memberText({ id: patient.member_id, name: patient.name })}`),
    el('div', { class: 'layout', id: 'identity' },
      el('div', { class: 'panel' }, el('h3', {}, 'Member'),
        el('p', {}, patient.name || 'name not given', el('br'), 'Member id ', patient.member_id || 'not given', el('br'), 'Born ', patient.birth_date || 'not given')),
      el('div', { class: 'panel' }, el('h3', {}, 'Prescriber'),
        el('p', {}, prescriber.name || 'name not given', el('br'), 'NPI ', prescriber.npi || 'not given', el('br'), (prescriber.specialty || 'specialty not given').replace(/_/g, ' '))),
      el('div', { class: 'panel' }, el('h3', {}, 'Clinic and request'),
        el('p', {}, request.organization, el('br'), `${(asked.drug || '').replace(/_/g, ' ')} ${dose}`, el('br'),
          `${asked.cycles ?? '?'} cycles of ${asked.cycle_length_days ?? '?'} days; ${asked.units ?? '?'} units per ${asked.units_period_days ?? '?'} days`, el('br'),
          `Received ${when(request.created_at, request.plan)}; ${request.urgency}`))),
    clinicalPanel(c),
    failing.length || routed ? el('div', { class: 'panel', id: 'why' }, el('h3', {}, 'Why it is not approved'),
      routed ? el('p', {}, routed) : null,
      el('ul', {}, failing.map(r => el('li', {}, el('strong', {}, r.status.replace('_', ' ')), `: ${r.criterion}`, r.value ? ` (the request: ${r.value})` : '',
        r.source ? el('div', { class: 'hint' }, 'Source: ', r.source) : null)))) : null,
    filesPanel(request, canSendFiles),
    request.comments ? commentsPanel(request) : null,
    el('p', { class: 'hint' }, `Request ${request.id}`),
    el('p', {}, `Plan ${request.plan}, policy ${request.policy} (version ${request.policy_version}); status `, el('strong', { id: 'status' }, request.status.replace('_', ' '))),
    el('p', {}, 'Recommendation: ', outcomeBadge(d.outcome), d.authorization ? ` authorized ${d.authorization.start} to ${d.authorization.end}` : ''),
    request.authorization ? el('p', { id: 'pa-number', class: 'panel' }, el('strong', {}, `Authorization ${request.authorization.number}`), `: ${request.authorization.start} to ${request.authorization.end}, ${request.authorization.approved_units} units`,
      request.authorization.cancelled_on ? `; cancelled by the provider on ${request.authorization.cancelled_on}` : '') : null,
    d.quantity ? el('p', {}, `Quantity: ${d.quantity.hcpcs} × ${d.quantity.units} units per ${d.quantity.period_days} days (${d.quantity.vials} vials), ${d.quantity.cycles} cycles`) : null,
    d.missing.length ? el('p', {}, 'Missing: ' + d.missing.join(', ')) : null,
    request.due_at ? el('p', { class: request.late ? 'due-soon' : null }, `Due by ${when(request.due_at, request.plan)}${request.late ? ' (late)' : ''}`) : null,
    request.determination ? el('p', { class: 'panel' }, `Determination: ${request.determination.decision} by ${request.determination.reviewer.name} (${request.determination.reviewer.credentials}): ${request.determination.reason}`) : null,
    el('p', {}, el('a', { href: '#compare/' + id }, 'Compare payers')),
    decisionTree(mine, request.policy),
  ];
  if (request.status === 'pending_review' && state.me.role === 'reviewer') parts.push(determinationForm(request), askForm(request));
  if (request.status === 'pending_information' && state.me.role !== 'reviewer') parts.push(completionForm(request));
  if (request.status === 'denied') parts.push(el('p', {}, el('a', { href: '#letter/' + id, id: 'letter-link' }, 'The denial notice')));
  if (request.status === 'approved') parts.push(el('p', {}, el('a', { href: '#approval/' + id, id: 'approval-link' }, 'The approval notice')));
  const record = await api('GET', `/v1/requests/${id}/appeals`);
  if (record.appeals.length) parts.push(appealsTable('Appeals of this request', record.appeals, 'request-appeals'));
  if (record.peer_to_peer.length) {
    parts.push(el('h3', {}, 'Peer-to-peer discussions'), el('ul', { id: 'discussions' }, record.peer_to_peer.map(p =>
      el('li', {}, `${when(p.held_at, request.plan)}: ${p.prescriber} with ${p.reviewer.name}: ${p.outcome.replace(/_/g, ' ')}${p.notes ? ' (' + p.notes + ')' : ''}`))));
  }
  const adverse = request.status === 'denied' || (request.status === 'approved' && request.determination?.decision === 'approve_with_changes');
  const appealOpen = record.appeals.some(a => a.status === 'pending');
  // Each form is offered to the roles that may use it (the service checks again).
  const role = state.me.role;
  const clinic = role !== 'reviewer', payer = role !== 'submitter';
  if (adverse && !appealOpen && clinic) parts.push(appealForm(request));
  const pending = request.status === 'pending_information' || request.status === 'pending_review';
  if (request.status === 'approved' && request.authorization && !request.authorization.cancelled_on && clinic) {
    parts.push(reasonForm(request, 'cancel-authorization', 'Cancel the authorization', 'When the drug is no longer needed: drug given through today stays covered, nothing after.', `/v1/authorizations/${request.authorization.number}/cancellation`));
  }
  if (pending && clinic) parts.push(reasonForm(request, 'withdraw', 'Withdraw the request', 'The requester withdraws it; it leaves the queue and keeps its history.', `/v1/requests/${id}/withdrawal`));
  if (pending && payer && request.urgency === 'standard' && !request.history.some(e => e.kind === 'extended')) {
    parts.push(reasonForm(request, 'extend', 'Extend the decision clock', 'Once, where the plan allows it; the reason is the requester\'s notice.', `/v1/requests/${id}/extension`));
  }
  if (request.status === 'denied' && !appealOpen && role === 'reviewer') parts.push(reasonForm(request, 'reopen', 'Reopen on new information', 'The request is in review again, due by the plan\'s clock; the determination stays in its history.', `/v1/requests/${id}/reopening`));
  if ((request.determination || request.status === 'pending_review') && role === 'reviewer') parts.push(peerToPeerForm(request, record.appeals.find(a => a.status === 'pending')));
  show(navigation, ...parts);
}

/// The case's diagnosis and history in the words of the intake's questions.
function clinicalPanel(c) {
  const labels = new Map(state.questions.map(q => [q.key, q.label]));
  const words = value => Array.isArray(value) ? (value.length ? value.map(words).join(', ') : 'none')
    : value && typeof value === 'object' ? Object.entries(value).map(([k, v]) => `${k.replace(/_/g, ' ')} ${words(v)}`).join(', ')
      : value === true ? 'yes' : value === false ? 'no' : String(value).replace(/_/g, ' ');
  const rows = ['diagnosis', 'history', 'labs'].flatMap(section => Object.entries(c[section] || {}).map(([key, value]) =>
    el('tr', {}, el('th', { scope: 'row' }, labels.get(`${section}.${key}`) || `${section} ${key}`.replace(/_/g, ' ')), el('td', {}, words(value)))));
  return rows.length ? el('div', { class: 'panel', id: 'clinical' }, el('h3', {}, 'Diagnosis and history'), el('table', { class: 'facts' }, el('tbody', {}, rows))) : null;
}

/// The name a sent file is saved under: its title in safe characters, with the extension of
/// the type the service checked it as, never one the sender chose (a title `note.hta` or one
/// with a right-to-left override would otherwise be saved as something a computer runs).
function savedName(title, contentType) {
  const extension = { 'application/pdf': 'pdf', 'image/png': 'png', 'image/jpeg': 'jpg', 'text/plain': 'txt' }[contentType] || 'bin';
  const base = title.replace(/[^A-Za-z0-9 ._-]/g, '_').replace(/[. ]+$/, '').slice(0, 100) || 'file';
  return `${base}.${extension}`;
}

const FILE_KINDS = { 'application/pdf': 'PDF', 'image/png': 'PNG', 'image/jpeg': 'JPEG', 'text/plain': 'text' };

/// The files sent with the request (clinical notes, reports), each opened as a download; a
/// pending request takes more.
function filesPanel(request, canSend) {
  const message = el('p', { role: 'status' });
  const list = request.attachments.length
    ? el('ul', { id: 'files' }, request.attachments.map(f => el('li', {},
      el('button', { type: 'button', class: 'link', onclick: () => downloadFile(`/v1/requests/${request.id}/attachments/${f.n}`, savedName(f.title, f.content_type), message) }, f.title),
      ` (${FILE_KINDS[f.content_type] || f.content_type}, ${Math.ceil(f.bytes / 1024)} KB), sent by ${f.added_by} ${when(f.added_at, request.plan)}`)))
    : el('p', { class: 'hint' }, 'No files were sent with this request.');
  const panel = el('section', { class: 'panel', id: 'files-panel' }, el('h3', {}, 'Files'), list, message);
  if (!canSend) return panel;
  const file = el('input', { id: 'file', type: 'file', required: true, accept: 'application/pdf,image/png,image/jpeg' });
  const title = el('input', { id: 'file-title', type: 'text', required: true, maxlength: '200', placeholder: 'Clinic note, 2026-11-30' });
  const form = el('form', { id: 'file-form' },
    el('div', { class: 'field' }, el('label', { for: 'file' }, 'A clinical note or report (PDF, PNG or JPEG, at most 4 MB)'), file),
    el('div', { class: 'field' }, el('label', { for: 'file-title' }, 'What it is'), title),
    el('button', { type: 'submit' }, 'Send the file'));
  file.addEventListener('change', () => { if (!title.value && file.files[0]) title.value = file.files[0].name.replace(/\.[^.]+$/, ''); });
  form.addEventListener('submit', async event => {
    event.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    const chosen = file.files[0];
    if (chosen.size > 4 * 1024 * 1024) { setChildren(message, el('span', { class: 'error' }, 'The file is over 4 MB.')); return; }
    try {
      await api('POST', `/v1/requests/${request.id}/attachments?title=${encodeURIComponent(title.value.trim())}`, chosen, chosen.type || 'application/octet-stream');
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  panel.append(form);
  return panel;
}

/// The reviewers' notes on the request and its criteria, which the clinic does not see.
function commentsPanel(request) {
  const policy = state.policies.find(p => p.id === request.policy);
  const textOf = id => policy?.criteria.find(c => c.id === id)?.text || id;
  const grounds = new Set((request.denial_grounds || []).map(g => g.id));
  const criterion = el('select', { id: 'comment-criterion' },
    el('option', { value: '' }, 'The request as a whole'),
    policy ? [...policy.criteria].sort((a, b) => grounds.has(b.id) - grounds.has(a.id)).map(c => el('option', { value: c.id }, c.text)) : null);
  const text = el('textarea', { id: 'comment-text', rows: '2', cols: '60', required: true, maxlength: '2000' });
  const message = el('p', { role: 'status' });
  const form = el('form', { id: 'comment-form' },
    el('div', { class: 'field' }, el('label', { for: 'comment-criterion' }, 'About'), criterion),
    el('div', { class: 'field' }, el('label', { for: 'comment-text' }, 'Comment'), text),
    el('button', { type: 'submit' }, 'Add the comment'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    const body = { text: text.value.trim() };
    if (criterion.value) body.criterion = criterion.value;
    try {
      await api('POST', `/v1/requests/${request.id}/comments`, body);
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return el('section', { class: 'panel', id: 'comments' },
    el('h3', {}, 'Reviewers\' comments'),
    el('p', { class: 'hint' }, 'Seen by the plan\'s reviewers only; no notice quotes them.'),
    request.comments.length ? el('ul', {}, request.comments.map(c => el('li', {},
      el('strong', {}, c.criterion ? textOf(c.criterion) : 'The request'), `: ${c.text} (${c.by}, ${when(c.at, request.plan)})`))) : null,
    state.me.role === 'reviewer' ? form : null);
}

/// The questions an incomplete request still asks, answered in the page: the request is
/// decided again on the answers.
function completionForm(request) {
  const missing = new Set(request.decision.missing || []);
  const questions = state.questions.filter(q => missing.has(q.key));
  // A reviewer's own questions, in words, when a reviewer sent the request back.
  const last = request.history[request.history.length - 1];
  const asked = last?.kind === 'information_requested' ? last.questions : [];
  const replies = asked.map((question, i) => el('div', { class: 'field' },
    el('label', { for: 'reply-' + i }, question), el('textarea', { id: 'reply-' + i, rows: '3', cols: '60', required: true, maxlength: '2000' })));
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'completion', novalidate: true },
    el('h3', {}, 'Information the plan needs'),
    asked.length ? el('p', {}, `${last.reviewer} asks, by ${last.answer_by}:`) : null,
    replies,
    el('p', { class: 'hint' }, `The plan decides by ${request.due_at ? when(request.due_at, request.plan) : 'its clock'}. Answer what you can; the request is decided again on your answers.`),
    questions.map(q => fieldFor(q, () => {})),
    el('button', { type: 'submit', class: 'primary' }, 'Send the answers'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    const kase = readCase(form, questions);
    const answers = Object.fromEntries(Object.entries(kase).filter(([, v]) => v && Object.keys(v).length));
    const words = replies.map(r => r.querySelector('textarea').value.trim());
    if (words.some(w => !w)) { setChildren(message, el('span', { class: 'error' }, 'Answer each question the reviewer asked.')); return; }
    if (words.length) answers.answers = words;
    if (!Object.keys(answers).length) { setChildren(message, el('span', { class: 'error' }, 'Answer at least one question.')); return; }
    try {
      await api('PATCH', '/v1/requests/' + request.id, answers);
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

/// Saves what an authenticated GET answers (a PDF, a CSV) as a file.
async function downloadFile(path, name, message) {
  try {
    const response = await fetch(path, { headers: { 'Authorization': 'Bearer ' + state.key } });
    if (!response.ok) throw new Error(`${name} could not be made (HTTP ${response.status}).`);
    const href = URL.createObjectURL(await response.blob());
    const link = el('a', { href, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
  } catch (error) {
    setChildren(message, el('span', { class: 'error' }, error.message));
  }
}

/// A reviewer asks the requester in words, with the day the answers are wanted.
function askForm(request) {
  const today = new Date().toISOString().slice(0, 10);
  const due = request.due_at ? request.due_at.slice(0, 10) : null;
  const questions = el('textarea', { id: 'ask-questions', rows: '3', cols: '60', required: true });
  const by = el('input', { id: 'ask-by', type: 'date', required: true, min: today, max: due || undefined, value: due || today });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'ask' },
    el('h3', {}, 'Ask the provider'),
    el('p', { class: 'hint' }, 'One question per line, in words the clinic can answer. The request waits for the answers, then comes back to review; the plan\'s clock keeps running.'),
    el('div', { class: 'field' }, el('label', { for: 'ask-questions' }, 'Questions'), questions),
    el('div', { class: 'field' }, el('label', { for: 'ask-by' }, 'Answers wanted by'), by),
    el('button', { type: 'submit' }, 'Send the questions'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    if (!form.checkValidity()) { form.reportValidity(); return; }
    try {
      await api('POST', `/v1/requests/${request.id}/information-request`, { questions: questions.value.split('\n').map(q => q.trim()).filter(Boolean), answer_by: by.value });
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

/// A clinician's denial notice as a printable page, in the service's own words (the PDF
/// says the same).
async function letterView(id, kind = 'denial-letter') {
  const navigation = state.navigation;
  await load();
  const letter = await api('GET', `/v1/requests/${id}/${kind}`);
  const [heading, ...paragraphs] = letter.paragraphs;
  const message = el('p', { role: 'status' });
  const download = () => downloadFile(`/v1/requests/${id}/${kind}.pdf`, `${kind}-${id}.pdf`, message);
  show(navigation, el('article', { id: 'letter', class: 'letter' },
    el('h2', {}, heading),
    paragraphs.map(text => el('p', {}, text)),
    el('p', { class: 'no-print' }, el('button', { type: 'button', onclick: () => window.print() }, 'Print'), ' ',
      el('button', { type: 'button', id: 'letter-pdf', onclick: download }, 'Download as PDF'), ' ',
      el('a', { href: '#request/' + id }, 'Back to the request')),
    message));
}

/// A form of one reason that posts to `path`, then shows the request again.
function reasonForm(request, name, title, hint, path) {
  const reason = el('textarea', { id: name + '-reason', rows: '2', cols: '60', required: true });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: name },
    el('h3', {}, title), el('p', { class: 'hint' }, hint),
    el('div', { class: 'field' }, el('label', { for: name + '-reason' }, 'Reason'), reason),
    el('button', { type: 'submit' }, title), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    try {
      await api('POST', path, { reason: reason.value });
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

function peerToPeerForm(request, openAppeal) {
  const prescriber = el('input', { id: 'p2p-prescriber', required: true, size: '40' });
  const held = el('input', { id: 'p2p-held', type: 'datetime-local', required: true, value: new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16) });
  const outcome = el('select', { id: 'p2p-outcome' }, [['determination_stands', 'the determination stands'], ['agreed_to_approve', 'agreed to approve'],
    ['information_requested', 'more information requested'], ['prescriber_unavailable', 'prescriber unavailable']].map(([v, l]) => el('option', { value: v }, l)));
  const notes = el('textarea', { id: 'p2p-notes', rows: '2', cols: '60' });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'peer-to-peer' },
    el('h3', {}, 'Record a peer-to-peer discussion'),
    el('div', { class: 'field' }, el('label', { for: 'p2p-prescriber' }, 'Prescriber'), prescriber),
    el('div', { class: 'field' }, el('label', { for: 'p2p-held' }, 'When'), held),
    el('div', { class: 'field' }, el('label', { for: 'p2p-outcome' }, 'Outcome'), outcome),
    el('div', { class: 'field' }, el('label', { for: 'p2p-notes' }, 'Notes'), notes),
    el('button', { type: 'submit' }, 'Record the discussion'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    try {
      await api('POST', `/v1/requests/${request.id}/peer-to-peer`, { prescriber: prescriber.value, held_at: new Date(held.value).toISOString(),
        outcome: outcome.value, notes: notes.value, appeal: openAppeal?.id });
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

/// The determination: nothing chosen for the reviewer. A denial offers only the criteria
/// that fail the request (the service refuses any other); an approval with changes asks what
/// changes; the reviewer sees what will be recorded, and the notice, before it is.
function determinationForm(request) {
  const policy = state.policies.find(p => p.id === request.policy);
  const grounds = request.denial_grounds || [];
  const groundIds = new Set(grounds.map(g => g.id));
  const decision = el('select', { id: 'decision', required: true },
    el('option', { value: '' }, 'Choose…'),
    [['approve', 'approve as asked'], ['approve_with_changes', 'approve with changes'], ['deny', 'deny']].map(([v, l]) => el('option', { value: v }, l)));
  const criterion = el('select', { id: 'criterion', required: true });
  const statusWords = { not_met: 'not met', unknown: 'not settled by the case', met: 'applies' };
  const fillCriteria = () => {
    const failing = el('optgroup', { label: 'Fail the request' }, grounds.map(g => el('option', { value: g.id }, `${g.text} (${statusWords[g.status] || g.status})`)));
    const others = policy ? el('optgroup', { label: 'Met by the request' }, policy.criteria.filter(c => !groundIds.has(c.id)).map(c => el('option', { value: c.id }, c.text))) : null;
    setChildren(criterion, el('option', { value: '' }, 'Choose…'), failing, decision.value === 'deny' ? null : others);
  };
  const units = el('input', { id: 'change-units', type: 'number', min: '1', step: '1' });
  const cycles = el('input', { id: 'change-cycles', type: 'number', min: '1', step: '1' });
  const end = el('input', { id: 'change-end', type: 'date' });
  const changes = el('fieldset', { id: 'changes', hidden: true },
    el('legend', {}, 'What the approval changes (at least one; the service holds it to the policy\'s limits)'),
    el('div', { class: 'field' }, el('label', { for: 'change-units' }, 'Units per cycle'), units),
    el('div', { class: 'field' }, el('label', { for: 'change-cycles' }, 'Cycles'), cycles),
    el('div', { class: 'field' }, el('label', { for: 'change-end' }, 'Last day'), end));
  decision.addEventListener('change', () => { changes.hidden = decision.value !== 'approve_with_changes'; fillCriteria(); });
  fillCriteria();
  const reason = el('textarea', { id: 'reason', rows: '3', cols: '60', required: true });
  const message = el('p', { role: 'status' });
  const preview = el('div', { id: 'determination-preview', class: 'panel', hidden: true });
  const review = el('button', { type: 'submit', class: 'primary' }, 'Review before recording');
  const form = el('form', { class: 'panel', id: 'determination' },
    el('h3', {}, 'Determination'),
    el('p', { class: 'hint' }, 'A recommended denial becomes final only by a clinician\'s determination, recorded with your name and credentials.'),
    el('div', { class: 'field' }, el('label', { for: 'decision' }, 'Decision'), decision),
    el('div', { class: 'field' }, el('label', { for: 'criterion' }, 'Criterion it rests on'), criterion),
    changes,
    el('div', { class: 'field' }, el('label', { for: 'reason' }, 'Specific reason, in words the member can read'), reason),
    review, message, preview);
  const body = () => {
    const b = { decision: decision.value, criterion: criterion.value, reason: reason.value };
    if (decision.value === 'approve_with_changes') {
      b.changes = {};
      if (units.value) b.changes.units = Number(units.value);
      if (cycles.value) b.changes.cycles = Number(cycles.value);
      if (end.value) b.changes.end = end.value;
    }
    return b;
  };
  form.addEventListener('submit', async event => {
    event.preventDefault();
    setChildren(message);
    if (!form.checkValidity()) { form.reportValidity(); return; }
    const b = body();
    if (b.changes && !Object.keys(b.changes).length) { setChildren(message, el('span', { class: 'error' }, 'Name what the approval changes: units, cycles or the last day.')); units.focus(); return; }
    // The service checks it as it would the determination and composes the notice it would send.
    let notice;
    try {
      notice = (await api('POST', `/v1/requests/${request.id}/determination/preview`, b)).notice;
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
      return;
    }
    const chosen = criterion.selectedOptions[0]?.textContent || b.criterion;
    const words = { approve: 'Approve as asked', approve_with_changes: 'Approve with changes', deny: 'Deny' }[b.decision];
    const changed = b.changes ? Object.entries(b.changes).map(([k, v]) => `${k.replace('_', ' ')} ${v}`).join(', ') : null;
    const confirm = el('button', { type: 'button', id: 'confirm-determination', class: 'primary' }, 'Record the determination');
    const back = el('button', { type: 'button', onclick: () => { preview.hidden = true; decision.focus(); } }, 'Change it');
    const [heading, ...paragraphs] = notice.paragraphs;
    setChildren(preview,
      el('h4', {}, 'What will be recorded'),
      el('p', {}, el('strong', {}, words), changed ? ` (${changed})` : '', `, resting on: ${chosen}.`),
      el('h4', {}, 'The notice that will be sent'),
      el('div', { class: 'notice', id: 'notice-preview' }, el('p', {}, el('strong', {}, heading)), paragraphs.map(text => el('p', {}, text))),
      confirm, ' ', back);
    preview.hidden = false;
    confirm.addEventListener('click', async () => {
      try {
        await api('POST', `/v1/requests/${request.id}/determination`, b);
        await requestView(request.id);
      } catch (error) {
        setChildren(message, el('span', { class: 'error' }, error.message));
      }
    });
    confirm.focus();
  });
  return form;
}

async function compareView(id) {
  const navigation = state.navigation;
  await load();
  const request = await api('GET', '/v1/requests/' + id);
  const answer = await api('POST', '/v1/evaluate', { case: request.case });
  const counts = {};
  answer.compare.forEach(c => { counts[c.outcome] = (counts[c.outcome] || 0) + 1; });
  const common = Object.entries(counts).sort((a, b) => b[1] - a[1])[0][0];
  const header = el('tr', {}, el('th', { scope: 'col' }, 'Payer policy'), el('th', { scope: 'col' }, 'Outcome'), el('th', { scope: 'col' }, 'Deciding criterion'), el('th', { scope: 'col' }, 'Source'));
  const rows = answer.results.map((entry, i) => {
    const cell = answer.compare[i];
    return el('tr', {}, el('th', { scope: 'row' }, entry.title),
      el('td', { class: cell.outcome !== common ? 'separates' : null }, outcomeBadge(cell.outcome)),
      el('td', {}, cell.why), el('td', { class: 'hint' }, cell.source));
  });
  show(navigation,
    el('h2', {}, `Compare payers: request ${id}`),
    el('p', { class: 'hint' }, 'The same request against every policy. Outlined outcomes differ from the most common one; the criterion beside them is what separates them.'),
    el('table', { id: 'compare' }, el('thead', {}, header), el('tbody', {}, rows)),
    el('p', {}, el('a', { href: '#request/' + id }, 'Back to the request')));
}

// ---- Appeals ----

/// A file chosen in the form, as the API takes it (base64).
function fileAsAttachment(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve({ title: file.name, content_type: file.type || 'application/pdf', data: String(reader.result).split(',')[1] || '' });
    reader.onerror = () => reject(new Error('The file could not be read.'));
    reader.readAsDataURL(file);
  });
}

function appealForm(request) {
  const appellant = el('select', { id: 'appellant' }, [['prescriber', 'the prescriber'], ['member', 'the member'], ['clinic', 'the clinic, for the member']].map(([v, l]) => el('option', { value: v }, l)));
  const urgency = el('select', { id: 'appeal-urgency' }, el('option', { value: 'standard' }, 'standard'), el('option', { value: 'expedited' }, 'expedited: waiting could seriously harm the member'));
  const grounds = el('textarea', { id: 'grounds', rows: '4', cols: '60', required: true });
  const files = el('input', { id: 'appeal-files', type: 'file', multiple: true, accept: 'application/pdf,image/png,image/jpeg,text/plain' });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'appeal' },
    el('h3', {}, 'Appeal this determination'),
    el('p', { class: 'hint' }, 'A reviewer who did not make the determination decides the appeal, within the plan\'s appeal clock.'),
    el('div', { class: 'field' }, el('label', { for: 'appellant' }, 'Appealed by'), appellant),
    el('div', { class: 'field' }, el('label', { for: 'appeal-urgency' }, 'Urgency'), urgency),
    el('div', { class: 'field' }, el('label', { for: 'grounds' }, 'Why another decision, and the new information'), grounds),
    el('div', { class: 'field' }, el('label', { for: 'appeal-files' }, 'Attachments (PDF, PNG, JPEG or text)'), files),
    el('button', { type: 'submit', class: 'primary' }, 'File the appeal'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    try {
      const attachments = await Promise.all([...files.files].map(fileAsAttachment));
      const appeal = await api('POST', `/v1/requests/${request.id}/appeals`, { appellant: appellant.value, urgency: urgency.value, grounds: grounds.value, attachments });
      location.hash = '#appeal/' + appeal.id;
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

function appealTimeLeft(appeal) {
  if (appeal.status !== 'pending') return appeal.late ? 'decided late' : 'decided on time';
  const left = timeLeft(appeal.minutes_left);
  return appeal.minutes_left < 0 ? left : left + ' left';
}

function appealsTable(title, appeals, id) {
  const rows = appeals.map(a => el('tr', {},
    el('td', {}, el('a', { href: '#appeal/' + a.id }, a.id)),
    el('td', {}, el('a', { href: '#request/' + a.request_id }, a.request_id)),
    el('td', {}, a.plan), el('td', {}, a.appellant), el('td', {}, a.urgency), el('td', {}, a.status),
    el('td', {}, when(a.due_at, a.plan)),
    el('td', { class: a.late ? 'due-soon' : null }, appealTimeLeft(a))));
  return [el('h3', {}, title), el('table', { id }, el('thead', {}, el('tr', {}, ['Appeal', 'Request', 'Plan', 'By', 'Urgency', 'Status', 'Due', 'Clock'].map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))];
}

async function appealsView() {
  const navigation = state.navigation;
  await load();
  const answer = await api('GET', '/v1/appeals');
  show(navigation, el('h2', {}, 'Open appeals'),
    el('p', { class: 'hint' }, 'Soonest due first. Late ones are marked.'),
    answer.items.length ? appealsTable('Awaiting a decision', answer.items, 'appeals') : el('p', {}, 'No appeal awaits a decision.'));
}

async function download(appeal, attachment) {
  await downloadFile(`/v1/appeals/${appeal.id}/attachments/${attachment.n}`, savedName(attachment.title, attachment.content_type), el('p'));
}

async function appealView(id) {
  const navigation = state.navigation;
  await load();
  const appeal = await api('GET', '/v1/appeals/' + id);
  const parts = [
    el('h2', {}, `Appeal ${appeal.id}`),
    el('p', {}, 'Of request ', el('a', { href: '#request/' + appeal.request_id }, appeal.request_id), `, plan ${appeal.plan}; filed by the ${appeal.appellant}, ${appeal.urgency}; status `, el('strong', { id: 'appeal-status' }, appeal.status)),
    el('p', { id: 'appeal-clock', class: appeal.late ? 'due-soon' : null }, `Received ${when(appeal.received_at, appeal.plan)}; due ${when(appeal.due_at, appeal.plan)} (${appealTimeLeft(appeal)})`),
    appeal.extension ? el('p', {}, `Extended by ${appeal.extension.days} days: ${appeal.extension.reason}`) : null,
    el('div', { class: 'panel' }, el('h3', {}, 'Grounds'), el('p', {}, appeal.grounds)),
    appeal.attachments.length ? el('ul', { id: 'attachments' }, appeal.attachments.map(a => el('li', {},
      el('button', { type: 'button', onclick: () => download(appeal, a).catch(() => {}) }, a.title), ` ${a.content_type}, ${a.bytes} bytes`))) : null,
  ];
  if (appeal.status === 'pending') parts.push(appealDecisionForm(appeal));
  else parts.push(await noticePanel(appeal));
  show(navigation, ...parts);
}

function appealDecisionForm(appeal) {
  const decision = el('select', { id: 'appeal-decision' }, el('option', { value: 'uphold' }, 'uphold the determination'), el('option', { value: 'overturn' }, 'overturn: approve the request'));
  const reason = el('textarea', { id: 'appeal-reason', rows: '3', cols: '60', required: true });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'appeal-decide' },
    el('h3', {}, 'Decide the appeal'),
    el('p', { class: 'hint' }, 'Not the reviewer of the determination appealed. Upholding a medical-necessity denial needs a physician of the same or a similar specialty; anyone entitled may overturn.'),
    el('div', { class: 'field' }, el('label', { for: 'appeal-decision' }, 'Decision'), decision),
    el('div', { class: 'field' }, el('label', { for: 'appeal-reason' }, 'Specific reason'), reason),
    el('button', { type: 'submit', class: 'primary' }, 'Record the decision'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    try {
      await api('POST', `/v1/appeals/${appeal.id}/decision`, { decision: decision.value, reason: reason.value });
      await appealView(appeal.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  });
  return form;
}

async function noticePanel(appeal) {
  const notice = await api('GET', `/v1/appeals/${appeal.id}/notice`);
  return el('div', { class: 'panel', id: 'notice' },
    el('h3', {}, `Notice: the appeal is ${notice.decision}`),
    el('p', {}, notice.reason),
    notice.criterion ? el('p', {}, `Criterion: ${notice.criterion.text || notice.criterion.id} (${notice.criterion.source || ''})`) : null,
    el('p', {}, `Decided by ${notice.reviewer.name} (${notice.reviewer.credentials}) on ${when(notice.decided_at, appeal.plan)}, ${notice.on_time ? 'within' : 'after'} the appeal clock.`),
    notice.authorization ? el('p', {}, `Authorization ${notice.authorization.number}: ${notice.authorization.approved_units} units, ${notice.authorization.start} to ${notice.authorization.end}.`) : null,
    notice.further_rights ? el('p', {}, notice.further_rights) : null);
}

// ---- The UM report ----

/// A horizontal bar of segments [class, share in percent, label] (widths set through the
/// CSSOM, which the console's content security policy allows).
function bar(segments, label) {
  const node = el('div', { class: 'bar', role: 'img', 'aria-label': label });
  for (const [kind, share, title] of segments) {
    const part = el('span', { class: kind, title });
    part.style.width = `${Math.max(0, Math.min(100, share))}%`;
    node.append(part);
  }
  return node;
}

/// A table in a box that scrolls sideways when it is wider than the screen.
function table(id, headers, rows) {
  return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': id.replace(/^report-/, '').replace(/-/g, ' ') }, el('table', { id }, el('thead', {}, el('tr', {}, headers.map(h => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map(cells => el('tr', {}, cells.map(c => el('td', {}, c ?? '–')))))));
}

function reportTables(report) {
  const outcomes = [['touchless', 'approved_touchless', 'touchless'], ['reviewer', 'approved_by_reviewer', 'by a reviewer'], ['changes', 'approved_with_changes', 'with changes'],
    ['appeal', 'approved_on_appeal', 'on appeal'], ['denied', 'denied', 'denied']];
  const charts = report.groups.map(g => {
    const share = n => n * 100 / Math.max(1, g.requests);
    const label = `${g.plan} · ${g.drug} · ${g.urgency}`;
    return el('tr', {}, el('th', { scope: 'row' }, label),
      el('td', {}, g.on_time_percent ?? '–', g.on_time_percent !== null && g.on_time_percent < 90 ? el('span', { class: 'due-soon' }, ' below 90%') : null),
      el('td', {}, bar([['ontime', g.on_time_percent ?? 0, 'on time']], `${label}: ${g.on_time_percent ?? 0}% on time`)),
      el('td', {}, bar(outcomes.map(([kind, field, title]) => [kind, share(g[field]), `${title}: ${g[field]}`]),
        outcomes.map(([, field, title]) => `${title} ${g[field]}`).join(', '))));
  });
  const t = g => g.turnaround_hours;
  return [
    el('h3', {}, 'Decided within the plan\'s clock, and how'),
    el('p', { class: 'hint' }, 'NCQA expects at least 90% on time. Outcomes: ',
      outcomes.flatMap(([kind, , title]) => [el('span', { class: 'swatch ' + kind }), ` ${title} `])),
    el('table', { id: 'report-charts' }, el('thead', {}, el('tr', {}, ['Plan · drug · urgency', 'On time %', '', 'Outcomes'].map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, charts)),
    el('h3', {}, 'Requests'),
    table('report-groups', ['Plan', 'Drug', 'Urgency', 'Requests', 'Touchless', 'By a reviewer', 'With changes', 'On appeal', 'Denied', 'Withdrawn', 'Pending', 'Appealed', 'Overturned', 'Extended', 'Late open', 'Median h', 'p90 h', 'Max h'],
      report.groups.map(g => [g.plan, g.drug, g.urgency, g.requests, g.approved_touchless, g.approved_by_reviewer, g.approved_with_changes, g.approved_on_appeal, g.denied, g.withdrawn, g.pending, g.appealed, g.overturned, g.extended, g.late_open, t(g).median, t(g).p90, t(g).max])),
    el('h3', {}, 'Appeals'),
    table('report-appeals', ['Plan', 'Urgency', 'Filed', 'Upheld', 'Overturned', 'Pending', 'Extended', 'On time %', 'Late open'],
      report.appeals.map(a => [a.plan, a.urgency, a.filed, a.upheld, a.overturned, a.pending, a.extended, a.on_time_percent, a.late_open])),
    el('h3', {}, 'CMS-0057-F prior-authorization metrics'),
    table('report-cms', ['Plan', 'Standard decided', 'Approved %', 'Denied %', 'Approved after appeal %', 'Median h', 'Expedited decided', 'Approved %', 'Denied %', 'Median h', 'Extended and approved %'],
      report.cms_0057_f.map(m => [m.plan, m.standard.decided, m.standard.approved_percent, m.standard.denied_percent, m.standard.approved_after_appeal_percent, m.standard.median_hours,
        m.expedited.decided, m.expedited.approved_percent, m.expedited.denied_percent, m.expedited.median_hours, m.extended_and_approved_percent])),
    el('details', {}, el('summary', {}, 'How each figure is counted'), el('ul', {}, report.definitions.map(d => el('li', {}, d)))),
  ];
}

async function reportView() {
  const navigation = state.navigation;
  const today = new Date().toISOString().slice(0, 10);
  const yearAgo = new Date(Date.now() - 365 * 86_400_000).toISOString().slice(0, 10);
  const from = el('input', { id: 'report-from', type: 'date', value: yearAgo });
  const to = el('input', { id: 'report-to', type: 'date', value: today });
  const output = el('div', { id: 'report' });
  async function refresh() {
    try {
      const query = `/v1/reports/um?from=${from.value}&to=${to.value}`;
      const report = await api('GET', query);
      const save = async (format, name) => {
        const blob = new Blob([await api('GET', `${query}&format=${format}`)], { type: 'text/plain' });
        el('a', { href: URL.createObjectURL(blob), download: name }).click();
      };
      setChildren(output, el('p', {}, `Requests received ${report.from} to ${report.to} (UTC); generated ${new Date(report.generated_at).toLocaleString()}. Download: `,
        el('button', { type: 'button', onclick: () => save('csv', 'um-report.csv') }, 'CSV'), ' ',
        el('button', { type: 'button', onclick: () => save('markdown', 'um-report.md') }, 'Markdown'), ' ',
        el('button', { type: 'button', onclick: () => save('html', 'um-report.html') }, 'HTML')),
        report.groups.length ? reportTables(report) : el('p', {}, 'No request was received in this period.'));
    } catch (error) {
      setChildren(output, el('p', { class: 'error', role: 'alert' }, error.message));
    }
  }
  const form = el('form', { class: 'panel', id: 'report-period' },
    el('div', { class: 'field' }, el('label', { for: 'report-from' }, 'From'), from),
    el('div', { class: 'field' }, el('label', { for: 'report-to' }, 'To (inclusive)'), to),
    el('button', { type: 'submit', class: 'primary' }, 'Show'));
  form.addEventListener('submit', event => { event.preventDefault(); refresh(); });
  show(navigation, el('h2', {}, 'UM report'),
    el('p', { class: 'hint' }, 'Outcomes, turnaround and timeliness per plan, drug and urgency; appeals; the CMS-0057-F metrics. Counted from the records.'),
    form, output);
  await refresh();
}

// ---- Queue and authorizations ----

/// A table that fits a phone: on a narrow screen each row reads as a card, its cells labelled.
function workTable(id, headers, rows) {
  for (const row of rows) [...row.children].forEach((cell, i) => cell.setAttribute('data-label', headers[i]));
  return el('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': id }, el('table', { id, class: 'cards' },
    el('thead', {}, el('tr', {}, headers.map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)));
}

/// A page of a work list and a link to the next, whose cursor the service gave.
function pager(next, onNext) {
  return next ? el('p', {}, el('button', { type: 'button', id: 'next-page', onclick: () => onNext(next) }, 'Next page')) : null;
}

async function queueView(after) {
  const navigation = state.navigation;
  await load();
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const query = new URLSearchParams();
  for (const name of ['urgency', 'assigned']) if (params.get(name)) query.set(name, params.get(name));
  if (after) query.set('after', after);
  const answer = await api('GET', '/v1/queue?' + query);
  const message = el('p', { role: 'status' });
  const take = (item, assign) => async () => {
    try {
      await api('POST', `/v1/requests/${item.id}/assignment`, { assign });
      await queueView(after);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
  };
  const reviewer = state.me.role === 'reviewer';
  const rows = answer.items.map(item => el('tr', {},
    el('td', {}, el('a', { href: '#request/' + item.id }, memberText(item.member))),
    el('td', {}, item.drug || ''), el('td', {}, item.organization), el('td', {}, item.plan),
    el('td', {}, outcomeBadge(item.recommendation)), el('td', {}, item.urgency),
    el('td', {}, when(item.due_at, item.plan)),
    el('td', { class: item.minutes_left < 240 ? 'due-soon' : null }, timeLeft(item.minutes_left)),
    el('td', {}, item.assigned_to ? (item.assigned_to.me ? 'you' : item.assigned_to.name) : 'nobody',
      reviewer ? ' ' : null,
      reviewer ? (item.assigned_to?.me
        ? el('button', { type: 'button', class: 'release', onclick: take(item, false) }, 'Release')
        : el('button', { type: 'button', class: 'take', onclick: take(item, true), 'aria-label': `Assign to me: ${memberText(item.member)}` }, 'Assign to me')) : null)));
  const filter = (id, name, choices) => el('select', { id, onchange: () => {
    const next = new URLSearchParams(params);
    const value = $('#' + id).value;
    if (value) next.set(name, value); else next.delete(name);
    location.hash = '#queue' + (next.toString() ? '?' + next : '');
  } }, choices.map(([v, l]) => el('option', { value: v, selected: v === (params.get(name) || '') || undefined }, l)));
  show(navigation, el('h2', {}, 'Review queue'),
    el('p', { class: 'hint' }, 'Requests awaiting a clinician, most urgent first. Open one by the member\'s name; take it so that no one else works it.'),
    el('div', { class: 'filters' },
      el('div', { class: 'field' }, el('label', { for: 'queue-urgency' }, 'Urgency'), filter('queue-urgency', 'urgency', [['', 'every urgency'], ['expedited', 'expedited only'], ['standard', 'standard only']])),
      el('div', { class: 'field' }, el('label', { for: 'queue-assigned' }, 'Assigned'), filter('queue-assigned', 'assigned', [['', 'anyone or nobody'], ['me', 'to me'], ['nobody', 'to nobody']])),
      el('button', { type: 'button', id: 'queue-csv', onclick: () => downloadFile('/v1/queue?' + new URLSearchParams([...query].filter(([n]) => n !== 'after')) + '&format=csv', 'queue.csv', message) }, 'Export CSV')),
    message,
    rows.length ? workTable('queue', ['Member', 'Drug', 'Clinic', 'Plan', 'Recommendation', 'Urgency', 'Due', 'Time left', 'Assigned'], rows)
      : el('p', {}, 'Nothing awaits review.'),
    pager(answer.next, next => queueView(next)));
}

const STATUS_WORDS = { pending_information: 'information requested', pending_review: 'in review', approved: 'approved', denied: 'denied', not_applicable: 'not applicable', withdrawn: 'withdrawn' };

async function requestsView(after) {
  const navigation = state.navigation;
  await load();
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const payer = state.me.role !== 'submitter';
  const query = new URLSearchParams();
  for (const [name, value] of params) if (value) query.set(name, value);
  if (after) query.set('after', after);
  const answer = await api('GET', '/v1/requests?' + query);
  const built = answer.items.map(item => {
    const cells = [
      el('td', {}, el('a', { href: '#request/' + item.id }, memberText(item.member))),
      el('td', {}, item.drug || ''),
      payer ? el('td', {}, item.organization) : null,
      el('td', {}, STATUS_WORDS[item.status] || item.status),
      el('td', {}, item.urgency),
      el('td', {}, when(item.received_at, item.plan)),
      el('td', { class: item.late ? 'due-soon' : null }, item.authorization ? item.authorization : timeLeft(item.minutes_left)),
    ].filter(Boolean);
    return el('tr', {}, cells);
  });
  const status = el('select', { id: 'filter-status' }, el('option', { value: '' }, 'any status'),
    Object.entries(STATUS_WORDS).map(([v, l]) => el('option', { value: v, selected: params.get('status') === v || undefined }, l)));
  const member = el('input', { id: 'filter-member', value: params.get('member') || '', size: '20' });
  const organization = payer ? el('input', { id: 'filter-organization', value: params.get('organization') || '', size: '16' }) : null;
  const form = el('form', { class: 'filters', id: 'request-filters' },
    el('div', { class: 'field' }, el('label', { for: 'filter-status' }, 'Status'), status),
    el('div', { class: 'field' }, el('label', { for: 'filter-member' }, 'Member (id or name)'), member),
    organization ? el('div', { class: 'field' }, el('label', { for: 'filter-organization' }, 'Clinic'), organization) : null,
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', event => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (status.value) next.set('status', status.value);
    if (member.value.trim()) next.set('member', member.value.trim());
    if (organization?.value.trim()) next.set('organization', organization.value.trim());
    location.hash = '#requests' + (next.toString() ? '?' + next : '');
  });
  const headers = ['Member', 'Drug', ...(payer ? ['Clinic'] : []), 'Status', 'Urgency', 'Received', 'PA number or time left'];
  show(navigation, el('h2', {}, payer ? 'Requests' : 'My requests'),
    el('p', { class: 'hint' }, payer ? 'Every clinic\'s requests, newest first.' : `${state.me.organization}'s requests, newest first. Open one to answer what it asks or to see its decision.`),
    form,
    built.length ? workTable('requests', headers, built) : el('p', {}, 'No requests match.'),
    pager(answer.next, next => requestsView(next)));
}

async function authorizationsView() {
  const navigation = state.navigation;
  const list = await api('GET', '/v1/authorizations');
  const rows = list.map(a => el('tr', {},
    el('td', {}, a.number), el('td', {}, a.drug), el('td', {}, `${a.start} to ${a.end}`),
    el('td', {}, a.used_units), el('td', {}, a.remaining_units),
    el('td', { class: a.renewal_due ? 'due-soon' : null }, a.cancelled_on ? `cancelled on ${a.cancelled_on}` : a.renewal_due ? `renewal due: ${a.days_left} days left` : (a.days_left < 0 ? 'ended' : `${a.days_left} days left`))));
  const message = el('p', { role: 'status' });
  show(navigation, el('h2', {}, 'Authorizations'),
    el('p', {}, el('button', { type: 'button', id: 'authorizations-csv', onclick: () => downloadFile('/v1/authorizations?format=csv', 'authorizations.csv', message) }, 'Export CSV')), message,
    rows.length ? el('table', { id: 'authorizations' }, el('thead', {}, el('tr', {}, ['Number', 'Drug', 'Period', 'Units used', 'Units left', 'Status'].map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
      : el('p', {}, 'No authorizations yet.'));
}

// ---- Routing ----

async function route() {
  const signedIn = Boolean(state.key);
  $('#signin').hidden = signedIn;
  $('#signout').hidden = !signedIn;
  view().hidden = !signedIn;
  $('#whoami').hidden = !signedIn || !state.me;
  if (!signedIn) { $('#api-key').focus(); return; }
  const navigation = ++state.navigation;
  const [name, arg] = location.hash.replace(/^#/, '').split('?')[0].split('/');
  try {
    await load();
    if (name === 'request') await requestView(arg);
    else if (name === 'letter') await letterView(arg);
    else if (name === 'approval') await letterView(arg, 'approval-notice');
    else if (name === 'requests') await requestsView();
    else if (name === 'compare') await compareView(arg);
    else if (name === 'queue') await queueView();
    else if (name === 'authorizations') await authorizationsView();
    else if (name === 'appeals') await appealsView();
    else if (name === 'appeal') await appealView(arg);
    else if (name === 'report') await reportView();
    else if (name === 'intake') await intake();
    // Each role lands on its own work list, unless the user went elsewhere meanwhile (a
    // link followed while signing in was still loading): that navigation is the newer one.
    else if (navigation === state.navigation) location.hash = state.me.role === 'submitter' ? '#requests' : '#queue';
    $('#main').focus();
  } catch (error) {
    show(navigation, el('p', { class: 'error', role: 'alert' }, error.message));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#signin-form').addEventListener('submit', event => {
    event.preventDefault();
    state.key = $('#api-key').value.trim();
    $('#signin-error').textContent = '';
    // A link to a record is followed after signing in; any other view gives way to the
    // signed-in role's own work list.
    if (!/^#(request|appeal|letter|approval)\//.test(location.hash)) history.replaceState(null, '', location.pathname);
    sessionStorage.setItem('priorauth-key', state.key);
    route();
  });
  $('#signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
});
