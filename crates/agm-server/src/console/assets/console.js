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
      chart("usage-chart", Object.keys(buckets).sort().map(function (start) {
        return { start: start, requests: buckets[start].requests, errors: buckets[start].errors };
      }));
      fill("usage-rows", data.rows.map(function (r) {
        var group = data.group === "none" ? "" : (r.name ? r.name + " (" + r.group + ")" : (r.group || T("usage_no_group")));
        var rate = r.requests ? Math.round(100 * r.successes / r.requests) + "%" : "";
        return row([when(r.start), group, r.requests, rate, r.input_tokens, r.output_tokens, r.p50_ms, r.p95_ms, r.p99_ms]);
      }), 9);
    });
  }
  // Bars per bucket (`requests`, with `errors` drawn over them in red), into the SVG
  // element `id`.
  function chart(id, points) {
    var svg = document.getElementById(id);
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

  // The overview's last hour, per minute, from the request log (every replica's, in
  // cluster mode): asked every 10 s, as the Usage page is.
  var trafficAt = 0;
  function traffic() {
    if (Date.now() - trafficAt < 10000) { return Promise.resolve(); }
    trafficAt = Date.now();
    var hour = api("GET", "/api/usage?since=1h&bucket=all");
    return Promise.all([hour, api("GET", "/api/usage?since=1h&bucket=minute")]).then(function (answers) {
      var all = answers[0].rows[0], data = answers[1];
      var t = all ? {
        requests: all.requests,
        rate: Math.round(100 * all.successes / all.requests) + "%",
        p50: all.p50_ms, p95: all.p95_ms,
        overhead: all.overhead_avg_ms === null ? "-" : all.overhead_avg_ms.toFixed(2)
      } : { requests: 0, rate: "-", p50: "-", p95: "-", overhead: "-" };
      document.getElementById("traffic-summary").textContent = T("overview_traffic_summary", t);
      chart("traffic-requests", data.rows.map(function (r) {
        return { start: r.start, requests: r.requests, errors: r.errors };
      }));
      chart("traffic-latency", data.rows.map(function (r) {
        return { start: r.start, requests: r.p95_ms, errors: 0 };
      }));
    });
  }

  var refreshers = {
    overview: function () {
      traffic();
      return api("GET", "/api/health").then(function (h) {
        document.getElementById("h-status").textContent = h.status === "ready" ? T("status_ready") : T("status_not_ready");
        document.getElementById("h-upstream").textContent = h.upstream;
        document.getElementById("h-accounts").textContent = Object.keys(h.accounts).map(function (k) {
          return h.accounts[k] + " " + T("state_" + k);
        }).join(", ") || "0";
        document.getElementById("h-cooldowns").textContent = h.cooldowns.length;
        document.getElementById("h-circuits").textContent = h.open_circuits.length;
        document.getElementById("h-sticky").textContent = h.sticky_sessions;
        document.getElementById("h-signatures").textContent = Math.round(h.signature_cache.hit_rate * 100) + "%";
        document.getElementById("h-discovery").textContent = h.discovery.attempts ? Math.round(h.discovery.success_rate * 100) + "%" : "-";
        document.getElementById("h-scheduling").textContent = h.scheduling;
        // Accounts Google blocked until someone verifies them: each with its page.
        var blocked = h.needs_verification;
        document.getElementById("verify-banner").hidden = !blocked.length;
        document.getElementById("verify-list").replaceChildren.apply(document.getElementById("verify-list"), blocked.map(function (a) {
          var link = el("a", a.email + ": " + T("banner_verify_open"));
          link.href = "/ui/accounts/" + encodeURIComponent(a.id);
          var item = el("span", null, "verify-item");
          item.appendChild(link);
          return item;
        }));
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
          var state = el("span", T("state_" + a.state), "state " + a.state);
          if (a.reason) { state.title = a.reason; }
          var link = el("a", a.email);
          link.href = "/ui/accounts/" + encodeURIComponent(a.id);
          return row([link, a.id, a.pool, a.tier || "", state, quotaBars(a.quota), accountActions(a, false)]);
        }), 7);
      });
    },
    account: function () {
      var wanted = document.getElementById("account-page").dataset.id;
      return api("GET", "/api/accounts/" + encodeURIComponent(wanted)).then(function (a) {
        document.getElementById("account-email").textContent = a.email;
        var facts = document.getElementById("account-facts");
        facts.replaceChildren();
        fact(facts, T("col_id"), a.id);
        fact(facts, T("col_pool"), a.pool);
        fact(facts, T("col_tier"), a.tier);
        fact(facts, T("account_project"), a.project);
        var state = el("span", T("state_" + a.state) + (a.reason ? ": " + a.reason : ""), "state " + a.state);
        facts.appendChild(el("dt", T("col_state")));
        var dd = el("dd");
        dd.appendChild(state);
        facts.appendChild(dd);
        fact(facts, T("col_created"), when(a.created_at));
        var verify = document.getElementById("account-verify");
        verify.hidden = !a.verify_url;
        if (a.verify_url) {
          var link = document.getElementById("account-verify-link");
          link.textContent = a.verify_url;
          link.href = /^https:\/\//.test(a.verify_url) ? a.verify_url : "#";
        }
        document.getElementById("account-actions").replaceChildren(accountActions(a, true));
        document.getElementById("account-all-requests").href = "/ui/logs?since=&account=" + encodeURIComponent(a.id);
        document.getElementById("account-quota").replaceChildren(quotaBars(a.quota));
        document.getElementById("account-quota-fetched").textContent = a.quota ? T("account_quota_fetched", { time: when(a.quota.fetched_at) }) : "";
        fill("account-cooldowns", a.cooldowns.map(function (c) {
          return row([c.model, c.reason, duration(c.remaining_ms)]);
        }), 3);
        return Promise.all([
          api("GET", "/api/logs?limit=20&account=" + encodeURIComponent(a.id)),
          api("GET", "/api/audit?limit=20&account=" + encodeURIComponent(a.id))
        ]).then(function (both) {
          fill("account-requests", both[0].requests.map(function (r) {
            var status = el("span", r.status + (r.error_class ? " " + r.error_class : ""), r.status >= 400 ? "bad" : "ok");
            return row([when(r.at), r.route, r.client_model, status, r.attempts, r.latency_ms]);
          }), 6);
          fill("account-audit", both[1].events.map(function (e) {
            return row([when(e.at), e.kind, e.detail]);
          }), 3);
        });
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
      return api("GET", "/api/logs?" + filterQuery("log-filter", 100)).then(function (data) {
        fill("log-rows", data.requests.map(function (r) {
          var model = r.upstream_model && r.upstream_model !== r.client_model ? r.client_model + " → " + r.upstream_model : r.client_model;
          var status = el("span", r.status + (r.error_class ? " " + r.error_class : ""), r.status >= 400 ? "bad" : "ok");
          var tr = row([when(r.at), r.route, model, r.account_email || r.account_id || "-", status, r.attempts, r.latency_ms, r.overhead_ms === null ? "-" : r.overhead_ms.toFixed(2)]);
          tr.dataset.id = r.id;
          tr.addEventListener("click", function () { showDetail(r.id); });
          return tr;
        }), 8);
      });
    },
    audit: function () {
      return api("GET", "/api/audit?" + filterQuery("audit-filter", 100)).then(function (data) {
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

  // Filters: the form's non-empty fields as the API's query (and the page's address,
  // so a filtered view can be bookmarked or shared).
  function filterQuery(formId, limit) {
    var form = document.getElementById(formId);
    var query = new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.value) { query.set(field.name, field.value); }
    });
    var shown = query.toString();
    if (location.search.replace(/^\?/, "") !== shown) {
      history.replaceState(null, "", location.pathname + (shown ? "?" + shown : ""));
    }
    query.set("limit", String(limit));
    return query.toString();
  }
  function setUpFilter(formId, accountSelect) {
    var form = document.getElementById(formId);
    if (!form) { return Promise.resolve(); }
    var given = new URLSearchParams(location.search);
    var apply = function () {
      given.forEach(function (value, name) {
        if (form.elements[name] && name !== "lang") { form.elements[name].value = value; }
      });
    };
    apply();
    form.addEventListener("change", function () { refresh(); });
    form.addEventListener("input", function (event) { if (event.target.tagName === "INPUT") { refresh(); } });
    form.addEventListener("submit", function (event) { event.preventDefault(); refresh(); });
    form.addEventListener("reset", function () { given = new URLSearchParams(); setTimeout(refresh, 0); });
    // The account choice: every account by e-mail (the value is its id).
    return api("GET", "/api/accounts").then(function (data) {
      var select = document.getElementById(accountSelect);
      data.accounts.forEach(function (a) {
        var option = el("option", a.email);
        option.value = a.id;
        select.appendChild(option);
      });
      apply();
    });
  }
  function fact(list, label, value) {
    list.appendChild(el("dt", label));
    list.appendChild(el("dd", value === null || value === undefined || value === "" ? "-" : value));
  }
  function showDetail(id) {
    return api("GET", "/api/logs/" + id).then(function (d) {
      var r = d.request;
      var facts = document.getElementById("detail-facts");
      facts.replaceChildren();
      document.getElementById("detail-id").textContent = "#" + r.id;
      fact(facts, T("col_time"), when(r.at));
      fact(facts, T("filter_api"), r.api + " " + r.route);
      fact(facts, T("col_model"), r.client_model + (r.upstream_model && r.upstream_model !== r.client_model ? " → " + r.upstream_model : ""));
      fact(facts, T("col_status"), r.status + (r.error_class ? " " + r.error_class : ""));
      fact(facts, T("detail_served_by"), r.account_email || r.account_id);
      fact(facts, T("detail_client_key"), r.key_name || r.key_id);
      fact(facts, T("col_tokens_in"), String(r.input_tokens));
      fact(facts, T("col_tokens_out"), String(r.output_tokens));
      fact(facts, T("col_calls"), r.attempts);
      fact(facts, T("detail_latency"), r.latency_ms + " ms");
      fact(facts, T("detail_overhead"), r.overhead_ms === null ? null : r.overhead_ms.toFixed(3) + " ms");
      fact(facts, T("detail_waited"), d.waited_ms === null ? null : d.waited_ms + " ms");
      fact(facts, T("detail_context"), r.context_scaled || T("detail_not_scaled"));
      var note = document.getElementById("detail-calls-note");
      note.hidden = Boolean(d.calls);
      note.textContent = d.calls ? "" : T("detail_calls_gone");
      fill("detail-calls", (d.calls || []).map(function (c, i) {
        var outcome = el("span", c.error_class || T("detail_answered"), c.error_class ? "bad" : "ok");
        return row([i + 1, c.account_email || c.account_id || T("detail_gemini_api"), c.waited_ms + " ms", outcome]);
      }), 4);
      fill("detail-audit", d.audit.map(function (e) {
        return row([when(e.at), e.kind, e.subject, e.detail]);
      }), 4);
      var section = document.getElementById("log-detail");
      section.hidden = false;
      section.scrollIntoView({ block: "nearest" });
    }).catch(failed);
  }
  var detailClose = document.getElementById("detail-close");
  if (detailClose) {
    detailClose.addEventListener("click", function () { document.getElementById("log-detail").hidden = true; });
  }

  // An account's buttons (the list's row, or its own page).
  function accountActions(a, own) {
    var actions = el("span", null, "actions");
    var path = "/api/accounts/" + encodeURIComponent(a.id);
    if (a.state === "active") {
      actions.appendChild(button(T("btn_disable"), function () { act("POST", path + "/disable", {}); }));
      actions.appendChild(button(T("btn_recheck_quota"), function () { act("POST", path + "/quota"); }));
    } else {
      actions.appendChild(button(T("btn_enable"), function () { act("POST", path + "/enable"); }));
    }
    if (a.cooldowns.length) {
      actions.appendChild(button(T("btn_clear_cooldowns"), function () { act("POST", path + "/clear-cooldowns"); }));
    }
    actions.appendChild(button(T("btn_export"), function () { exportAccounts([a.id]); }));
    actions.appendChild(button(T("btn_remove"), function () {
      if (confirm(T("confirm_remove"))) {
        act("DELETE", path).then(function () { if (own) { location.href = "/ui/accounts"; } });
      }
    }, "danger"));
    return actions;
  }
  // The account file `agm accounts export` writes, refresh tokens included: only after
  // the admin says yes, downloaded from memory (never a link another page could open).
  function exportAccounts(ids) {
    if (!confirm(T("confirm_export"))) { return; }
    var body = ids ? { confirm: true, accounts: ids } : { confirm: true };
    api("POST", "/api/accounts/export", body).then(function (file) {
      var blob = new Blob([JSON.stringify(file, null, 2) + "\n"], { type: "application/json" });
      var link = el("a");
      link.href = URL.createObjectURL(blob);
      link.download = "agm-accounts.json";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
      flash(T("export_done", { n: file.accounts.length }), true);
    }).catch(failed);
  }

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
  var fileForm = document.getElementById("import-file");
  if (fileForm) {
    fileForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = document.getElementById("import-file-input");
      if (!input.files.length) { return; }
      input.files[0].text().then(function (text) {
        return api("POST", "/api/accounts/import", { file: text });
      }).then(function (answer) {
        input.value = "";
        var lines = [answer.summary].concat(answer.imported.map(function (a) { return a.summary; }))
          .concat(answer.refused.map(function (r) { return T("import_refused", { label: r.label, reason: r.reason }); }));
        flash(lines.join(" · "), answer.refused.length > 0);
        return refresh();
      }).catch(failed);
    });
  }
  var clearAll = document.getElementById("clear-all-cooldowns");
  if (clearAll) {
    clearAll.addEventListener("click", function () { act("POST", "/api/accounts/clear-cooldowns"); });
  }
  var exportAll = document.getElementById("export-all");
  if (exportAll) {
    exportAll.addEventListener("click", function () { exportAccounts(null); });
  }
  var settingsForm = document.getElementById("settings-form");
  if (settingsForm) {
    settingsForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var changes = {};
      Array.prototype.forEach.call(settingsForm.querySelectorAll("[data-initial]"), function (field) {
        if (field.value === field.dataset.initial) { return; }
        var kind = field.dataset.kind;
        changes[field.name] = kind === "number" ? Number(field.value) : kind === "bool" ? field.value === "true" : field.value;
      });
      if (!Object.keys(changes).length) { flash(T("settings_unchanged")); return; }
      saveSettings(changes).then(function () {
        Array.prototype.forEach.call(settingsForm.querySelectorAll("[data-initial]"), function (field) {
          field.dataset.initial = field.value;
        });
      }).catch(failed);
    });
  }
  // Saves `changes`, says what applies now and what at the next start.
  function saveSettings(changes) {
    return api("POST", "/api/settings", { changes: changes }).then(function (answer) {
      document.getElementById("settings").textContent = JSON.stringify(answer.config, null, 2);
      var waiting = Object.keys(answer.pending_restart);
      document.getElementById("settings-pending").hidden = !waiting.length;
      document.getElementById("settings-pending-keys").textContent = waiting.join(", ");
      var text = T("settings_saved", { keys: answer.changed.join(", ") });
      if (answer.restart_required.length) {
        text += " " + T("settings_saved_restart", { keys: answer.restart_required.join(", ") });
      }
      flash(text);
      return refresh();
    });
  }
  // The model map and the Gemini API keys: lists changed one entry at a time.
  var currentMap = {};
  refreshers.settings = function () {
    return api("GET", "/api/settings").then(function (s) {
      currentMap = s.config.models.map;
      fill("model-map-rows", Object.keys(currentMap).map(function (from) {
        return row([from, currentMap[from], button(T("btn_remove"), function () {
          var map = Object.assign({}, currentMap);
          delete map[from];
          saveSettings({ "models.map": map }).catch(failed);
        }, "danger")]);
      }), 3);
      var keys = s.pending_restart["safe_mode.gemini_api_keys"] || s.config.safe_mode.gemini_api_keys;
      fill("gemini-key-rows", keys.map(function (masked) {
        return row([masked, button(T("btn_remove"), function () {
          if (confirm(T("confirm_remove_key"))) {
            saveSettings({ "safe_mode.gemini_api_keys": { remove: [masked] } }).catch(failed);
          }
        }, "danger")]);
      }), 2);
    });
  };
  var mapForm = document.getElementById("model-map-add");
  if (mapForm) {
    mapForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var map = Object.assign({}, currentMap);
      map[document.getElementById("model-map-from").value.trim()] = document.getElementById("model-map-to").value.trim();
      saveSettings({ "models.map": map }).then(function () {
        document.getElementById("model-map-from").value = "";
        document.getElementById("model-map-to").value = "";
      }).catch(failed);
    });
  }
  var keyForm = document.getElementById("gemini-key-add");
  if (keyForm) {
    keyForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = document.getElementById("gemini-key-value");
      saveSettings({ "safe_mode.gemini_api_keys": { add: [input.value.trim()] } }).then(function () {
        input.value = "";
      }).catch(failed);
    });
  }
  Promise.all([setUpFilter("log-filter", "log-filter-account"), setUpFilter("audit-filter", "audit-filter-account")])
    .catch(failed)
    .then(function () {
      refresh();
      setInterval(refresh, 2000);
    });
})();
