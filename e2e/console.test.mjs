// The reviewer console in Chromium: intake through the form, the decision view with a
// source passage highlighted, the payer comparison, a queued request worked through a
// determination, the authorizations list, the denial appealed by the clinic with a file and
// overturned by a second reviewer, the UM report; no request may leave the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/// axe-core's findings of a page that are serious or critical (WCAG 2.1 A and AA rules).
async function accessibilityFindings(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join('; ')})`);
}

const base = process.env.PRIORAUTH_URL;
const shots = process.env.SCREENSHOTS_DIR;

// The E01 example: an adult with relapsed Ph-negative B-ALL, single agent, its facts dated
// 12 days before today (the service refuses a clinical date over 90 days before receipt).
const factsDate = new Date(Date.now() - 12 * 86_400_000).toISOString().slice(0, 10);
const answers = {
  'request.kind': 'initial', 'request.date': factsDate, 'request.regimen': 'single_agent', 'request.phase': '',
  'request.dose': ['28', 'mcg/day'], 'request.dose_days': '28', 'request.cycle_length_days': '42', 'request.cycles': '2',
  'request.first_cycle': '1', 'request.hcpcs': 'J9039', 'request.units': '980', 'request.units_period_days': '42', 'request.drug_source': 'plan',
  'patient.birth_date': '1966-02-11', 'patient.weight_kg': '71', 'patient.height_cm': '168', 'patient.new_to_plan_on_treatment': 'false',
  'diagnosis.condition': 'acute_lymphoblastic_leukemia', 'diagnosis.lineage': 'b_cell_precursor', 'diagnosis.cd19_positive': 'true',
  'diagnosis.ph_status': 'negative', 'diagnosis.disease_status': 'relapsed', 'diagnosis.complete_response_to_induction': 'false',
  'history.prior_systemic_therapies': '1', 'prescriber.specialty': 'medical_oncology',
};

async function fill(page, key, value) {
  const id = '#q-' + key.replaceAll('.', '-');
  const field = page.locator(id);
  if (await field.count() === 0) return false;
  if (Array.isArray(value)) {
    await field.fill(value[0]);
    await page.selectOption(id + '-unit', value[1]);
  } else if (await field.evaluate(node => node.tagName) === 'SELECT') {
    await page.selectOption(id, value);
  } else {
    await field.fill(value);
  }
  return true;
}

test('the console, end to end', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await context.newPage();
    const offsite = [];
    page.on('request', request => {
      const host = new URL(request.url()).hostname;
      if (host !== '127.0.0.1' && host !== 'localhost') offsite.push(request.url());
    });
    const errors = [];
    page.on('pageerror', error => errors.push(error.message));

    // A wrong key says so.
    await page.goto(base + '/console/');
    await page.locator('#api-key').fill('pak_not_a_key');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#signin-error')?.textContent.includes('not accepted'));

    // Sign in with the keyboard: the clinic lands on its own requests, its name in the header.
    await page.locator('#api-key').fill(process.env.SUBMITTER_KEY);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#request-filters');
    assert.match(await page.locator('#whoami').innerText(), /submitter · clinic-a/);
    assert.equal(await page.locator('nav a[href="#queue"]').isVisible(), false, 'a clinic has no review queue');
    await page.goto(base + '/console/#intake');

    // Facts a policy declares in data (facts.toml) are asked like the case format's:
    // Northwind's QTc, a number with its unit in the question, decides the preview.
    await page.waitForSelector('#plan option[value="northwind-commercial"]', { state: 'attached' });
    await page.selectOption('#plan', 'northwind-commercial');
    await page.waitForSelector('#intake-form .field[data-key="labs.qtc_ms"]');
    assert.match(await page.locator('#intake-form .field[data-key="labs.qtc_ms"] label').innerText(), /QTc interval .*\(ms\)/);
    await fill(page, 'labs.qtc_ms', '512');
    // The preview reads it: the criterion is not met at 512 ms.
    await page.waitForFunction(() => [...document.querySelectorAll('#preview li')]
      .some(li => li.textContent.includes('QTc below 500 ms') && li.querySelector('.mark.not_met')), null, { timeout: 10000 });

    // Intake: only the questions MassHealth's policy needs; the outcome follows the answers.
    await page.selectOption('#plan', 'masshealth');
    await page.waitForSelector('#intake-form .field');
    const asked = await page.locator('#intake-form .field').count();
    assert.ok(asked > 5 && asked < 40, `${asked} questions`);
    await page.waitForSelector('#preview .outcome');
    // The preview of the plan shown before may still be on screen: wait for this plan's marks.
    await page.waitForSelector('#intake-form .field.needed', { timeout: 10000 });
    assert.ok(await page.locator('#intake-form .field.needed').count() > 0, 'unanswered questions that matter are marked');
    for (const [key, value] of Object.entries(answers)) await fill(page, key, value);
    await page.waitForSelector('#preview .outcome.approve');
    assert.equal(await page.locator('#intake-form .field.needed').count(), 0, 'nothing left that could change the outcome');
    assert.match(await page.locator('#body-size').innerText(), /Body surface area 1\.82 m²; label dose up to 28 mcg\/day/);
    if (shots) await page.screenshot({ path: path.join(shots, 'intake.png'), fullPage: true });

    // At 200% zoom the form still fits the width: no sideways scrolling.
    const zoomed = await browser.newContext({ viewport: { width: 683, height: 450 }, deviceScaleFactor: 2 });
    const small = await zoomed.newPage();
    await small.goto(base + '/console/');
    await small.locator('#api-key').fill(process.env.SUBMITTER_KEY);
    await small.keyboard.press('Enter');
    await small.waitForSelector('#request-filters');
    await small.goto(base + '/console/#intake');
    await small.waitForSelector('#intake-form .field');
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `horizontal overflow of ${overflow}px at 200% zoom`);
    await zoomed.close();

    // Nothing is sent until the form says who the request is for.
    await page.click('#intake-form button[type=submit]');
    await page.waitForTimeout(300);
    assert.ok(page.url().endsWith('#intake'), 'an unnamed member keeps the form open');
    await page.locator('#member-id').fill('MH-100234');
    await page.locator('#member-name').fill('Ana Diaz');
    await page.locator('#prescriber-name').fill('Dr. Alvarez');
    await page.locator('#prescriber-npi').fill('1234567893');
    await page.selectOption('#urgency', 'expedited');

    // Submit, then the decision view with who it is for, its PA number, criteria and their source.
    await page.click('#intake-form button[type=submit]');
    await page.waitForSelector('#status');
    assert.equal(await page.locator('#status').innerText(), 'approved');
    assert.match(await page.locator('#identity').innerText(), /Ana Diaz[\s\S]*MH-100234[\s\S]*Dr\. Alvarez[\s\S]*1234567893/);
    assert.match(await page.locator('#pa-number').innerText(), /Authorization PA-/);
    await page.click('button.criterion >> nth=0');
    await page.waitForSelector('.source mark');
    assert.ok((await page.locator('.source mark').innerText()).length > 5, 'the passage is highlighted');
    if (shots) await page.screenshot({ path: path.join(shots, 'decision.png'), fullPage: true });

    // Compare payers.
    await page.click('text=Compare payers');
    await page.waitForSelector('#compare tbody tr');
    assert.equal(await page.locator('#compare tbody tr').count(), 6, 'a row per policy in effect');
    assert.ok(await page.locator('#compare td.separates').count() >= 1, 'MassHealth alone governs… or differs');
    if (shots) await page.screenshot({ path: path.join(shots, 'compare.png'), fullPage: true });

    // An incomplete request, answered in the page: the policy decides it on the answer.
    await page.goto(base + '/console/#request/' + process.env.INCOMPLETE_ID);
    await page.waitForSelector('#completion');
    await page.locator('#q-diagnosis-mrd_percent').fill('0.8');
    await page.click('#completion button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#status')?.innerText === 'approved');
    assert.match(await page.locator('#pa-number').innerText(), /Authorization PA-/);

    // Its approval notice, in words a member can read.
    await page.click('#approval-link');
    await page.waitForSelector('#letter');
    assert.match(await page.locator('#letter').innerText(), /Notice of approval[\s\S]*Authorization PA-/);

    // The clinic sends a clinical note with the request in review; a file that is not what
    // it says is refused.
    await page.goto(base + '/console/#request/' + process.env.REVIEW_ID);
    await page.waitForSelector('#file-form');
    await page.setInputFiles('#file', { name: 'note.pdf', mimeType: 'application/pdf', buffer: Buffer.from('<html>not a pdf</html>') });
    await page.click('#file-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#files-panel .error')?.textContent.includes('not application/pdf'));
    await page.setInputFiles('#file', { name: 'note.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%%EOF\n') });
    await page.locator('#file-title').fill('Clinic note 2026-11-30');
    await page.click('#file-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#files')?.textContent.includes('Clinic note 2026-11-30'));
    assert.equal(await page.locator('#comments').count(), 0, 'a clinic does not read reviewers\' comments');

    // The clinic's own list shows it, with its PA number.
    await page.goto(base + '/console/#requests');
    await page.waitForSelector('#requests tbody tr');
    assert.match(await page.locator('#requests tbody tr').first().innerText(), /Ana Diaz[\s\S]*PA-/);
    if (shots) await page.screenshot({ path: path.join(shots, 'my-requests.png'), fullPage: true });

    // A reviewer lands on the queue and works it through a determination: clicks counted from
    // the queue to the recorded decision.
    await page.click('#signout');
    await page.locator('#api-key').fill(process.env.REVIEWER_KEY);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#queue tbody tr');
    assert.match(await page.locator('#whoami').innerText(), /Dr\. Jane Roe · reviewer/);
    const queued = page.locator(`#queue tbody tr:has(a[href="#request/${process.env.REVIEW_ID}"])`);
    assert.match(await queued.innerText(), /Bo Chen[\s\S]*blinatumomab[\s\S]*clinic-a/);
    assert.doesNotMatch(await page.locator('#queue').innerText(), /-\d+ h/, 'no negative clocks');
    // The reviewer takes it, so that no colleague works it too.
    await queued.locator('button.take').click();
    await page.waitForFunction(id => [...document.querySelectorAll('#queue tbody tr')]
      .some(tr => tr.querySelector(`a[href="#request/${id}"]`) && tr.querySelector('button.release')), process.env.REVIEW_ID);
    if (shots) await page.screenshot({ path: path.join(shots, 'queue.png'), fullPage: true });
    let clicks = 0;
    await page.click(`a[href="#request/${process.env.REVIEW_ID}"]`); clicks++;
    await page.waitForSelector('#determination');
    // Who, what and why on one screen; nothing chosen for the reviewer.
    assert.match(await page.locator('#identity').innerText(), /Bo Chen/);
    assert.match(await page.locator('#why').innerText(), /not met/);
    assert.equal(await page.locator('#decision').inputValue(), '');
    // The clinic's note is there to open, and the reviewer leaves a comment on a criterion.
    assert.match(await page.locator('#files').innerText(), /Clinic note 2026-11-30[\s\S]*Clinic A/);
    const [file] = await Promise.all([page.waitForEvent('download'), page.click('#files button.link')]);
    assert.equal(file.suggestedFilename(), 'Clinic note 2026-11-30.pdf', 'saved under its title with the extension of its checked type');
    await page.selectOption('#comment-criterion', 'one-of-the-following');
    await page.locator('#comment-text').fill('Induction, not relapse: asked the office for the bone marrow report.');
    await page.click('#comment-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#comments li')?.textContent.includes('asked the office'));
    await page.selectOption('#decision', 'deny'); clicks++;
    // A denial is offered only the criteria that fail the request.
    const offered = await page.locator('#criterion option').allTextContents();
    assert.ok(!offered.some(t => t.startsWith('new to the plan')), 'a met criterion is not offered to deny');
    await page.selectOption('#criterion', 'one-of-the-following'); clicks++;
    await page.locator('#reason').focus();
    await page.keyboard.type('Newly diagnosed ALL in induction is not one of the covered settings (criterion 5).');
    await page.click('#determination button[type=submit]'); clicks++;
    await page.waitForSelector('#determination-preview:not([hidden])');
    assert.match(await page.locator('#determination-preview').innerText(), /Deny[\s\S]*Dr\. Jane Roe, MD, Hematology/);
    // The preview is the notice the member will be sent, in its words.
    assert.match(await page.locator('#notice-preview').innerText(), /Notice of denial[\s\S]*Bo Chen[\s\S]*not one of the covered settings[\s\S]*right to appeal/);
    if (shots) await page.screenshot({ path: path.join(shots, 'determination-preview.png'), fullPage: true });
    await page.click('#confirm-determination'); clicks++;
    await page.waitForFunction(() => document.querySelector('#status')?.innerText === 'denied');
    assert.ok(clicks <= 5, `${clicks} clicks from the queue to a recorded denial`);
    console.log(`clicks from the queue to a recorded denial: ${clicks}`);

    // Another request: the reviewer asks the clinic in words.
    await page.goto(base + '/console/#request/' + process.env.ASK_ID);
    await page.waitForSelector('#ask');
    await page.locator('#ask-questions').fill('When did the member start blinatumomab, and under which plan?');
    await page.click('#ask button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#status')?.innerText === 'pending information');
    await page.goto(base + '/console/#request/' + process.env.REVIEW_ID);
    await page.waitForSelector('#letter-link');

    // The notice, as a page a person could print and send.
    await page.click('#letter-link');
    await page.waitForSelector('#letter');
    const letter = await page.locator('#letter').innerText();
    for (const part of [/Bo Chen/, /M-2002/, /Dr\. Lee/, /received/i, /Dr\. Jane Roe, MD, Hematology/, /appeal/i, /Newly diagnosed ALL/]) assert.match(letter, part);
    if (shots) await page.screenshot({ path: path.join(shots, 'denial-notice.png'), fullPage: true });
    // And as PDF, with the same words.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#letter-pdf')]);
    const pdf = fs.readFileSync(await download.path()).toString('latin1');
    assert.ok(pdf.startsWith('%PDF-'), 'a PDF');
    // Each line is `x y Td`, its string (literal, or hex where it holds bytes outside ASCII), ` Tj`.
    const shown = pdf.split(' Td\n').slice(1).map(chunk => chunk.slice(0, chunk.indexOf(' Tj'))).map(s => s.startsWith('<')
      ? Buffer.from(s.slice(1, -1), 'hex').toString('latin1') : s.slice(1, -1).replace(/\\(.)/g, '$1')).join(' ');
    for (const part of ['Bo Chen', 'M-2002', 'Jane Roe', 'appeal']) assert.ok(shown.includes(part), `${part} in the PDF: ${shown}`);

    // The queue at a phone's width: no sideways scrolling.
    const phone = await browser.newContext({ viewport: { width: 375, height: 740 } });
    const handset = await phone.newPage();
    await handset.goto(base + '/console/');
    await handset.locator('#api-key').fill(process.env.REVIEWER_KEY);
    await handset.keyboard.press('Enter');
    await handset.waitForSelector('#requests, #queue, #queue-urgency');
    await handset.goto(base + '/console/#requests');
    await handset.waitForSelector('#requests tbody tr');
    const sideways = await handset.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(sideways <= 1, `horizontal overflow of ${sideways}px at 375 px`);
    if (shots) await handset.screenshot({ path: path.join(shots, 'phone-requests.png'), fullPage: true });
    await phone.close();

    // Authorizations: the approval above, with units used and left.
    await page.goto(base + '/console/#authorizations');
    await page.waitForSelector('#authorizations tbody tr');
    assert.match((await page.locator('#authorizations tbody tr').allInnerTexts()).join('\n'), /1960/);
    if (shots) await page.screenshot({ path: path.join(shots, 'authorizations.png'), fullPage: true });

    // The clinic appeals the denial, with a letter attached.
    await page.click('#signout');
    await page.locator('#api-key').fill(process.env.SUBMITTER_KEY);
    await page.keyboard.press('Enter');
    // It sees the reviewer's question among its requests, and answers it in the page.
    await page.goto(base + '/console/#requests?status=pending_information');
    await page.waitForSelector(`#requests a[href="#request/${process.env.ASK_ID}"]`);
    await page.click(`#requests a[href="#request/${process.env.ASK_ID}"]`);
    await page.waitForSelector('#reply-0');
    assert.match(await page.locator('#completion').innerText(), /When did the member start blinatumomab/);
    await page.locator('#reply-0').fill('On 2026-10-02, under her previous plan; the letter is in the chart.');
    await page.click('#completion button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#status')?.innerText === 'pending review');

    await page.goto(base + '/console/#request/' + process.env.REVIEW_ID);
    await page.waitForSelector('#appeal');
    await page.selectOption('#appellant', 'prescriber');
    await page.locator('#grounds').fill('The member began blinatumomab at the previous plan; the attached letter shows the dates.');
    await page.setInputFiles('#appeal-files', { name: 'letter.txt', mimeType: 'text/plain', buffer: Buffer.from('Letter of medical necessity') });
    await page.click('#appeal button[type=submit]');
    await page.waitForSelector('#appeal-status');
    assert.equal(await page.locator('#appeal-status').innerText(), 'pending');
    assert.match(await page.locator('#attachments').innerText(), /letter\.txt/);
    // Its times in MassHealth's time zone (stored in UTC).
    assert.match(await page.locator('#appeal-clock').innerText(), /E[SD]T/);

    // A second reviewer, who did not deny it, finds it among the open appeals and overturns it.
    await page.click('#signout');
    await page.locator('#api-key').fill(process.env.SECOND_REVIEWER_KEY);
    await page.keyboard.press('Enter');
    await page.goto(base + '/console/#appeals');
    await page.waitForSelector('#appeals tbody tr');
    if (shots) await page.screenshot({ path: path.join(shots, 'appeals.png'), fullPage: true });
    // First, a peer-to-peer discussion with the prescriber, recorded on the request.
    await page.goto(base + '/console/#request/' + process.env.REVIEW_ID);
    await page.waitForSelector('#peer-to-peer');
    await page.locator('#p2p-prescriber').fill('Dr. Alvarez (NPI 1234567893)');
    await page.selectOption('#p2p-outcome', 'agreed_to_approve');
    await page.locator('#p2p-notes').fill('Therapy began at the previous plan.');
    await page.click('#peer-to-peer button[type=submit]');
    await page.waitForSelector('#discussions li');
    assert.match(await page.locator('#discussions').innerText(), /Dr\. Alvarez .* agreed to approve/);
    await page.goto(base + '/console/#appeals');
    await page.waitForSelector('#appeals tbody tr');
    await page.click('#appeals tbody tr a[href^="#appeal/"]');
    await page.waitForSelector('#appeal-decide');
    await page.selectOption('#appeal-decision', 'overturn');
    await page.locator('#appeal-reason').fill('The letter shows therapy began before enrollment; the policy covers continuing it.');
    await page.click('#appeal-decide button[type=submit]');
    await page.waitForSelector('#notice');
    assert.equal(await page.locator('#appeal-status').innerText(), 'overturned');
    assert.match(await page.locator('#notice').innerText(), /Authorization PA-/);
    if (shots) await page.screenshot({ path: path.join(shots, 'appeal.png'), fullPage: true });

    // The UM report counts what happened, with its charts.
    await page.goto(base + '/console/#report');
    await page.waitForSelector('#report-groups tbody tr');
    assert.match(await page.locator('#report-groups').innerText(), /masshealth/);
    assert.ok(await page.locator('#report-charts .bar span').count() > 0, 'the charts are drawn');
    assert.match(await page.locator('#report-appeals').innerText(), /masshealth/);
    if (shots) await page.screenshot({ path: path.join(shots, 'report.png'), fullPage: true });

    // An automated accessibility check of each working screen: no serious findings. axe is
    // added to the page, which the console's own policy forbids, so this context bypasses it.
    const audit = await browser.newContext({ viewport: { width: 1366, height: 900 }, bypassCSP: true });
    const audited = await audit.newPage();
    const findings = {};
    for (const [key, screens] of [[process.env.SUBMITTER_KEY, ['#requests', '#intake', '#request/' + process.env.REVIEW_ID]], [process.env.REVIEWER_KEY, ['#queue', '#requests', '#letter/' + process.env.REVIEW_ID, '#appeals', '#report']]]) {
      await audited.goto(base + '/console/');
      await audited.evaluate(() => sessionStorage.clear());
      await audited.goto(base + '/console/');
      await audited.locator('#api-key').fill(key);
      await audited.keyboard.press('Enter');
      await audited.waitForSelector('#whoami:not([hidden])');
      for (const screen of screens) {
        await audited.goto(base + '/console/' + screen);
        await audited.waitForFunction(() => document.querySelector('#view')?.children.length > 0);
        await audited.waitForTimeout(300);
        const found = await accessibilityFindings(audited);
        if (found.length) findings[screen] = found;
      }
    }
    await audit.close();
    assert.deepEqual(findings, {}, 'no serious accessibility findings');

    assert.deepEqual(offsite, [], 'no request leaves the machine');
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await browser.close();
  }
});
