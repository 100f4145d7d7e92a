// agm console: live tables (polling the admin API every 2 s) and actions.
// Every value is put in the page as text (textContent), never as HTML.
"use strict";
(function () {
  var catalogue = JSON.parse(document.getElementById("agm-i18n").textContent);
  function T(key, vars) {
    var text = catalogue[key] || key;
    Object.keys(vars || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(vars[name]));
    });
    return text;
  }
  var csrf = document.querySelector('meta[name="agm-csrf"]').content;
  var page = document.body.dataset.page;

  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: { "x-agm-csrf": csrf } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        if (r.status === 401) { location.href = "/ui/login"; }
        if (!r.ok) { throw new Error((json.error && json.error.message) || r.statusText); }
        return json;
      });
    });
  }
  function flash(text, bad) {
    var el = document.getElementById("flash");
    el.textContent = text;
    el.className = bad ? "flash bad" : "flash";
    el.hidden = false;
  }
  function failed(e) { flash(T("error") + ": " + e.message, true); }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (c) {
      var td = el("td");
      if (c instanceof Node) { td.appendChild(c); } else { td.textContent = c === null || c === undefined ? "" : String(c); }
      tr.appendChild(td);
    });
    return tr;
  }
  function fill(id, rows, columns) {
    var body = document.getElementById(id);
    body.replaceChildren.apply(body, rows.length ? rows : [row([T("empty")])]);
    if (!rows.length) { body.firstChild.firstChild.colSpan = columns; }
  }
  function button(label, onclick, cls) {
    var b = el("button", label, cls);
    b.type = "button";
    b.addEventListener("click", onclick);
    return b;
  }
  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) { return d + "d " + h + "h"; }
    if (h) { return h + "h " + m + "m"; }
    if (m) { return m + "m " + (s % 60) + "s"; }
    return s + "s";
  }
  // A key's limits in words, in the page's language.
  function limitsText(l) {
    var parts = [];
    if (l.models.length) { parts.push(l.models.join(",")); }
    if (l.rpm !== null) { parts.push(T("limit_rpm", { n: l.rpm })); }
    if (l.concurrency !== null) { parts.push(T("limit_concurrency", { n: l.concurrency })); }
    if (l.daily_requests !== null) { parts.push(T("limit_daily_requests", { n: l.daily_requests })); }
    if (l.daily_tokens !== null) { parts.push(T("limit_daily_tokens", { n: l.daily_tokens })); }
    if (l.expires_at) {
      parts.push(T(new Date(l.expires_at) <= new Date() ? "limit_expired" : "limit_expires", { at: when(l.expires_at) }));
    }
    return parts.length ? parts.join("; ") : T("limit_none");
  }
  // The limit fields filled in, as /api/keys takes them (numbers as numbers).
  function limitsFromForm() {
    var limits = {};
    document.querySelectorAll("#key-limits [data-limit]").forEach(function (input) {
      var value = input.value.trim();
      if (value === "") { return; }
      limits[input.dataset.limit] = input.type === "number" ? Number(value) : value;
    });
    return limits;
  }
  function clearLimits() {
    document.querySelectorAll("#key-limits [data-limit]").forEach(function (input) { input.value = ""; });
  }
  function when(iso) { return iso ? new Date(iso).toLocaleString(document.documentElement.lang) : ""; }

  function quotaBars(quota) {
    var box = el("div", null, "quota");
    if (!quota || !quota.models.length) { box.textContent = T("quota_unknown"); return box; }
    quota.windows.concat(quota.models).forEach(function (q) {
      var line = el("div", null, "q");
      var frac = q.remaining_fraction === null || q.remaining_fraction === undefined ? 0 : q.remaining_fraction;
      line.appendChild(el("span", q.model || q.window || q.bucket, "qn"));
      var bar = el("span", null, "bar");
      var fillEl = el("span", null, frac < 0.2 ? "low" : "");
      fillEl.style.width = Math.round(frac * 100) + "%";
      bar.appendChild(fillEl);
      line.appendChild(bar);
      line.appendChild(el("span", Math.round(frac * 100) + "%", "qp"));
      if (q.reset_time) {
        line.appendChild(el("span", T("quota_resets_in", { time: duration(new Date(q.reset_time) - Date.now()) }), "muted"));
      }
      box.appendChild(line);
    });
    return box;
  }

  // The Usage page: /api/usage for the chosen range, bucket and group, drawn as a
  // table and an SVG bar chart of requests (errors in red) per bucket.
  function usageQuery() {
    return "since=" + encodeURIComponent(document.getElementById("usage-since").value) +
      "&bucket=" + encodeURIComponent(document.getElementById("usage-bucket").value) +
      "&group=" + encodeURIComponent(document.getElementById("usage-group").value);
  }
  // Usage sums the request log: asked again every 10 s, or when the choice changes.
  var usageShown = { query: null, at: 0 };
  function usage() {
    var query = usageQuery();
    if (query === usageShown.query && Date.now() - usageShown.at < 10000) { return Promise.resolve(); }
    usageShown = { query: query, at: Date.now() };
    document.getElementById("usage-csv").href = "/api/usage?format=csv&" + query;
    return api("GET", "/api/usage?" + query).then(function (data) {
      // An answer to an earlier choice, overtaken by the current one: not shown.
      if (query !== usageQuery()) { return; }
      var totals = { requests: 0, success: 0, tokens_in: 0, tokens_out: 0 };
      var buckets = {};
      data.rows.forEach(function (r) {
        totals.requests += r.requests;
        totals.success += r.successes;
        totals.tokens_in += r.input_tokens;
        totals.tokens_out += r.output_tokens;
        var b = buckets[r.start] || (buckets[r.start] = { requests: 0, errors: 0 });
        b.requests += r.requests;
        b.errors += r.errors;
      });
      document.getElementById("usage-total").textContent = T("usage_total", totals);
      chart(Object.keys(buckets).sort().map(function (start) {
        return { start: start, requests: buckets[start].requests, errors: buckets[start].errors };
      }));
      fill("usage-rows", data.rows.map(function (r) {
        var group = data.group === "none" ? "" : (r.name ? r.name + " (" + r.group + ")" : (r.group || T("usage_no_group")));
        var rate = r.requests ? Math.round(100 * r.successes / r.requests) + "%" : "";
        return row([when(r.start), group, r.requests, rate, r.input_tokens, r.output_tokens, r.p50_ms, r.p95_ms, r.p99_ms]);
      }), 9);
    });
  }
  function chart(points) {
    var svg = document.getElementById("usage-chart");
    var ns = "http://www.w3.org/2000/svg";
    // Drawn at the element's own size, so the labels are not stretched.
    var width = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 600), height = 180, top = 14, bottom = 16;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var title = svg.querySelector("title");
    svg.replaceChildren(title);
    function shape(tag, attrs, text) {
      var node = document.createElementNS(ns, tag);
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
      if (text !== undefined) { node.textContent = String(text); }
      svg.appendChild(node);
      return node;
    }
    if (!points.length) { shape("text", { x: 4, y: height / 2 }, T("empty")); return; }
    var max = Math.max.apply(null, points.map(function (p) { return p.requests; })) || 1;
    var slot = width / points.length, scale = (height - top - bottom) / max;
    points.forEach(function (p, i) {
      var w = Math.max(1, Math.min(slot * 0.8, 48)), x = i * slot + (slot - w) / 2;
      var h = p.requests * scale, e = p.errors * scale;
      shape("rect", { x: x, y: height - bottom - h, width: w, height: h, "class": "req" })
        .appendChild(document.createElementNS(ns, "title")).textContent = when(p.start) + ": " + p.requests + " / " + p.errors;
      if (e > 0) { shape("rect", { x: x, y: height - bottom - e, width: w, height: e, "class": "err" }); }
    });
    shape("text", { x: 2, y: 10 }, max);
    shape("text", { x: 2, y: height - 2 }, when(points[0].start));
    shape("text", { x: width - 2, y: height - 2, "text-anchor": "end" }, when(points[points.length - 1].start));
  }

  var refreshers = {
    overview: function () {
      return api("GET", "/api/health").then(function (h) {
        document.getElementById("h-status").textContent = h.status === "ready" ? T("status_ready") : T("status_not_ready");
        document.getElementById("h-upstream").textContent = h.upstream;
        document.getElementById("h-accounts").textContent = Object.keys(h.accounts).map(function (k) {
          return h.accounts[k] + " " + T("state_" + k);
        }).join(", ") || "0";
        document.getElementById("h-cooldowns").textContent = h.cooldowns.length;
        document.getElementById("h-circuits").textContent = h.open_circuits.length;
        document.getElementById("h-signatures").textContent = Math.round(h.signature_cache.hit_rate * 100) + "%";
        document.getElementById("h-discovery").textContent = h.discovery.attempts ? Math.round(h.discovery.success_rate * 100) + "%" : "-";
        document.getElementById("h-scheduling").textContent = h.scheduling;
        var drift = h.client_version_refused;
        document.getElementById("drift-banner").hidden = !drift;
        document.getElementById("drift-text").textContent = drift ? drift.sent + ": " + drift.message + " " + drift.fix : "";
        fill("cooldown-rows", h.cooldowns.map(function (c) {
          return row([c.account, c.model, c.reason, duration(c.remaining_ms)]);
        }), 4);
      });
    },
    accounts: function () {
      return api("GET", "/api/accounts").then(function (data) {
        fill("account-rows", data.accounts.map(function (a) {
          var actions = el("span", null, "actions");
          if (a.state === "active") {
            actions.appendChild(button(T("btn_disable"), function () { act("POST", "/api/accounts/" + a.id + "/disable", {}); }));
          } else {
            actions.appendChild(button(T("btn_enable"), function () { act("POST", "/api/accounts/" + a.id + "/enable"); }));
          }
          actions.appendChild(button(T("btn_remove"), function () {
            if (confirm(T("confirm_remove"))) { act("DELETE", "/api/accounts/" + a.id); }
          }, "danger"));
          var state = el("span", T("state_" + a.state), "state " + a.state);
          if (a.reason) { state.title = a.reason; }
          return row([a.email, a.id, a.pool, a.tier || "", state, quotaBars(a.quota), actions]);
        }), 7);
      });
    },
    keys: function () {
      var gemini = document.getElementById("gemini-keys");
      gemini.textContent = T("keys_gemini_text", { n: gemini.dataset.count });
      return api("GET", "/api/keys").then(function (data) {
        fill("key-rows", data.keys.map(function (k) {
          var actions = el("span");
          if (!k.revoked_at) {
            actions.appendChild(button(T("btn_set_limits"), function () {
              api("PATCH", "/api/keys/" + k.id, { limits: limitsFromForm() }).then(function () {
                flash(T("keys_limits_set", { id: k.id }));
                clearLimits();
                return refresh();
              }).catch(failed);
            }));
            actions.appendChild(button(T("btn_revoke"), function () {
              if (confirm(T("confirm_revoke"))) { act("DELETE", "/api/keys/" + k.id); }
            }, "danger"));
          }
          return row([k.id, k.name, k.prefix + "…", limitsText(k.limits), when(k.created_at), k.last_used_at ? when(k.last_used_at) : T("never"), when(k.revoked_at), actions]);
        }), 8);
      });
    },
    logs: function () {
      return api("GET", "/api/logs?limit=100").then(function (data) {
        fill("log-rows", data.requests.map(function (r) {
          var model = r.upstream_model && r.upstream_model !== r.client_model ? r.client_model + " → " + r.upstream_model : r.client_model;
          var status = el("span", r.status + (r.error_class ? " " + r.error_class : ""), r.status >= 400 ? "bad" : "ok");
          return row([when(r.at), r.route, model, r.account_id || "-", status, r.attempts, r.latency_ms, r.overhead_ms === null ? "-" : r.overhead_ms.toFixed(2)]);
        }), 8);
      });
    },
    audit: function () {
      return api("GET", "/api/audit?limit=100").then(function (data) {
        fill("audit-rows", data.events.map(function (e) {
          return row([when(e.at), e.kind, e.subject, e.detail]);
        }), 4);
      });
    },
    models: function () {
      return api("GET", "/api/models").then(function (data) {
        fill("model-rows", data.models.map(function (m) {
          return row([m.id, m.display_name || "", m.accounts.join(" "), m.aliases.join(" ")]);
        }), 4);
      });
    },
    usage: function () { return usage(); }
  };

  function refresh() {
    var work = refreshers[page] ? refreshers[page]() : Promise.resolve();
    return Promise.all([work, banner(), updateBanner()]).catch(failed);
  }
  function act(method, path, body) {
    return api(method, path, body).then(function (answer) {
      flash(answer && answer.warning ? answer.warning : T("done"), Boolean(answer && answer.warning));
      return refresh();
    }).catch(failed);
  }

  function banner() {
    return api("GET", "/api/safe-mode").then(function (s) {
      var node = document.getElementById("safe-mode-banner");
      var since = s.status.since || "on";
      var dismissed = sessionStorage.getItem("agm-safe-mode-dismissed") === String(since);
      node.hidden = !s.status.active || dismissed;
      document.getElementById("safe-mode-reason").textContent = s.status.reason || "";
      document.getElementById("safe-mode-no-keys").hidden = s.gemini_api_keys > 0;
      node.dataset.since = since;
      node.dataset.manual = String(Boolean(s.manual));
    });
  }
  function updateBanner() {
    return api("GET", "/api/updates").then(function (u) {
      var node = document.getElementById("update-banner");
      node.hidden = !u.show;
      if (u.show && u.latest) {
        node.dataset.version = u.latest.version;
        document.getElementById("update-text").textContent = T("banner_update_text", { version: u.latest.version, current: u.current });
        document.getElementById("update-command").textContent = u.command || "";
      }
    });
  }
  document.getElementById("update-dismiss").addEventListener("click", function () {
    var version = document.getElementById("update-banner").dataset.version;
    act("POST", "/api/updates/dismiss", version ? { version: version } : {});
  });
  // Retry Now: probe Antigravity at once; a safe mode turned on by hand is turned off.
  document.getElementById("safe-mode-retry").addEventListener("click", function () {
    var manual = document.getElementById("safe-mode-banner").dataset.manual === "true";
    act("POST", "/api/safe-mode", { action: manual ? "disable" : "retry" });
  });
  document.getElementById("safe-mode-dismiss").addEventListener("click", function () {
    var node = document.getElementById("safe-mode-banner");
    sessionStorage.setItem("agm-safe-mode-dismissed", node.dataset.since || "on");
    node.hidden = true;
  });
  document.getElementById("sign-out").addEventListener("click", function () {
    api("POST", "/ui/logout").finally(function () { location.href = "/ui/login"; });
  });
  var usageForm = document.getElementById("usage-form");
  if (usageForm) {
    usageForm.addEventListener("change", function () { refresh(); });
  }
  var form = document.getElementById("create-key");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      api("POST", "/api/keys", { name: document.getElementById("key-name").value, limits: limitsFromForm() }).then(function (key) {
        document.getElementById("new-secret-value").textContent = key.secret;
        document.getElementById("new-secret").hidden = false;
        document.getElementById("key-name").value = "";
        clearLimits();
        return refresh();
      }).catch(failed);
    });
  }
  var signIn = document.getElementById("sign-in-google");
  if (signIn) {
    // Google's page, whose redirect comes back to /ui/oauth/callback on this console.
    signIn.addEventListener("click", function () {
      api("POST", "/api/accounts/sign-in", {}).then(function (answer) {
        location.href = answer.url;
      }).catch(failed);
    });
  }
  var importForm = document.getElementById("import-token");
  if (importForm) {
    importForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = document.getElementById("import-refresh-token");
      var email = document.getElementById("import-email");
      api("POST", "/api/accounts/import", { refresh_token: token.value, email: email.value }).then(function (answer) {
        token.value = "";
        email.value = "";
        flash(answer.summary, answer.state !== "active");
        return refresh();
      }).catch(failed);
    });
  }
  var settingsForm = document.getElementById("settings-form");
  if (settingsForm) {
    settingsForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var changes = {};
      Array.prototype.forEach.call(settingsForm.querySelectorAll("[data-initial]"), function (field) {
        if (field.value === field.dataset.initial) { return; }
        changes[field.name] = field.dataset.kind === "number" ? Number(field.value) : field.value;
      });
      if (!Object.keys(changes).length) { flash(T("settings_unchanged")); return; }
      api("POST", "/api/settings", { changes: changes }).then(function (answer) {
        Array.prototype.forEach.call(settingsForm.querySelectorAll("[data-initial]"), function (field) {
          field.dataset.initial = field.value;
        });
        document.getElementById("settings").textContent = JSON.stringify(answer.config, null, 2);
        flash(T("settings_saved", { keys: answer.changed.join(", ") }));
      }).catch(failed);
    });
  }
  refresh();
  setInterval(refresh, 2000);
})();
