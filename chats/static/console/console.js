/* Sofiia Console: a live workspace on top of pages that work without script. Plain
 * JavaScript, no build step, under a CSP without 'unsafe-inline' (classes, never styles).
 * Each composed message has one Idempotency-Key. Once sent, it waits in an outbox (kept in
 * localStorage per operator and chat) until the server is seen to store it: a reload sends it
 * again with the same key, so it is stored once and never lost. The composer is cleared at
 * once and never locked: nothing typed while a send is in flight is dropped. */
(function () {
  "use strict";
  var doc = document, POLL_MS = 2000, LIST_MS = 3000, HIDDEN_MS = 30000;
  var DRAFT = "sofiia:draft:", OUTBOX = "sofiia:outbox:", NOTIFY = "sofiia:notify";
  var stringsNode = byId("console-strings"), S = stringsNode ? JSON.parse(stringsNode.textContent) : {};
  var brand = doc.querySelector("a.brand"), home = brand ? brand.getAttribute("href") : "/console/";
  var baseTitle = doc.title, form = byId("composer");

  function byId(id) { return doc.getElementById(id); }
  function each(root, selector, fn) { Array.prototype.forEach.call(root.querySelectorAll(selector), fn); }
  function make(tag, className, text) {
    var node = doc.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fill(text, values) {
    return (text || "").replace(/\{(\w+)\}/g, function (all, name) { return name in values ? values[name] : all; });
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  }
  function isJSON(response) { return !response.redirected && (response.headers.get("Content-Type") || "").indexOf("json") >= 0; }
  function fragment(html) {
    var template = doc.createElement("template");
    template.innerHTML = html;
    return template.content;
  }
  function csrf() {
    var match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/), field = doc.querySelector("[name=csrfmiddlewaretoken]");
    return match ? decodeURIComponent(match[1]) : field ? field.value : "";
  }
  function load(key) {
    try { return JSON.parse(localStorage.getItem(key)); } catch (e) { return null; }
  }
  function keep(key, value) {
    try {
      if (value) localStorage.setItem(key, JSON.stringify(value));
      else localStorage.removeItem(key);
    } catch (e) { /* storage off or full: it lives in the page */ }
  }

  // Calls run() now and then: every ms while the tab is seen, rarely while it is hidden, at once
  // when it is seen again. run() may return (a promise of) the delay before the next call.
  function poller(run, ms) {
    var timer = null, busy = false, again = false;
    function tick() {
      clearTimeout(timer);
      if (busy) { again = true; return; }
      busy = true;
      Promise.resolve().then(run).catch(function () { return ms; }).then(function (next) {
        busy = false;
        if (again) { again = false; return tick(); }
        later(typeof next === "number" ? next : ms);
      });
    }
    function later(delay) {
      clearTimeout(timer);
      timer = setTimeout(tick, doc.hidden ? Math.max(delay, HIDDEN_MS) : delay);
    }
    doc.addEventListener("visibilitychange", function () {
      if (doc.hidden) later(ms);
      else tick();
    });
    return { now: tick, later: later };
  }

  var timeFormat = new Intl.DateTimeFormat(doc.documentElement.lang || undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });
  // Times in the operator's zone; UTC on hover.
  function localTimes(root) {
    each(root, "time[datetime]", function (node) {
      var iso = node.getAttribute("datetime"), when = new Date(iso);
      if (isNaN(when.getTime()) || node.title === iso.slice(0, 19).replace("T", " ") + " UTC") return;
      node.title = iso.slice(0, 19).replace("T", " ") + " UTC";
      node.textContent = timeFormat.format(when);
    });
  }

  // A page restored from the back-forward cache may be stale (a send, a logout): reload it.
  window.addEventListener("pageshow", function (event) { if (event.persisted) location.reload(); });
  var logout = byId("logout");
  if (logout) {
    logout.addEventListener("submit", function () {
      for (var i = localStorage.length - 1; i >= 0; i--) {
        if (/^sofiia:/.test(localStorage.key(i) || "")) localStorage.removeItem(localStorage.key(i));
      }
      sessionStorage.clear();
    });
  }
  localTimes(doc);
  shortcuts();
  var openChat = form ? chat(form) : null;
  if (logout && stringsNode) workspace();

  function shortcuts() {
    var dialog = null;
    function help() {
      if (!dialog) {
        dialog = make("dialog", "shortcuts");
        dialog.setAttribute("aria-labelledby", "shortcuts-title");
        var title = make("h2", "", S.shortcuts), list = make("dl"), close = make("form"), button = make("button", "", S.close);
        title.id = "shortcuts-title";
        [["/", S.key_search], ["n", S.key_new], ["Esc", S.key_escape], ["?", S.key_help]].forEach(function (pair) {
          var term = make("dt"), key = make("kbd", "", pair[0]);
          term.appendChild(key);
          list.append(term, make("dd", "", pair[1]));
        });
        close.method = "dialog";
        button.type = "submit";
        close.appendChild(button);
        dialog.id = "shortcuts";
        dialog.append(title, list, close);
        doc.body.appendChild(dialog);
      }
      if (!dialog.open) dialog.showModal();
    }
    function field(id) {
      var node = byId(id);
      if (node) return node.focus();
      location.href = home + "#" + id;
    }
    doc.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
      var target = event.target, typing = target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
      if (event.key === "Escape") {
        if (typing) target.blur();
        return;
      }
      if (typing || (dialog && dialog.open)) return;
      var action = { "/": function () { field("q"); }, n: function () { field("id_title"); }, "?": help }[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    });
    if (/^#(q|id_title)$/.test(location.hash) && byId(location.hash.slice(1))) byId(location.hash.slice(1)).focus();
  }

  // The list, the tab's title and desktop notifications follow the operator's chats.
  function workspace() {
    var list = byId("chats"), live = list && list.dataset.live === "1", seen = null, button = null;
    var canNotify = "Notification" in window;
    function notifying() { return canNotify && Notification.permission === "granted" && localStorage.getItem(NOTIFY) === "1"; }
    function showButton() {
      if (!canNotify || Notification.permission === "denied") return;
      if (!button) {
        button = make("button", "secondary notify");
        button.type = "button";
        button.id = "notify";
        button.addEventListener("click", function () {
          Notification.requestPermission().then(function (answer) {
            if (answer === "granted") localStorage.setItem(NOTIFY, "1");
            showButton();
          });
        });
        var tools = doc.querySelector("header.top .tools");
        if (tools) tools.insertBefore(button, tools.firstChild);
      }
      button.textContent = notifying() ? S.notify_on : S.notify;
      button.disabled = notifying();
    }
    function badge(link, kind, text) {
      var node = link.querySelector(".badge." + kind);
      if (!text) return node && node.remove();
      if (!node) link.insertBefore(node = make("span", "badge " + kind), link.querySelector("time"));
      node.textContent = text;
    }
    function row(item, unread) {
      var li = list.querySelector('li[data-chat="' + item.id + '"]');
      if (!li) {
        if (!live) return null;
        li = make("li");
        li.dataset.chat = item.id;
        var link = make("a");
        link.href = item.url;
        link.append(make("span", "title"), make("time"), make("span", "sub", item.agent + " · " + item.node));
        li.appendChild(link);
      }
      var a = li.querySelector("a"), sub = a.querySelector(".sub"), preview = a.querySelector(".preview"), time = a.querySelector("time");
      a.querySelector(".title").textContent = item.title;
      badge(a, "failed", item.failed ? S.failed : "");
      badge(a, "pending", item.pending ? S.pending : "");
      badge(a, "unread", unread ? fill(S.unread, { count: unread >= 100 ? "99+" : unread }) : "");
      if (item.preview && !preview && sub) {
        sub.append(" · ", preview = make("span", "preview"));
      }
      if (preview) preview.textContent = item.preview;
      if (time && time.getAttribute("datetime") !== item.activity) {
        time.setAttribute("datetime", item.activity);
        localTimes(a);
      }
      return li;
    }
    function notify(item) {
      if (!notifying()) return;
      var note = new Notification(fill(S.notify_title, { title: item.title }), { body: item.preview, tag: "sofiia-chat-" + item.id });
      note.addEventListener("click", function () { window.focus(); location.href = item.url; });
    }
    function refresh() {
      return getJSON(home + "updates").then(function (response) {
        return response.ok && isJSON(response) ? response.json() : null;
      }).then(function (body) {
        if (!body) return;
        var total = 0, now = {};
        body.chats.forEach(function (item, index) {
          var open = openChat && openChat.id === item.id, unread = open && !doc.hidden ? 0 : item.unread;
          total += unread;
          if (seen && item.unread > (seen[item.id] || 0) && !open) notify(item);
          now[item.id] = item.unread;
          var li = list && row(item, unread);
          if (li && live && list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
        });
        if (list && live && body.chats.length) each(list, "li.empty", function (empty) { empty.remove(); });
        seen = now;
        doc.title = (total ? "(" + total + ") " : "") + baseTitle;
      });
    }
    showButton();
    poller(refresh, list ? LIST_MS : LIST_MS * 2).now();
  }

  function chat(form) {
    var list = byId("messages"), box = form.querySelector("textarea"), button = byId("send");
    var keyField = form.elements.idempotency_key, statusLine = byId("composer-status"), pill = byId("node-status");
    var where = form.dataset.operator + ":" + form.dataset.chat, maxLength = Number(form.dataset.maxLength);
    var cursor = form.dataset.cursor, live = form.dataset.live === "1", readUpTo = null;
    var blockedUntil = 0, downWarned = false, missing = [], notice = "";
    var draft = load(DRAFT + where), outbox = load(OUTBOX + where) || [];
    if (!draft || typeof draft.text !== "string" || !draft.key || /[?&]edit=/.test(location.search)) {
      // Nothing kept in this browser, or "Edit and resend" asked for the message the server
      // put in the form: the form as rendered (with a draft the server kept).
      draft = { text: box.value, key: keyField.value || newKey(), tried: false };
    }

    function newKey() {
      var bytes = crypto.getRandomValues(new Uint8Array(16));
      return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    }
    function saveDraft() {
      keyField.value = draft.key;
      keep(DRAFT + where, draft.text ? draft : null);
    }
    function saveOutbox() { keep(OUTBOX + where, outbox.length ? outbox.map(function (e) { return { key: e.key, text: e.text, at: e.at }; }) : null); }
    function waiting(key) { return outbox.filter(function (e) { return e.key === key; })[0]; }
    // The message of this key is stored: it leaves the outbox, its stand-in the page.
    function done(key) {
      var entry = waiting(key);
      if (!entry) return;
      clearTimeout(entry.timer);
      outbox.splice(outbox.indexOf(entry), 1);
      saveOutbox();
      if (notice === S.in_flight || notice === S.network_retry) say("");
      each(list, "li.bubble", function (bubble) { if (bubble.dataset.key === key) bubble.remove(); });
    }
    function say(text, kind, link) {
      // The same notice again (a poll repeating it) is left alone: no churn for screen readers.
      notice = text || "";
      var shown = statusLine.firstChild ? statusLine.firstChild.nodeValue : "";
      if (text && text === shown && statusLine.className === "status " + (kind || "")) return;
      statusLine.textContent = notice;
      statusLine.className = "status " + (kind || "");
      if (link) {
        var a = make("a", "", S.log_in);
        a.href = form.dataset.loginUrl;
        statusLine.append(" ", a);
      }
    }
    function length(text) { return Array.from(text).length; }
    function showCount() {
      var n = length(box.value);
      byId("composer-count").textContent = n > maxLength * 0.9 ? fill(S.count, { length: n, limit: maxLength }) : "";
      box.setAttribute("aria-invalid", n > maxLength ? "true" : "false");
    }
    function atBottom() { return innerHeight + scrollY >= doc.documentElement.scrollHeight - 120; }
    function toBottom() { scrollTo(0, doc.documentElement.scrollHeight); }
    function copyButton(className, source) {
      var copy = make("button", className, S.copy);
      copy.type = "button";
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(source.textContent).then(function () {
          copy.textContent = S.copied;
          setTimeout(function () { copy.textContent = S.copy; }, 1500);
        });
      });
      return copy;
    }
    // Copy buttons exist only where the script can copy: on code blocks and on every message.
    function decorate(root) {
      localTimes(root);
      if (!navigator.clipboard) return;
      each(root, ".code", function (block) {
        var pre = block.querySelector("pre");
        if (!block.querySelector(".copy")) block.insertBefore(copyButton("copy", pre), pre);
      });
      var items = root.matches && root.matches("li.msg") ? [root] : root.querySelectorAll("li.msg");
      Array.prototype.forEach.call(items, function (item) {
        var text = item.querySelector(".text");
        if (!text || item.querySelector(".copy-message")) return;
        var actions = item.querySelector(".msg-actions");
        if (!actions) { actions = make("div", "msg-actions"); text.after(actions); }
        actions.prepend(copyButton("copy-message", text));
      });
    }
    // Messages sort by (time, id), as the server orders them; then each reply goes right after
    // the message it answers, so two sends in flight each read as question then answer.
    function before(a, b) {
      var ta = a.querySelector("time").getAttribute("datetime"), tb = b.querySelector("time").getAttribute("datetime");
      return ta < tb || (ta === tb && Number(a.id.slice(1)) < Number(b.id.slice(1)));
    }
    function arrange() {
      each(list, "li[data-reply-to]", function (reply) {
        var question = byId("m" + reply.dataset.replyTo);
        if (question && question.nextElementSibling !== reply) question.after(reply);
      });
    }
    function firstShown() {
      var first = list.querySelector("li.msg[id]");
      return first ? Number(first.id.slice(1)) : Infinity;
    }

    // Rendered messages into their place: new ones added, changed ones replaced.
    function merge(html) {
      var stick = atBottom(), added = false;
      Array.prototype.slice.call(fragment(html).children).forEach(function (item) {
        var old = byId(item.id);
        if (old) {
          if (old.dataset.state !== item.dataset.state) { old.replaceWith(item); decorate(item); }
        } else {
          var next = null, items = list.querySelectorAll("li.msg[id]");
          for (var i = items.length - 1; i >= 0 && before(item, items[i]); i--) next = items[i];
          list.insertBefore(item, next || list.querySelector("li.bubble"));
          decorate(item);
          added = true;
        }
        if (item.dataset.key) done(item.dataset.key);
      });
      arrange();
      if (added) {
        if (byId("no-messages")) byId("no-messages").remove();
        if (stick) toBottom();
      }
      thinking();
      return added;
    }

    // The operator has seen the chat up to its newest message: its replies are read.
    function markRead() {
      if (!live || doc.hidden || readUpTo === cursor) return;
      readUpTo = cursor;
      var body = new URLSearchParams({ cursor: cursor || "" });
      fetch(form.dataset.readUrl, { method: "POST", credentials: "same-origin", body: body, headers: { "X-CSRFToken": csrf() } })
        .catch(function () { readUpTo = null; });
    }

    function poll() {
      var watched = missing.slice();
      each(list, "li.pending[id], li.failed[id]", function (item) { watched.push(item.id.slice(1)); });
      var url = form.dataset.updatesUrl + "?cursor=" + encodeURIComponent(cursor || "") + "&watch=" + watched.slice(0, 50);
      return getJSON(url).then(function (response) {
        if (response.status === 403) return say(S.access_refused, "error");
        if (!isJSON(response)) return say(S.session_expired, "error", true);
        return response.ok ? response.json() : null;
      }).then(function (body) {
        if (!body) return;
        // Logged in again (in another tab, say): the notice of the lost session has had its day.
        if (notice === S.session_expired || notice === S.access_refused) say("");
        cursor = body.cursor || cursor;
        merge(body.html);
        var oldest = firstShown();
        missing = body.recent.filter(function (id) { return id > oldest && !byId("m" + id); });
        showNode(body.node_status);
        markRead();
        // More than one answer carries, or one committed late: ask again at once.
        if (body.more) return 0;
        if (missing.length) return 300;
      });
    }
    var poller_ = live ? poller(poll, POLL_MS) : { now: function () {}, later: function () {} };

    function showNode(state) {
      if (!pill || !state || pill.dataset.status === state) return;
      pill.dataset.status = state;
      pill.className = "node " + state;
      pill.textContent = S[state] || state;
      downWarned = false;
    }

    // How long each message of the operator's has waited for its answer, counted up.
    var ticking = null;
    function thinking() {
      var any = false;
      each(list, "li.bubble, li.msg.operator.pending", function (item) {
        var entry = waiting(item.dataset.key), time = item.querySelector("time");
        var since = entry ? entry.at : time ? Date.parse(time.getAttribute("datetime")) : Date.now();
        var span = item.querySelector(".thinking");
        if (!span) item.querySelector(".meta").append(" · ", span = make("span", "thinking"));
        span.textContent = fill(S.thinking, { seconds: Math.max(0, Math.floor((Date.now() - since) / 1000)) });
        any = true;
      });
      clearTimeout(ticking);
      if (any) ticking = setTimeout(thinking, 1000);
    }

    function bubble(entry) {
      var item = make("li", "msg operator bubble sending"), meta = make("p", "meta", S.you + " · " + S.sending);
      item.dataset.key = entry.key;
      item.append(meta, make("div", "text plain", entry.text));
      if (byId("no-messages")) byId("no-messages").remove();
      list.appendChild(item);
      return item;
    }

    function post(text, key) {
      return fetch(form.dataset.sendUrl, {
        method: "POST", credentials: "same-origin", body: JSON.stringify({ text: text }),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf(), "Idempotency-Key": key }
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          return { status: response.status, body: body, headers: response.headers };
        });
      }, function () { return { status: 0, body: {}, headers: new Headers() }; });
    }

    // Says what an answer means; returns whether the message is stored.
    function explain(answer) {
      var status = answer.status, body = answer.body;
      if (status === 201) { say(""); return true; }
      if (body.operator_message) { say(S.node_failed, "error"); return true; }
      if (status === 429) countdown(Number(body.retry_after || answer.headers.get("Retry-After") || 1));
      else if (status === 401) say(S.session_expired, "error", true);
      else if (status === 403) say(S.forbidden, "error");
      else if (status === 413) say(fill(S.too_long, { length: length(box.value), limit: maxLength }), "error");
      else if (status === 422 && body.error === "idempotency_key_reused") say(S.key_reused, "warn");
      else if (status === 0) say(S.network, "error");
      else if (status === 503) say(S.unavailable, "error");
      else if (status >= 500) say(fill(S.server_error, { status: status }), "error");
      else say(fill(S.refused, { detail: body.detail || status }), "error");
      return false;
    }

    // One send of an outbox entry. While the same message is on its way (409, after a worker
    // crash too) or the server cannot be reached, it stays shown as pending: polling brings
    // its answer, and it is asked again only after Retry-After, each time twice as late.
    function deliver(entry, tries) {
      post(entry.text, entry.key).then(function (answer) {
        if (!waiting(entry.key)) return;
        var inFlight = answer.status === 409 && answer.body.error === "idempotency_key_in_flight";
        if (inFlight || answer.status === 0) {
          var wait = Math.max(Number(answer.headers.get("Retry-After")) || 1, 2) * Math.pow(2, tries);
          entry.timer = setTimeout(function () { if (waiting(entry.key)) deliver(entry, tries + 1); }, Math.min(wait, 60) * 1000);
          say(inFlight ? S.in_flight : S.network_retry, inFlight ? "" : "error");
        } else if (explain(answer)) {
          done(entry.key);
        } else {
          unsent(entry, answer.status === 422);
        }
        poller_.now();
      });
    }
    // A refused message goes back to the composer, before whatever was typed since.
    function unsent(entry, reused) {
      done(entry.key);
      if (box.value) draft = { text: entry.text + "\n" + box.value, key: newKey(), tried: false };
      else draft = { text: entry.text, key: reused ? newKey() : entry.key, tried: !reused };
      box.value = draft.text;
      saveDraft();
      showCount();
    }
    function countdown(seconds) {
      blockedUntil = Date.now() + seconds * 1000;
      button.disabled = true;
      (function tick() {
        var left = Math.ceil((blockedUntil - Date.now()) / 1000);
        if (left > 0) {
          say(fill(S.rate_limited, { seconds: left }), "error");
          setTimeout(tick, 1000);
        } else {
          button.disabled = false;
          say("");
        }
      })();
    }

    function send() {
      var text = box.value;
      if (Date.now() < blockedUntil) return;
      if (!text) return box.focus();
      if (!/\S/.test(text)) return say(S.blank, "warn");
      if (length(text) > maxLength) return say(fill(S.too_long, { length: length(text), limit: maxLength }), "error");
      if (pill && pill.dataset.status === "down" && !downWarned) {
        downWarned = true;
        return say(fill(S.node_down, { node: pill.dataset.node }), "warn");
      }
      var entry = { key: draft.key, text: text, at: Date.now() };
      if (waiting(entry.key)) return;
      outbox.push(entry);
      saveOutbox();
      draft = { text: "", key: newKey(), tried: false };
      box.value = "";
      saveDraft();
      showCount();
      say("");
      bubble(entry);
      thinking();
      toBottom();
      deliver(entry, 0);
      poller_.later(700); // the message is stored (pending) long before a slow agent answers
    }
    function retry(retryForm) {
      var item = retryForm.closest("li"), retryButton = retryForm.querySelector("button");
      retryButton.disabled = true;
      item.classList.add("sending");
      post(retryForm.elements.text.value, retryForm.elements.idempotency_key.value).then(function (answer) {
        item.classList.remove("sending");
        retryButton.disabled = false;
        if (answer.status === 409) say(S.in_flight);
        else explain(answer);
        poller_.now();
      });
    }

    function loadOlder(event) {
      var older = event.currentTarget, label = older.textContent;
      event.preventDefault();
      older.textContent = S.loading;
      getJSON(older.dataset.url + "?cursor=" + encodeURIComponent(older.dataset.cursor)).then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      }).then(function (body) {
        var height = doc.documentElement.scrollHeight, items = fragment(body.html);
        each(items, "li", function (item) { if (byId(item.id)) item.remove(); });
        decorate(items);
        list.insertBefore(items, list.firstChild);
        arrange();
        scrollBy(0, doc.documentElement.scrollHeight - height);
        older.textContent = label;
        if (!body.next_cursor) return older.parentNode.remove();
        older.dataset.cursor = body.next_cursor;
        older.href = "?cursor=" + encodeURIComponent(body.next_cursor);
      }).catch(function () {
        older.textContent = label;
        say(S.older_failed, "error");
      });
    }

    box.value = draft.text;
    saveDraft();
    showCount();
    decorate(list);
    arrange();
    form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
    box.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing) return;
      event.preventDefault();
      if (!event.repeat) send();
    });
    box.addEventListener("input", function () {
      // Another text is another message: it must not reuse a key that may have stored one.
      if (draft.tried) draft = { key: newKey(), tried: false };
      draft.text = box.value;
      saveDraft();
      showCount();
    });
    list.addEventListener("submit", function (event) {
      if (!event.target.classList.contains("retry")) return;
      event.preventDefault();
      retry(event.target);
    });
    if (byId("older")) byId("older").addEventListener("click", loadOlder);
    // Sends a closed or reloaded page left waiting: stored already, or sent again (same key).
    outbox.slice().forEach(function (entry) {
      if (list.querySelector('li.msg[data-key="' + CSS.escape(entry.key) + '"]')) return done(entry.key);
      bubble(entry);
      deliver(entry, 0);
    });
    thinking();
    doc.addEventListener("visibilitychange", markRead);
    if (!location.hash || location.hash === "#composer") box.focus({ preventScroll: true });
    if (live) {
      if (!location.hash) toBottom();
      markRead();
      poller_.later(POLL_MS);
    }
    return { id: Number(form.dataset.chat) };
  }
})();
