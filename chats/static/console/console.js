/* Sofiia Console: live chat, kept drafts, exactly-once sends. Plain JavaScript, no build
 * step, under a CSP without 'unsafe-inline'; every page works without it.
 * Each composed message has one Idempotency-Key, kept with its draft in sessionStorage
 * (per tab and chat) until the message is stored: whatever is pressed, reloaded or retried,
 * the same text goes with the same key and is stored once. An edited text is another
 * message and gets a new key. */
(function () {
  "use strict";
  var doc = document, POLL_MS = 2000, PREFIX = "sofiia:draft:";

  function byId(id) { return doc.getElementById(id); }
  function each(root, selector, fn) { Array.prototype.forEach.call(root.querySelectorAll(selector), fn); }
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, name) { return name in values ? values[name] : all; });
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  }
  function fragment(html) {
    var template = doc.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  var timeFormat = new Intl.DateTimeFormat(doc.documentElement.lang || undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });

  // Times in the operator's zone; UTC on hover.
  function localTimes(root) {
    each(root, "time[datetime]", function (node) {
      var iso = node.getAttribute("datetime"), when = new Date(iso);
      if (isNaN(when.getTime()) || node.title) return;
      node.title = iso.slice(0, 19).replace("T", " ") + " UTC";
      node.textContent = timeFormat.format(when);
    });
  }

  function copyButtons(root, S) {
    each(root, ".code", function (block) {
      if (block.querySelector(".copy")) return;
      var button = doc.createElement("button"), pre = block.querySelector("pre");
      button.type = "button";
      button.className = "copy";
      button.textContent = S.copy;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(pre.textContent).then(function () {
          button.textContent = S.copied;
          setTimeout(function () { button.textContent = S.copy; }, 1500);
        });
      });
      if (navigator.clipboard) block.insertBefore(button, pre);
    });
  }

  // A page restored from the back-forward cache may be stale (a send, a logout): reload it.
  window.addEventListener("pageshow", function (event) { if (event.persisted) location.reload(); });
  var logout = byId("logout");
  if (logout) {
    logout.addEventListener("submit", function () {
      for (var i = sessionStorage.length - 1; i >= 0; i--) {
        if ((sessionStorage.key(i) || "").indexOf(PREFIX) === 0) sessionStorage.removeItem(sessionStorage.key(i));
      }
    });
  }
  localTimes(doc);
  if (byId("composer")) chat(byId("composer"), JSON.parse(byId("console-strings").textContent));

  function chat(form, S) {
    var list = byId("messages"), box = form.querySelector("textarea"), button = byId("send");
    var keyField = form.elements.idempotency_key, statusLine = byId("composer-status"), pill = byId("node-status");
    var storeKey = PREFIX + form.dataset.chat, maxLength = Number(form.dataset.maxLength);
    var cursor = form.dataset.cursor, live = form.dataset.live === "1";
    // Keys of sends awaiting an answer; the composer stays locked until its message is stored.
    var inFlight = {}, locked = false, blockedUntil = 0, downWarned = false, timer = null;
    var draft = loadDraft();

    function newKey() {
      var bytes = crypto.getRandomValues(new Uint8Array(16));
      return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    }
    function loadDraft() {
      var saved = null;
      try { saved = JSON.parse(sessionStorage.getItem(storeKey)); } catch (e) { saved = null; }
      if (saved && typeof saved.text === "string" && saved.key) return saved;
      // Nothing kept in this tab: the form as rendered (with a draft the server kept).
      return { text: box.value, key: keyField.value || newKey(), tried: false };
    }
    function saveDraft() {
      keyField.value = draft.key;
      try {
        if (draft.text) sessionStorage.setItem(storeKey, JSON.stringify(draft));
        else sessionStorage.removeItem(storeKey);
      } catch (e) { /* storage off or full: the draft lives in the page */ }
    }
    function stored() {
      draft = { text: "", key: newKey(), tried: false };
      box.value = "";
      saveDraft();
      showCount();
    }
    function say(text, kind, link) {
      // The same notice again (a poll repeating it) is left alone: no churn for screen readers.
      var shown = statusLine.firstChild ? statusLine.firstChild.nodeValue : "";
      if (text && text === shown && statusLine.className === "status " + (kind || "")) return;
      statusLine.textContent = text || "";
      statusLine.className = "status " + (kind || "");
      if (link) {
        var a = doc.createElement("a");
        a.href = form.dataset.loginUrl;
        a.textContent = S.log_in;
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
    function csrf() {
      var match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
      return match ? decodeURIComponent(match[1]) : form.elements.csrfmiddlewaretoken.value;
    }
    function decorate(root) { localTimes(root); copyButtons(root, S); }
    // Messages sort by (time, id), as the server orders them.
    function before(a, b) {
      var ta = a.querySelector("time").getAttribute("datetime"), tb = b.querySelector("time").getAttribute("datetime");
      return ta < tb || (ta === tb && Number(a.id.slice(1)) < Number(b.id.slice(1)));
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
        if (item.dataset.key) {
          each(list, "li.bubble", function (bubble) { if (bubble.dataset.key === item.dataset.key) bubble.remove(); });
          if (item.dataset.key === draft.key) { stored(); lock(false); }
        }
      });
      if (added) {
        if (byId("no-messages")) byId("no-messages").remove();
        if (stick) toBottom();
      }
    }

    function schedule(ms) {
      clearTimeout(timer);
      if (live) timer = setTimeout(poll, ms);
    }
    function poll() {
      clearTimeout(timer);
      var watched = [];
      each(list, "li.pending[id], li.failed[id]", function (item) { watched.push(item.id.slice(1)); });
      var url = form.dataset.updatesUrl + "?cursor=" + encodeURIComponent(cursor || "") + "&watch=" + watched.slice(-50);
      return getJSON(url).then(function (response) {
        if (response.status === 403) {
          say(S.access_refused, "error");
          return null;
        }
        if (response.redirected || (response.headers.get("Content-Type") || "").indexOf("json") < 0) {
          say(S.session_expired, "error", true);
          return null;
        }
        return response.ok ? response.json() : null;
      }).then(function (body) {
        if (!body) return;
        if (body.overflow) return location.reload();
        cursor = body.cursor || cursor;
        merge(body.html);
        showNode(body.node_status);
      }).catch(function () { /* offline a moment: the next poll catches up */ }).then(function () {
        schedule(POLL_MS);
      });
    }
    function showNode(state) {
      if (!pill || !state || pill.dataset.status === state) return;
      pill.dataset.status = state;
      pill.className = "node " + state;
      pill.textContent = S[state] || state;
      downWarned = false;
    }

    function bubble(text, key) {
      var item = doc.createElement("li"), meta = doc.createElement("p"), body = doc.createElement("div");
      item.className = "msg operator bubble sending";
      item.dataset.key = key;
      meta.className = "meta";
      meta.textContent = S.you + " · " + S.sending;
      body.className = "text plain";
      body.textContent = text;
      item.append(meta, body);
      if (byId("no-messages")) byId("no-messages").remove();
      list.appendChild(item);
      return item;
    }

    // One send through the JSON API; a 409 (the same message on its way) waits and asks again.
    function post(text, key, tries) {
      return fetch(form.dataset.sendUrl, {
        method: "POST", credentials: "same-origin", body: JSON.stringify({ text: text }),
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf(), "Idempotency-Key": key }
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          if (response.status === 409 && body.error === "idempotency_key_in_flight" && tries < 120) {
            var wait = Number(response.headers.get("Retry-After") || 1) * 1000;
            return new Promise(function (done) { setTimeout(done, wait); }).then(function () { return post(text, key, tries + 1); });
          }
          return { status: response.status, body: body, headers: response.headers };
        });
      }, function () { return { status: 0, body: {} }; });
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
      else if (status === 422 && body.error === "idempotency_key_reused") {
        draft.key = newKey();
        saveDraft();
        say(S.key_reused, "warn");
      } else if (status === 0) say(S.network, "error");
      else if (status === 503) say(S.unavailable, "error");
      else if (status >= 500) say(fill(S.server_error, { status: status }), "error");
      else say(fill(S.refused, { detail: body.detail || status }), "error");
      return false;
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
          button.disabled = locked;
          say("");
        }
      })();
    }
    function lock(on) {
      locked = on;
      box.readOnly = on;
      button.disabled = on || Date.now() < blockedUntil;
      button.textContent = on ? S.sending : S.send;
    }

    function send() {
      var text = box.value, key = draft.key;
      if (locked || inFlight[key] || Date.now() < blockedUntil) return;
      if (!text) return box.focus();
      if (length(text) > maxLength) return say(fill(S.too_long, { length: length(text), limit: maxLength }), "error");
      if (pill && pill.dataset.status === "down" && !downWarned) {
        downWarned = true;
        return say(fill(S.node_down, { node: pill.dataset.node }), "warn");
      }
      draft.text = text;
      draft.tried = true;
      saveDraft();
      inFlight[key] = true;
      lock(true);
      say("");
      var pending = bubble(text, key);
      toBottom();
      schedule(800); // the message is stored (pending) long before a slow agent answers
      post(text, key, 0).then(function (answer) {
        delete inFlight[key];
        var ok = explain(answer);
        if (draft.key === key) {
          if (ok) stored();
          lock(false);
        }
        if (!ok) pending.remove();
        return poll();
      }).then(function () {
        toBottom();
        if (!locked) box.focus();
      });
    }
    function retry(retryForm) {
      var item = retryForm.closest("li"), retryButton = retryForm.querySelector("button");
      retryButton.disabled = true;
      item.classList.add("sending");
      post(retryForm.elements.text.value, retryForm.elements.idempotency_key.value, 0).then(function (answer) {
        item.classList.remove("sending");
        retryButton.disabled = false;
        explain(answer);
        return poll();
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
    // A draft restored after a reload may have been stored meanwhile.
    each(list, "li[data-key]", function (item) { if (item.dataset.key === draft.key) stored(); });
    doc.addEventListener("visibilitychange", function () { if (!doc.hidden) poll(); });
    if (live) {
      if (!location.hash) toBottom();
      schedule(POLL_MS);
    }
  }
})();
