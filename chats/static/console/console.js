/* Sofiia Console's script: live chat, drafts that survive everything, exactly-once sends.
 *
 * Plain JavaScript, no build step, no dependency, served as a static file under a CSP
 * without 'unsafe-inline'. Every page works without it: it only improves the forms.
 *
 * Exactly once: each composed message has one Idempotency-Key, kept with its draft in
 * sessionStorage (per tab and chat) until the message is stored. Whatever is pressed,
 * reloaded or retried, the same text goes with the same key, and the server stores and
 * sends it once. Editing the text after an attempt gives it a new key: it is then another
 * message. The draft is cleared only when the message is stored (the send answered, or
 * the message shows up in the transcript with the draft's key).
 */
(function () {
  "use strict";
  var doc = document;
  var POLL_MS = 2000;
  var DRAFT_PREFIX = "sofiia:draft:";

  function byId(id) { return doc.getElementById(id); }
  function each(root, selector, fn) { Array.prototype.forEach.call(root.querySelectorAll(selector), fn); }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, name) { return name in values ? values[name] : all; });
  }

  var timeFormat = new Intl.DateTimeFormat(doc.documentElement.lang || undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short"
  });

  // Times in the operator's own zone; the server's UTC stays in the title, shown on hover.
  function localTimes(root) {
    each(root, "time[datetime]", function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when.getTime())) node.textContent = timeFormat.format(when);
    });
  }

  function copyButtons(root, strings) {
    each(root, ".code", function (block) {
      if (block.querySelector(".copy")) return;
      var button = doc.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = strings.copy;
      button.addEventListener("click", function () {
        var text = block.querySelector("pre").textContent;
        var done = function () {
          button.textContent = strings.copied;
          setTimeout(function () { button.textContent = strings.copy; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var range = doc.createRange();
          range.selectNodeContents(block.querySelector("pre"));
          var selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          if (doc.execCommand("copy")) done();
        }
      });
      block.insertBefore(button, block.firstChild);
    });
  }

  function clearDrafts() {
    try {
      for (var i = sessionStorage.length - 1; i >= 0; i--) {
        var name = sessionStorage.key(i);
        if (name && name.indexOf(DRAFT_PREFIX) === 0) sessionStorage.removeItem(name);
      }
    } catch (e) { /* storage unavailable: nothing kept */ }
  }

  // A page restored from the back-forward cache may be stale (a send since, a logout):
  // fetch it again instead, which the server answers as it stands now.
  window.addEventListener("pageshow", function (event) { if (event.persisted) location.reload(); });

  var logout = byId("logout");
  if (logout) logout.addEventListener("submit", clearDrafts);
  localTimes(doc);
  var composer = byId("composer");
  if (composer) chat(composer, JSON.parse(byId("console-strings").textContent));

  function chat(form, S) {
    var list = byId("messages");
    var box = form.querySelector("textarea");
    var keyField = form.querySelector("input[name=idempotency_key]");
    var button = byId("send");
    var statusLine = byId("composer-status");
    var nodePill = byId("node-status");
    var storeKey = DRAFT_PREFIX + form.dataset.chat;
    var maxLength = Number(form.dataset.maxLength);
    var cursor = form.dataset.cursor;
    // Keys of sends waiting for their answer; the composer stays locked until its draft's
    // message is stored (the answer, or the message seen in the transcript, whichever first).
    var inFlight = {};
    var locked = false;
    var blockedUntil = 0;
    var downWarned = false;
    var pollTimer = null;
    var draft = loadDraft();

    function newKey() {
      var bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
    }

    function loadDraft() {
      var saved = null;
      try { saved = JSON.parse(sessionStorage.getItem(storeKey)); } catch (e) { saved = null; }
      if (saved && typeof saved.text === "string" && typeof saved.key === "string" && saved.key) return saved;
      // Nothing kept in this tab: the form as the server rendered it (with a draft it kept).
      return { text: box.value, key: keyField.value || newKey(), attempted: false };
    }

    function saveDraft() {
      keyField.value = draft.key;
      try {
        if (draft.text) sessionStorage.setItem(storeKey, JSON.stringify(draft));
        else sessionStorage.removeItem(storeKey);
      } catch (e) { /* storage full or off: the draft lives in the page only */ }
    }

    function draftStored() {
      draft = { text: "", key: newKey(), attempted: false };
      box.value = "";
      saveDraft();
      showCount();
    }

    function setStatus(text, kind, link) {
      statusLine.textContent = text || "";
      statusLine.className = "status" + (kind ? " " + kind : "");
      if (link) {
        var anchor = doc.createElement("a");
        anchor.href = link.href;
        anchor.textContent = link.text;
        statusLine.appendChild(doc.createTextNode(" "));
        statusLine.appendChild(anchor);
      }
    }

    function length(text) { return Array.from(text).length; }

    function showCount() {
      var n = length(box.value);
      byId("composer-count").textContent = n > maxLength * 0.9 ? fill(S.count, { length: n, limit: maxLength }) : "";
      box.setAttribute("aria-invalid", n > maxLength ? "true" : "false");
    }

    function nearBottom() {
      return window.innerHeight + window.scrollY >= doc.documentElement.scrollHeight - 120;
    }

    function toBottom() { window.scrollTo(0, doc.documentElement.scrollHeight); }

    function csrfToken() {
      var match = doc.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
      return match ? decodeURIComponent(match[1]) : form.querySelector("[name=csrfmiddlewaretoken]").value;
    }

    function decorate(root) { localTimes(root); copyButtons(root, S); }

    // Put rendered messages in their (ts, id) place: new ones added, changed ones replaced.
    function merge(html) {
      var template = doc.createElement("template");
      template.innerHTML = html;
      var stick = nearBottom();
      var added = false;
      Array.prototype.slice.call(template.content.children).forEach(function (item) {
        var old = byId(item.id);
        if (old) {
          if (old.dataset.state !== item.dataset.state) { old.replaceWith(item); decorate(item); }
        } else {
          var before = null;
          var items = list.querySelectorAll("li.msg[data-order]");
          for (var i = items.length - 1; i >= 0 && items[i].dataset.order > item.dataset.order; i--) before = items[i];
          list.insertBefore(item, before || list.querySelector("li.bubble"));
          decorate(item);
          added = true;
        }
        if (item.dataset.key) {
          each(list, "li.bubble", function (bubble) { if (bubble.dataset.key === item.dataset.key) bubble.remove(); });
          if (item.dataset.key === draft.key) { draftStored(); lock(false); }
        }
      });
      if (added) {
        var empty = byId("no-messages");
        if (empty) empty.remove();
        if (stick) toBottom();
      }
    }

    function schedule(ms) {
      clearTimeout(pollTimer);
      if (form.dataset.live === "1") pollTimer = setTimeout(poll, ms);
    }

    function poll() {
      clearTimeout(pollTimer);
      var watched = [];
      each(list, "li.msg.pending[data-id], li.msg.failed[data-id]", function (item) { watched.push(item.dataset.id); });
      var url = form.dataset.updatesUrl + "?cursor=" + encodeURIComponent(cursor || "") +
        "&watch=" + watched.slice(-50).join(",");
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
          if (response.redirected || !json) {
            setStatus(S.session_expired, "error", { href: form.dataset.loginUrl, text: S.log_in });
            return null;
          }
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (!body) return;
          if (body.overflow) { location.reload(); return; }
          cursor = body.cursor || cursor;
          merge(body.html);
          showNode(body.node_status);
        })
        .catch(function () { /* offline for a moment: the next poll catches up */ })
        .then(function () { schedule(POLL_MS); });
    }

    function showNode(state) {
      if (!nodePill || !state || nodePill.dataset.status === state) return;
      nodePill.dataset.status = state;
      nodePill.className = "node " + state;
      nodePill.textContent = S[state] || state;
      downWarned = false;
    }

    function bubble(text, key) {
      var item = doc.createElement("li");
      item.className = "msg operator bubble sending";
      item.dataset.key = key;
      var meta = doc.createElement("p");
      meta.className = "meta";
      meta.textContent = S.you + " · ";
      var state = doc.createElement("span");
      state.className = "state";
      state.textContent = S.sending;
      meta.appendChild(state);
      var body = doc.createElement("div");
      body.className = "text plain";
      body.textContent = text;
      item.appendChild(meta);
      item.appendChild(body);
      var empty = byId("no-messages");
      if (empty) empty.remove();
      list.appendChild(item);
      return item;
    }

    // One send through the JSON API; resolves with what the page should say about it.
    function post(text, key, tries) {
      return fetch(form.dataset.sendUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json", Accept: "application/json",
          "X-CSRFToken": csrfToken(), "Idempotency-Key": key
        },
        body: JSON.stringify({ text: text })
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          var code = body.error || "";
          if (response.status === 409 && code === "idempotency_key_in_flight" && tries < 120) {
            // The same message is on its way (another tab, a retry): wait for its answer.
            var wait = Number(response.headers.get("Retry-After") || 1) * 1000;
            return new Promise(function (done) { setTimeout(done, wait); }).then(function () {
              return post(text, key, tries + 1);
            });
          }
          return { status: response.status, code: code, body: body, headers: response.headers };
        });
      }, function () { return { status: 0, code: "network", body: {} }; });
    }

    // What a send's answer means for the page: returns whether the message is stored.
    function explain(answer) {
      var status = answer.status;
      var code = answer.code;
      if (status === 201) { setStatus(""); return true; }
      if (answer.body.operator_message) { setStatus(S.node_failed, "error"); return true; }
      if (status === 429) {
        countdown(Number(answer.body.retry_after || answer.headers.get("Retry-After") || 1));
      } else if (status === 401) {
        setStatus(S.session_expired, "error", { href: form.dataset.loginUrl, text: S.log_in });
      } else if (status === 403) {
        setStatus(S.forbidden, "error");
      } else if (status === 413) {
        setStatus(fill(S.too_long, { length: length(box.value), limit: maxLength }), "error");
      } else if (status === 422 && code === "idempotency_key_reused") {
        draft.key = newKey();
        saveDraft();
        setStatus(S.key_reused, "warn");
      } else if (status === 0) {
        setStatus(S.network, "error");
      } else if (status === 503) {
        setStatus(S.unavailable, "error");
      } else if (status >= 500) {
        setStatus(fill(S.server_error, { status: status }), "error");
      } else {
        setStatus(fill(S.refused, { detail: answer.body.detail || status }), "error");
      }
      return false;
    }

    function countdown(seconds) {
      blockedUntil = Date.now() + seconds * 1000;
      button.disabled = true;
      (function tick() {
        var left = Math.ceil((blockedUntil - Date.now()) / 1000);
        if (left <= 0) {
          button.disabled = locked;
          setStatus("");
          return;
        }
        setStatus(fill(S.rate_limited, { seconds: left }), "error");
        setTimeout(tick, 1000);
      })();
    }

    function lock(on) {
      locked = on;
      box.readOnly = on;
      button.disabled = on || Date.now() < blockedUntil;
      button.textContent = on ? S.sending : S.send;
    }

    function send() {
      var text = box.value;
      if (locked || inFlight[draft.key] || Date.now() < blockedUntil) return;
      if (!text) { box.focus(); return; }
      if (length(text) > maxLength) {
        setStatus(fill(S.too_long, { length: length(text), limit: maxLength }), "error");
        return;
      }
      if (nodePill && nodePill.dataset.status === "down" && !downWarned) {
        downWarned = true;
        setStatus(fill(S.node_down, { node: nodePill.dataset.node }), "warn");
        return;
      }
      var key = draft.key;
      draft.text = text;
      draft.attempted = true;
      saveDraft();
      inFlight[key] = true;
      lock(true);
      setStatus("");
      var pending = bubble(text, key);
      toBottom();
      // The message shows up stored (pending) well before a slow agent answers: look soon.
      schedule(800);
      post(text, key, 0).then(function (answer) {
        delete inFlight[key];
        var stored = explain(answer);
        if (draft.key === key) {
          if (stored) draftStored();
          lock(false);
        }
        if (!stored) pending.remove();
        return poll();
      }).then(function () {
        toBottom();
        if (!locked) box.focus();
      });
    }

    function retry(retryForm) {
      var item = retryForm.closest("li");
      var retryButton = retryForm.querySelector("button");
      retryButton.disabled = true;
      item.classList.add("sending");
      post(retryForm.elements.text.value, retryForm.elements.idempotency_key.value, 0).then(function (answer) {
        item.classList.remove("sending");
        retryButton.disabled = false;
        explain(answer);
        return poll();
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
      if (draft.attempted) {
        // Another text is another message: it must not reuse the key of one that may be stored.
        draft.key = newKey();
        draft.attempted = false;
      }
      draft.text = box.value;
      saveDraft();
      showCount();
    });
    list.addEventListener("submit", function (event) {
      if (!event.target.classList.contains("retry")) return;
      event.preventDefault();
      retry(event.target);
    });

    var older = byId("older");
    if (older) {
      older.addEventListener("click", function (event) {
        event.preventDefault();
        var label = older.textContent;
        older.textContent = S.loading;
        fetch(older.dataset.url + "?cursor=" + encodeURIComponent(older.dataset.cursor), {
          credentials: "same-origin", headers: { Accept: "application/json" }
        }).then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        }).then(function (body) {
          var height = doc.documentElement.scrollHeight;
          var template = doc.createElement("template");
          template.innerHTML = body.html;
          Array.prototype.slice.call(template.content.children).forEach(function (item) {
            if (byId(item.id)) item.remove();
          });
          decorate(template.content);
          list.insertBefore(template.content, list.firstChild);
          window.scrollBy(0, doc.documentElement.scrollHeight - height);
          older.textContent = label;
          if (body.next_cursor) {
            older.dataset.cursor = body.next_cursor;
            older.href = "?cursor=" + encodeURIComponent(body.next_cursor);
          } else {
            older.parentNode.remove();
          }
        }).catch(function () {
          older.textContent = label;
          setStatus(S.older_failed, "error");
        });
      });
    }

    // A draft restored after a reload may have been stored meanwhile.
    each(list, "li.msg[data-key]", function (item) { if (item.dataset.key === draft.key) draftStored(); });
    doc.addEventListener("visibilitychange", function () { if (!doc.hidden) poll(); });
    if (form.dataset.live === "1") {
      if (!location.hash) toBottom();
      schedule(POLL_MS);
    }
  }
})();
