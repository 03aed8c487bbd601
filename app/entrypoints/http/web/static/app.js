/* The chat page: client key, model picker, streamed answers, admin panel.
 *
 * Loaded as a file (the Content-Security-Policy allows no inline script). The client
 * key lives in memory, and in sessionStorage only when "remember" is ticked; the admin
 * secret only in its input field. Model output is rendered by SafeMarkdown (DOM nodes
 * and text nodes, never HTML).
 */
"use strict";

(function () {
  const KEY_STORAGE = "aiapi.key";
  const byId = (id) => document.getElementById(id);
  const state = { key: "", messages: [], controller: null, adminKey: null, expiry: null, countdown: null };

  // --- small helpers ---------------------------------------------------------------------------

  function setStatus(target, text, isError) {
    target.textContent = text || "";
    target.classList.toggle("error", Boolean(isError));
  }

  async function errorText(response) {
    let message = "";
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") message = body.error.message;
    } catch (_) {
      /* not JSON */
    }
    const retry = response.headers.get("retry-after");
    return response.status + ": " + (message || response.statusText || "error") +
      (retry ? " (retry in " + retry + " s)" : "");
  }

  function authHeaders() {
    return { Authorization: "Bearer " + state.key };
  }

  // --- the client key ----------------------------------------------------------------------------

  function rememberKey() {
    if (byId("remember").checked && state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  function useKey(value) {
    state.key = value.trim();
    byId("key").value = state.key;
    rememberKey();
    if (state.key) loadModels();
  }

  async function loadModels() {
    const select = byId("model");
    setStatus(byId("status"), "Loading models…");
    try {
      const response = await fetch("/v1/models", { headers: authHeaders(), cache: "no-store" });
      if (!response.ok) {
        setStatus(byId("status"), "Models: " + (await errorText(response)), true);
        return;
      }
      const body = await response.json();
      const chosen = select.value;
      select.replaceChildren(new Option("server default", ""));
      for (const model of body.data || []) {
        const label = model.id + (model.owned_by ? " (" + model.owned_by + ")" : "");
        select.appendChild(new Option(label, model.id));
      }
      select.value = Array.from(select.options).some((o) => o.value === chosen) ? chosen : "";
      select.disabled = false;
      setStatus(byId("status"), "Ready.");
    } catch (error) {
      setStatus(byId("status"), "Cannot reach the server: " + error.message, true);
    }
  }

  // --- messages --------------------------------------------------------------------------------

  function addMessage(role) {
    const article = document.createElement("article");
    article.className = "message " + role;
    const head = document.createElement("header");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    head.appendChild(who);
    const body = document.createElement("div");
    body.className = "body";
    const foot = document.createElement("footer");
    foot.className = "meta";
    article.append(head, body, foot);
    byId("messages").appendChild(article);
    return { article: article, head: head, body: body, foot: foot };
  }

  function scrollToEnd() {
    const messages = byId("messages");
    messages.scrollTop = messages.scrollHeight;
  }

  function renderInto(target, text) {
    target.replaceChildren(window.SafeMarkdown.render(text));
  }

  async function* serverSentEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).replace(/\r$/, "");
          buffer = buffer.slice(end + 1);
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return;
          try {
            yield JSON.parse(data);
          } catch (_) {
            /* a malformed event is skipped */
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function setBusy(busy) {
    byId("send").disabled = busy;
    byId("stop").disabled = !busy;
  }

  function usageText(usage) {
    return usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion = " +
      usage.total_tokens + " tokens";
  }

  async function send(prompt) {
    if (!state.key) {
      setStatus(byId("status"), "Enter the client key first.", true);
      byId("key").focus();
      return;
    }
    const mine = addMessage("user");
    mine.body.textContent = prompt;
    const conversation = state.messages; // "New chat" replaces it; this answer belongs to this one
    conversation.push({ role: "user", content: prompt });
    const answer = addMessage("assistant");
    answer.article.classList.add("streaming");
    scrollToEnd();

    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    let text = "";
    let usage = null;
    let model = null;
    let failure = null;
    let stopped = false;
    let pending = false;
    const render = () => {
      pending = false;
      renderInto(answer.body, text);
      scrollToEnd();
    };
    try {
      const request = { messages: conversation.slice(), stream: true, stream_options: { include_usage: true } };
      if (byId("model").value) request.model = byId("model").value;
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
        body: JSON.stringify(request),
        signal: controller.signal,
      });
      if (!response.ok) throw new Error(await errorText(response));
      const badge = document.createElement("span");
      badge.className = "badge provider-" + (response.headers.get("x-provider") || "unknown");
      badge.textContent = response.headers.get("x-provider") || "unknown";
      answer.head.appendChild(badge);
      for await (const event of serverSentEvents(response.body)) {
        if (event.error) throw new Error((event.error && event.error.message) || "error in the stream");
        if (event.model) model = event.model;
        if (event.usage) usage = event.usage;
        for (const choice of event.choices || []) {
          const delta = choice.delta && choice.delta.content;
          if (delta) {
            text += delta;
            if (!pending) {
              pending = true;
              requestAnimationFrame(render);
            }
          }
        }
      }
    } catch (error) {
      if (error.name === "AbortError") stopped = true;
      else failure = error.message;
    } finally {
      state.controller = null;
      setBusy(false);
      answer.article.classList.remove("streaming");
    }
    renderInto(answer.body, text);
    const meta = [];
    if (model) meta.push(model);
    if (usage) meta.push(usageText(usage));
    if (stopped) meta.push("stopped");
    answer.foot.textContent = meta.join(" · ");
    if (failure) {
      const problem = document.createElement("p");
      problem.className = "error";
      problem.textContent = failure;
      answer.body.appendChild(problem);
    }
    if (text) conversation.push({ role: "assistant", content: text });
    else conversation.pop(); // nothing came back: the question is not part of the context
    scrollToEnd();
  }

  // --- admin panel -----------------------------------------------------------------------------

  function formatLeft(milliseconds) {
    if (milliseconds <= 0) return "expired";
    let seconds = Math.floor(milliseconds / 1000);
    const days = Math.floor(seconds / 86400);
    seconds -= days * 86400;
    const hours = Math.floor(seconds / 3600);
    seconds -= hours * 3600;
    const minutes = Math.floor(seconds / 60);
    seconds -= minutes * 60;
    return "in " + days + " d " + hours + " h " + minutes + " min " + seconds + " s";
  }

  function tick() {
    byId("admin-countdown").textContent = formatLeft(state.expiry - Date.now());
  }

  function showAdminKey(body) {
    state.adminKey = body.api_key;
    state.expiry = Date.parse(body.expiry);
    byId("admin-key").textContent = body.api_key;
    byId("admin-expiry").textContent = new Date(state.expiry).toLocaleString();
    byId("admin-expiry").dateTime = body.expiry;
    byId("admin-key-box").hidden = false;
    tick();
    clearInterval(state.countdown);
    state.countdown = setInterval(tick, 1000);
  }

  async function adminCall(method, path) {
    const response = await fetch(path, {
      method: method,
      headers: { "admin-secret": byId("admin-secret").value },
      cache: "no-store",
    });
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  async function readKey() {
    setStatus(byId("admin-status"), "Reading the key…");
    try {
      showAdminKey(await adminCall("GET", "/current-key"));
      setStatus(byId("admin-status"), "");
    } catch (error) {
      setStatus(byId("admin-status"), error.message, true);
    }
  }

  async function rotateKey() {
    const confirmed = window.confirm(
      "Replace the client key now? Every client using the current key gets 401 until it fetches the new one.");
    if (!confirmed) return;
    const old = state.adminKey;
    try {
      showAdminKey(await adminCall("POST", "/rotate-key"));
      if (state.key && state.key === old) useKey(state.adminKey);
      setStatus(byId("admin-status"), "Rotated: the new key is in use.");
    } catch (error) {
      setStatus(byId("admin-status"), error.message, true);
    }
  }

  async function copyKey() {
    try {
      await navigator.clipboard.writeText(state.adminKey);
      setStatus(byId("admin-status"), "Copied.");
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents(byId("admin-key"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      setStatus(byId("admin-status"), "Selected: press Ctrl+C to copy.");
    }
  }

  // --- wiring ----------------------------------------------------------------------------------

  function start() {
    const saved = sessionStorage.getItem(KEY_STORAGE);
    if (saved) {
      byId("remember").checked = true;
      useKey(saved);
    } else {
      setStatus(byId("status"), "Enter the client key to start.");
    }
    byId("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      useKey(byId("key").value);
    });
    byId("remember").addEventListener("change", rememberKey);
    byId("prompt-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const prompt = byId("prompt").value.trim();
      if (!prompt || state.controller) return;
      byId("prompt").value = "";
      send(prompt);
    });
    byId("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        byId("prompt-form").requestSubmit();
      }
    });
    byId("stop").addEventListener("click", () => {
      if (state.controller) state.controller.abort();
    });
    byId("new-chat").addEventListener("click", () => {
      if (state.controller) state.controller.abort();
      state.messages = [];
      byId("messages").replaceChildren();
    });
    byId("admin-toggle").addEventListener("click", () => {
      const panel = byId("admin");
      panel.hidden = !panel.hidden;
      byId("admin-toggle").setAttribute("aria-expanded", String(!panel.hidden));
      if (!panel.hidden) byId("admin-secret").focus();
    });
    byId("admin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      readKey();
    });
    byId("copy-key").addEventListener("click", copyKey);
    byId("use-admin-key").addEventListener("click", () => useKey(state.adminKey));
    byId("rotate-key").addEventListener("click", rotateKey);
  }

  start();
})();
