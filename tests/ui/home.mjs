// Browser test of the home page: anonymous view, login, search as you type, escaping of
// hostile chart metadata, logout, and CSRF-less form posts refused.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir node home.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ viewport: { width: 1200, height: 800 } });
try {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await page.goto(base + '/');
  check(await page.getByText('Nothing to show').isVisible(), 'anonymous callers see no private repository');
  await page.screenshot({ path: join(shots, 'home-anonymous.png'), fullPage: true });

  await page.getByRole('navigation').getByRole('link', { name: 'Log in' }).click();
  await page.getByLabel('Username').fill(process.env.UI_USER);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  check(await page.getByRole('alert').textContent() === 'Wrong username or password.', 'a wrong password is refused');
  await page.getByLabel('Username').fill(process.env.UI_USER);
  await page.getByLabel('Password').fill(process.env.UI_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(base + '/');
  check((await page.locator('.who').textContent()) === process.env.UI_USER, 'logged in');
  const cookies = await browser.cookies();
  const session = cookies.find((c) => c.name === 'ocis_session');
  check(session && session.httpOnly && session.sameSite === 'Lax', 'the session cookie is HttpOnly and SameSite');

  const rows = page.locator('table.repos tbody tr');
  check(await rows.count() === 3, 'every repository is listed');
  check((await page.locator('p.count').textContent()).startsWith('3 repositories: 2 charts, 1 other · '), 'counts by kind');
  check(/^\d+(\.\d)? (B|KiB)$/.test(await page.locator('#stored').textContent()), 'and the storage they take');
  check(await rows.filter({ hasText: 'charts/old' }).locator('.badge', { hasText: 'deprecated' }).count() === 1, 'deprecated charts are marked');
  await page.screenshot({ path: join(shots, 'home.png'), fullPage: true });

  // Filters: deprecated hidden or alone, a repository prefix.
  await page.getByLabel('Deprecated').selectOption('hide');
  await rows.filter({ hasText: 'charts/old' }).waitFor({ state: 'detached' });
  check(await rows.count() === 2, 'deprecated charts can be hidden');
  await page.getByLabel('Deprecated').selectOption('only');
  await rows.nth(1).waitFor({ state: 'detached' });
  check((await rows.first().locator('.repo').textContent()) === 'charts/old', 'or shown alone');
  await page.getByLabel('Deprecated').selectOption('');
  await page.getByLabel('Under').fill('apps/');
  await page.waitForURL(/prefix=apps/);
  // (The list held one row before too: wait for the charts to leave.)
  await rows.filter({ hasText: 'charts/' }).first().waitFor({ state: 'detached' });
  check(await rows.count() === 1 && (await rows.first().locator('.repo').textContent()) === 'apps/web', 'a prefix narrows to that namespace');
  await page.getByLabel('Under').fill('');
  await rows.nth(2).waitFor();

  // Search as you type: the list narrows without a page load.
  // (history.replaceState counts as a same-document navigation; only a load is a reload.)
  const loads = [];
  page.on('load', () => loads.push(page.url()));
  await page.getByLabel('Search charts and images').pressSequentially('hostile', { delay: 30 });
  await rows.nth(1).waitFor({ state: 'detached' });
  check((await rows.first().locator('.repo').textContent()) === 'charts/hostile', 'search finds the chart');
  check(loads.length === 0, 'results update in place, without a page load');
  check(page.url().includes('q=hostile'), 'the address keeps the query');

  // Hostile metadata is shown as text and runs nothing.
  const description = await rows.first().locator('td').last().textContent();
  check(description.includes('<script>'), 'the description is shown literally');
  check(await page.evaluate(() => window.__pwned === undefined), 'no injected script ran');
  await page.screenshot({ path: join(shots, 'search.png'), fullPage: true });

  // Forms without the session's token are refused; the session survives.
  const forged = await page.request.post(base + '/ui/logout', { form: { csrf: 'forged' } });
  check(forged.status() === 403, 'a logout without the CSRF token is refused');
  await page.reload();
  check((await page.locator('.who').textContent()) === process.env.UI_USER, 'still logged in');

  // Administrators reach the backup and proxy pages from the header.
  await page.getByRole('link', { name: 'Backups' }).click();
  check(await page.getByText('Backups are not enabled').isVisible(), 'the backup page says backups are not enabled');
  await page.screenshot({ path: join(shots, 'backups-disabled.png'), fullPage: true });
  await page.getByRole('link', { name: 'Proxy cache' }).click();
  check(await page.getByText('The pull-through proxy is not enabled').isVisible(), 'the proxy page says the proxy is off');
  await page.goto(base + '/');

  // Narrow screens get the stacked layout.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.screenshot({ path: join(shots, 'home-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1200, height: 800 });

  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(base + '/');
  check(await page.getByRole('navigation').getByRole('link', { name: 'Log in' }).isVisible(), 'logged out');

  const proxyPage = await page.request.get(base + '/ui/proxy');
  check(proxyPage.status() === 403, 'administration pages need an administrator');

  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} finally {
  await browser.close();
}
