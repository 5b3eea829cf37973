// Browser test of what callers without full rights see: an anonymous visitor (anonymous pull
// on public/**) and a read-only user. What they may not do is neither shown nor allowed, even
// with a valid session and CSRF token. Chart icons: an embedded one is shown, a javascript:
// one is not.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… VIEWER=… SCREENSHOTS=dir node access.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch();
try {
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const repos = () => page.locator('table.repos tbody .repo').allTextContents();
  const adminLinks = () => page.getByRole('link', { name: /Proxy cache|Backups/ }).count();

  // Anonymous: the public repositories only, no management, no private pages.
  await page.goto(base + '/');
  check(JSON.stringify(await repos()) === '["public/apps/web","public/charts/webapp"]', 'anonymous visitors see the public repositories only');
  check(await adminLinks() === 0, 'no administration links for visitors');
  await page.getByRole('link', { name: 'public/charts/webapp' }).click();
  await page.waitForURL(/\/ui\/chart\?/);
  check(await page.getByRole('button', { name: /Delete/ }).count() === 0, 'visitors get no delete button');
  const icon = page.locator('.chart-head img.icon');
  check(await icon.count() === 1, 'the embedded chart icon is shown');
  check(await icon.evaluate((img) => img.complete && img.naturalWidth > 0), 'and loads under the content security policy');
  const download = await page.request.get(base + await page.getByRole('link', { name: /^Download / }).getAttribute('href'));
  check(download.status() === 200 && (await download.body()).length > 0, 'visitors may download a public chart');
  await page.screenshot({ path: join(shots, 'chart-anonymous.png'), fullPage: true });
  await page.goto(base + '/ui/image?repository=public%2Fapps%2Fweb');
  check(await page.locator('form[action="/ui/tag/copy"], form[action="/ui/tag/delete"]').count() === 0, 'visitors get no retag or tag delete form');
  for (const hidden of ['/ui/chart?repository=private%2Fcharts%2Fsecret', '/ui/image?repository=private%2Fapps%2Fimg',
                        '/ui/chart/download?repository=private%2Fcharts%2Fsecret&version=1.0.0']) {
    const resp = await page.request.get(base + hidden);
    check(resp.status() === 404, `a private page does not exist for visitors (${hidden})`);
  }
  const anonymousDelete = await page.request.post(base + '/ui/chart/delete', {
    form: { csrf: '', repository: 'public/charts/webapp', version: '1.0.0' },
  });
  check(anonymousDelete.status() === 403, 'visitors cannot post a delete');

  // A read-only user: everything to read, nothing to change.
  await login(page, process.env.VIEWER, process.env.UI_PASSWORD);
  check((await repos()).length === 4, 'a read-only user sees every repository');
  check(await adminLinks() === 0, 'no administration links for a non-administrator');
  const csrf = await page.locator('form[action="/ui/logout"] input[name="csrf"]').inputValue();
  await page.goto(base + '/ui/chart?repository=private%2Fcharts%2Fsecret');
  check(await page.getByRole('button', { name: /Delete/ }).count() === 0, 'no delete button without delete rights');
  check(await page.locator('.chart-head img').count() === 0, 'a javascript: icon is not used');
  check((await page.locator('.chart-head .monogram').textContent()) === 'S', 'the chart initial stands in for it');
  await page.goto(base + '/ui/image?repository=private%2Fapps%2Fimg');
  check(await page.locator('table.tags tbody tr').count() === 1, 'the image page opens');
  check(await page.locator('form[action="/ui/tag/copy"], form[action="/ui/tag/delete"]').count() === 0, 'no retag or tag delete form without the rights');
  await page.screenshot({ path: join(shots, 'image-read-only.png'), fullPage: true });
  // Even with the session's own CSRF token, the server refuses.
  for (const [path, form] of [
    ['/ui/chart/delete', { csrf, repository: 'private/charts/secret', version: '1.0.0' }],
    ['/ui/tag/copy', { csrf, repository: 'private/apps/img', source: 'v1', target: 'stolen' }],
    ['/ui/tag/delete', { csrf, repository: 'private/apps/img', tag: 'v1' }],
  ]) {
    const resp = await page.request.post(base + path, { form });
    check(resp.status() === 403, `${path} is refused without the rights`);
  }
  for (const admin of ['/ui/proxy', '/ui/backups']) {
    check((await page.request.get(base + admin)).status() === 403, `${admin} needs an administrator`);
  }

  // An administrator whose delete is refused (immutable tag) is told why, once; a link cannot
  // put a message on the page.
  await page.getByRole('button', { name: 'Log out' }).click();
  await login(page);
  await page.goto(base + '/ui/image?repository=private%2Fapps%2Fimg&tag=v1');
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete tag v1' }).click();
  await page.getByRole('alert').waitFor();
  check((await page.getByRole('alert').textContent()).includes('immutable'), `the refusal says why (${await page.getByRole('alert').textContent()})`);
  await page.reload();
  check(await page.getByRole('alert').count() === 0, 'and only once');
  await page.goto(base + '/ui/image?repository=private%2Fapps%2Fimg&tag=v1&notice=Your+session+expired,+log+in+at+evil.example');
  check(await page.getByRole('alert').count() === 0, 'a notice in the address is not shown');
  // By digest: pull by digest, and no tag to delete.
  const digest = await page.locator('table.tags abbr').first().getAttribute('title');
  await page.goto(base + `/ui/image?repository=private%2Fapps%2Fimg&tag=${encodeURIComponent(digest)}`);
  check((await page.locator('#cmd-docker').textContent()).endsWith(`/private/apps/img@${digest}`), 'the pull line of a digest uses @');
  check(await page.getByRole('button', { name: /Delete tag/ }).count() === 0, 'a digest offers no tag delete');
  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} finally {
  await browser.close();
}
