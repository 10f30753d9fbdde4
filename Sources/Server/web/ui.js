// Rewind's web UI: live updates over Server-Sent Events (GET /api/v1/events).
// The pages are complete without this script; it keeps them current:
// on an event it fetches the page again and swaps its <main>, and it lists
// what happened under "Live activity". No framework, nothing fetched
// from elsewhere.
(function () {
  'use strict';
  var body = document.body;
  var live = body.getAttribute('data-live') || '';
  var state = document.getElementById('live-state');
  var activity = document.getElementById('activity');
  var timer = null, busy = false, again = false;

  function short(commit) { return (commit || '').slice(0, 8); }

  function note(text, kind) {
    if (!activity) return;
    var item = document.createElement('li');
    if (kind) item.className = 'activity-' + kind;
    var time = document.createElement('time');
    var now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toISOString().slice(11, 19) + ' ';
    item.appendChild(time);
    item.appendChild(document.createTextNode(text));
    activity.insertBefore(item, activity.firstChild);
    while (activity.children.length > 50) activity.removeChild(activity.lastChild);
  }

  // A person typing in a form of the page keeps their text: the swap waits.
  function typing() {
    var active = document.activeElement;
    var main = document.getElementById('main');
    return active && main && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function refresh() {
    if (!live) return;
    if (busy || typing()) { again = true; if (!busy) schedule(1000); return; }
    busy = true;
    fetch(window.location.href, { headers: { 'Accept': 'text/html' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('main');
        var main = document.getElementById('main');
        if (fresh && main) {
          main.innerHTML = fresh.innerHTML;
          body.setAttribute('data-updated', String(Date.now()));
        }
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(50); }
      });
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay);
  }

  if (!window.EventSource || body.getAttribute('data-events') === 'off') return;
  var source = new EventSource('/api/v1/events');
  source.addEventListener('open', function () {
    if (state) { state.textContent = 'Live'; state.setAttribute('data-state', 'open'); }
  });
  source.addEventListener('error', function () {
    if (state) { state.textContent = 'Reconnecting…'; state.setAttribute('data-state', 'closed'); }
  });
  source.addEventListener('status', function (event) {
    var data = JSON.parse(event.data);
    (data.changes || []).forEach(function (change) {
      if (change.health) note(change.app + ': ' + change.health.from + ' → ' + change.health.to, change.health.to);
      if (change.applied) note(change.app + ': applied ' + (change.applied.from || '-') + ' → ' + (change.applied.to || '-'), 'applied');
      if (change.pin) note(change.app + ': ' + (change.pin.to ? 'pinned to ' + short(change.pin.to) : 'unpinned'), 'pin');
    });
    schedule(50);
  });
  source.addEventListener('tip', function (event) {
    var data = JSON.parse(event.data);
    if (!data.rollback) note('new tip ' + short(data.commit) + ': ' + data.subject, 'tip');
    schedule(50);
  });
  source.addEventListener('rollback', function (event) {
    var data = JSON.parse(event.data);
    note(data.action + ' ' + short(data.commit) + ' of ' + data.apps.join(', ') + ' (' + data.trigger + (data.actor ? ' by ' + data.actor : '') + ')' +
         (data.reason ? ': ' + data.reason : ''), 'rollback');
  });
  source.addEventListener('notes', function () { schedule(50); });
})();
