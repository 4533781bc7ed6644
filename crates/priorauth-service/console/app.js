// The priorauth console: intake, decision view, payer comparison, review queue and
// authorizations, over the service's own API. No framework, no other origin.
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

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + state.key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  if (response.status === 401) { signOut(); throw new Error('Your key was not accepted.'); }
  if (!response.ok) throw new Error(data?.detail || ('HTTP ' + response.status));
  return data;
}

function outcomeBadge(outcome) {
  return el('span', { class: 'outcome ' + outcome }, outcome.replace('_', ' '));
}

function signOut() {
  sessionStorage.removeItem('priorauth-key');
  state.key = null;
  route();
}

async function load() {
  if (!state.questions) {
    [state.questions, state.plans, state.policies] = await Promise.all([api('GET', '/v1/questions'), api('GET', '/v1/plans'), api('GET', '/v1/policies')]);
  }
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
    try {
      const answer = await api('POST', '/v1/requests', { plan: chosen.id, case: kase });
      location.hash = '#request/' + answer.id;
    } catch (error) {
      preview.prepend(el('p', { class: 'error', role: 'alert' }, error.message));
    }
  });
  plan.addEventListener('change', setDrugs);
  drug.addEventListener('change', build);
  show(navigation,
    el('h2', {}, 'New request'),
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
  const parts = [
    el('h2', {}, `Request ${request.id}`),
    el('p', {}, `Plan ${request.plan}, policy ${request.policy} (version ${request.policy_version}); status `, el('strong', { id: 'status' }, request.status.replace('_', ' '))),
    el('p', {}, 'Recommendation: ', outcomeBadge(d.outcome), d.authorization ? ` authorized ${d.authorization.start} to ${d.authorization.end}` : ''),
    d.quantity ? el('p', {}, `Quantity: ${d.quantity.hcpcs} × ${d.quantity.units} units per ${d.quantity.period_days} days (${d.quantity.vials} vials), ${d.quantity.cycles} cycles`) : null,
    d.missing.length ? el('p', {}, 'Missing: ' + d.missing.join(', ')) : null,
    request.due_at ? el('p', {}, `Due by ${new Date(request.due_at).toLocaleString()}`) : null,
    request.determination ? el('p', { class: 'panel' }, `Determination: ${request.determination.decision} by ${request.determination.reviewer.name} (${request.determination.reviewer.credentials}): ${request.determination.reason}`) : null,
    el('p', {}, el('a', { href: '#compare/' + id }, 'Compare payers')),
    decisionTree(mine, request.policy),
  ];
  if (request.status === 'pending_review') parts.push(determinationForm(request));
  show(navigation, ...parts);
}

function determinationForm(request) {
  const policy = state.policies.find(p => p.id === request.policy);
  const decision = el('select', { id: 'decision' }, ['deny', 'approve', 'approve_with_changes'].map(v => el('option', { value: v }, v.replace(/_/g, ' '))));
  const criterion = el('select', { id: 'criterion' }, policy.criteria.map(c => el('option', { value: c.id }, c.text)));
  const reason = el('textarea', { id: 'reason', rows: '3', cols: '60', required: true });
  const message = el('p', { role: 'status' });
  const form = el('form', { class: 'panel', id: 'determination' },
    el('h3', {}, 'Determination'),
    el('p', { class: 'hint' }, 'A recommended denial becomes final only by a clinician\'s determination, recorded with your name and credentials.'),
    el('div', { class: 'field' }, el('label', { for: 'decision' }, 'Decision'), decision),
    el('div', { class: 'field' }, el('label', { for: 'criterion' }, 'Criterion it rests on'), criterion),
    el('div', { class: 'field' }, el('label', { for: 'reason' }, 'Specific reason'), reason),
    el('button', { type: 'submit', class: 'primary' }, 'Record the determination'), message);
  form.addEventListener('submit', async event => {
    event.preventDefault();
    try {
      await api('POST', `/v1/requests/${request.id}/determination`, { decision: decision.value, criterion: criterion.value, reason: reason.value });
      await requestView(request.id);
    } catch (error) {
      setChildren(message, el('span', { class: 'error' }, error.message));
    }
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

// ---- Queue and authorizations ----

async function queueView() {
  const navigation = state.navigation;
  const answer = await api('GET', '/v1/queue');
  const rows = answer.items.map(item => el('tr', {},
    el('td', {}, el('a', { href: '#request/' + item.id }, item.id)),
    el('td', {}, item.plan), el('td', {}, outcomeBadge(item.recommendation)), el('td', {}, item.urgency),
    el('td', {}, new Date(item.due_at).toLocaleString()),
    el('td', { class: item.minutes_left < 240 ? 'due-soon' : null }, `${Math.floor(item.minutes_left / 60)} h ${Math.abs(item.minutes_left % 60)} min`)));
  show(navigation, el('h2', {}, 'Review queue'),
    el('p', { class: 'hint' }, 'Requests awaiting a clinician, most urgent first.'),
    rows.length ? el('table', { id: 'queue' }, el('thead', {}, el('tr', {}, ['Request', 'Plan', 'Recommendation', 'Urgency', 'Due', 'Time left'].map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
      : el('p', {}, 'Nothing awaits review.'));
}

async function authorizationsView() {
  const navigation = state.navigation;
  const list = await api('GET', '/v1/authorizations');
  const rows = list.map(a => el('tr', {},
    el('td', {}, a.number), el('td', {}, a.drug), el('td', {}, `${a.start} to ${a.end}`),
    el('td', {}, a.used_units), el('td', {}, a.remaining_units),
    el('td', { class: a.renewal_due ? 'due-soon' : null }, a.renewal_due ? `renewal due: ${a.days_left} days left` : (a.days_left < 0 ? 'ended' : `${a.days_left} days left`))));
  show(navigation, el('h2', {}, 'Authorizations'),
    rows.length ? el('table', { id: 'authorizations' }, el('thead', {}, el('tr', {}, ['Number', 'Drug', 'Period', 'Units used', 'Units left', 'Status'].map(h => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
      : el('p', {}, 'No authorizations yet.'));
}

// ---- Routing ----

async function route() {
  const signedIn = Boolean(state.key);
  $('#signin').hidden = signedIn;
  $('#signout').hidden = !signedIn;
  view().hidden = !signedIn;
  if (!signedIn) { $('#api-key').focus(); return; }
  const navigation = ++state.navigation;
  const [name, arg] = location.hash.replace(/^#/, '').split('/');
  try {
    if (name === 'request') await requestView(arg);
    else if (name === 'compare') await compareView(arg);
    else if (name === 'queue') await queueView();
    else if (name === 'authorizations') await authorizationsView();
    else await intake();
    $('#main').focus();
  } catch (error) {
    show(navigation, el('p', { class: 'error', role: 'alert' }, error.message));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#signin-form').addEventListener('submit', event => {
    event.preventDefault();
    state.key = $('#api-key').value.trim();
    sessionStorage.setItem('priorauth-key', state.key);
    route();
  });
  $('#signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
});
