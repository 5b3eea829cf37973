// Browser test of the backup page: the button, live progress without a reload, the new row in
// the history, the restore confirmation, and nothing for a non-administrator.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… VIEWER=… TAGS=n SCREENSHOTS=dir node backups.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ viewport: { width: 1300, height: 900 } });
try {
  await login(page);
  await page.getByRole('link', { name: 'Backups' }).click();
  check(await page.getByRole('heading', { name: 'Backups', level: 1 }).isVisible(), 'the backup page opens');
  check((await page.locator('dl.facts').textContent()).includes('s3:'), 'the target is shown');
  check((await page.locator('#backup-history').textContent()).includes('No backups yet'), 'the history starts empty');

  let navigations = 0;
  await page.getByRole('button', { name: 'Back up now' }).click();
  await page.waitForURL(base + '/ui/backups');
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations += 1; });
  const bar = page.locator('#backup-progress');
  check(await bar.isVisible(), 'a progress bar appears');
  check(await page.getByRole('button', { name: 'Back up now' }).isDisabled(), 'the button is disabled while the backup runs');

  // Watch the bar and the text move until the job ends.
  const seen = new Set();
  const texts = new Set();
  const deadline = Date.now() + 120_000;
  let finished = '';
  while (Date.now() < deadline) {
    const value = await bar.evaluate((b) => (b.hasAttribute('value') ? `${b.value}/${b.max}` : 'indeterminate'));
    seen.add(value);
    const text = await page.locator('#backup-progress-text').textContent();
    texts.add(text);
    if (/^backup (succeeded|failed)/.test(text)) { finished = text; break; }
    await page.waitForTimeout(100);
  }
  check(finished.startsWith('backup succeeded'), `the job ends and says so (${finished})`);
  const partial = [...seen].filter((v) => /^[0-9.]+\/[0-9.]+$/.test(v)).map((v) => v.split('/').map(Number))
    .filter(([v, max]) => v > 0 && v < max);
  check(partial.length >= 1, `the bar moved through intermediate values (${[...seen].join(' ')})`);
  check([...texts].some((t) => /copy: .* of .*, \d+ of \d+ objects/.test(t)), `bytes and objects done of total are shown (${[...texts].slice(0, 4).join(' | ')})`);
  check([...texts].some((t) => /\/s/.test(t) && /left/.test(t)), 'the rate and the time left are shown');
  check(navigations === 0, 'without a reload');
  const rows = page.locator('#backup-history tbody tr');
  check(await rows.count() === 1, 'the new snapshot has a row in the history');
  const row = rows.first();
  const rowText = (await row.textContent()).replace(/\s+/g, ' ');
  check(rowText.includes('succeeded') && rowText.includes('MiB'), `with its status and size (${rowText})`);
  check((await row.textContent()).includes(process.env.UI_USER), 'and who started it');
  check(await page.getByRole('button', { name: 'Back up now' }).isEnabled(), 'the button is enabled again');
  await page.screenshot({ path: join(shots, 'backups.png'), fullPage: true });

  // Restore: the confirmation says what will change before anything does.
  await row.getByRole('link', { name: 'Restore…' }).click();
  check(await page.getByText('Nothing is deleted.').isVisible(), 'the restore page says nothing is deleted');
  const plan = await page.locator('ul.plan').textContent();
  check(plan.includes(`Tags added: 0; unchanged: ${process.env.TAGS}`) && plan.includes('Content to copy: 0 objects'), `it lists what will change (${plan.replace(/\s+/g, ' ')})`);
  await page.screenshot({ path: join(shots, 'backup-restore.png'), fullPage: true });
  await page.getByRole('button', { name: 'Restore' }).click();
  await page.waitForURL(base + '/ui/backups');
  const restored = page.locator('#backup-history tbody tr', { hasText: 'Restore of' });
  await restored.first().waitFor({ timeout: 60_000 });
  // The history row of the restore, once its job has ended (read fresh, not from the poll).
  let restoreRow = '';
  for (let i = 0; i < 120 && !/succeeded|failed/.test(restoreRow); i++) {
    await page.waitForTimeout(500);
    await page.reload();
    restoreRow = await page.locator('#backup-history tbody tr', { hasText: 'Restore of' }).first().textContent();
  }
  check(restoreRow.includes('succeeded'), `the restore ran and is in the history (${restoreRow.replace(/\s+/g, ' ')})`);

  // A non-administrator: no link, no page, no job JSON, no form.
  const csrf = await page.locator('form[action="/ui/logout"] input[name="csrf"]').inputValue();
  await page.getByRole('button', { name: 'Log out' }).click();
  await login(page, process.env.VIEWER);
  check(await page.getByRole('link', { name: 'Backups' }).count() === 0, 'a non-administrator has no Backups link');
  check((await page.goto(base + '/ui/backups')).status() === 403, 'nor the page');
  check((await page.request.get(base + '/ui/backups?partial=history')).status() === 403, 'nor the history');
  await page.goto(base + '/');
  const viewerCsrf = await page.locator('form[action="/ui/logout"] input[name="csrf"]').inputValue();
  check((await page.request.post(base + '/ui/backups/start', { form: { csrf: viewerCsrf } })).status() === 403, 'nor the button');
  check((await page.request.post(base + '/ui/backups/start', { form: { csrf } })).status() === 403, 'nor the administrator\'s old form token');
  const api = await page.request.get(base + '/api/v1/backups', {
    headers: { authorization: 'Basic ' + Buffer.from(`${process.env.VIEWER}:${process.env.UI_PASSWORD}`).toString('base64') },
  });
  check(api.status() === 403, 'nor the REST API');
} finally {
  await browser.close();
}
