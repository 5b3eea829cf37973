// Tells screen readers what changed without moving focus (the page's live region).
const say = (text) => {
  const live = document.getElementById('live');
  if (live) live.textContent = text;
};

// Search as you type: the form still works without this script (a plain GET of `/`).
(() => {
  const form = document.querySelector('form.search');
  const results = document.getElementById('results');
  if (!form || !results) return;
  let timer = null;
  let latest = 0;
  const refresh = async () => {
    const params = new URLSearchParams(new FormData(form));
    const ticket = ++latest;
    history.replaceState(null, '', '/?' + params);
    params.set('partial', '1');
    try {
      const resp = await fetch('/?' + params, { credentials: 'same-origin' });
      const html = resp.ok ? await resp.text() : null;
      // Only the newest request may fill the list: an older, slower answer is dropped.
      if (html === null || ticket !== latest) return;
      results.innerHTML = html;
      const count = results.querySelector('.count');
      if (count) say(count.textContent);
    } catch {
      // Offline or the server went away: the address holds the query; a reload retries.
    }
  };
  form.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    refresh();
  });
})();

// Copy buttons: copy the text of the element named by data-copy.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button.copy');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = 'Copied';
    say('Copied to the clipboard');
  } catch {
    button.textContent = 'Select and copy';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
});

// Forms that change things ask first (data-confirm); without script they submit directly.
document.addEventListener('submit', (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Backup and garbage collection pages: follow the running job without reloading (its JSON,
// every second), then refresh the history when it ends. The section names the job's JSON
// (data-job), the history fragment (data-history) and where it goes (data-history-target).
// Without script the page shows the job as rendered.
document.querySelectorAll('section[data-job]').forEach((section) => {
  const bar = section.querySelector('progress');
  const text = section.querySelector('.job-text');
  const buttons = document.querySelectorAll('[data-job-button]');
  const history = document.getElementById(section.dataset.historyTarget);
  const poll = async () => {
    try {
      const resp = await fetch(section.dataset.job, { credentials: 'same-origin', cache: 'no-store' });
      if (resp.status >= 400 && resp.status < 500) {
        // Signed out, or the job is gone: a reload shows the page as it is.
        text.textContent = 'Progress is no longer available: reload the page.';
        return;
      }
      if (resp.ok) {
        const job = await resp.json();
        const count = job.bytes.total ? job.bytes : job.objects;
        if (count.total) {
          bar.max = count.total;
          bar.value = count.done;
        } else {
          bar.removeAttribute('value');
        }
        if (job.state !== 'running') {
          // The history first, so that once the job reads as ended its row is there.
          const page = await fetch(section.dataset.history, { credentials: 'same-origin', cache: 'no-store' });
          if (page.ok && history) history.innerHTML = await page.text();
          const done = job.kind + ' ' + job.state + (job.error ? ': ' + job.error : '');
          text.textContent = done;
          const title = section.querySelector('.job-title');
          if (title) title.textContent = 'Finished: ' + job.id;
          bar.max = 1;
          bar.value = 1;
          buttons.forEach((b) => { b.disabled = false; });
          say(done);
          return;
        }
        text.textContent = job.text;
      }
    } catch {
      // The server went away for a moment: try again.
    }
    setTimeout(poll, 1000);
  };
  poll();
});
