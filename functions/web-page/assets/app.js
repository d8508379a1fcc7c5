// ViralClip — the AI Viral Clip page. Plain JavaScript; talks to the API on this origin.
"use strict";

(function () {
  const TOKEN_KEY = "viralclip.session";
  const POLL_MS = 2000;
  const PAGE_SIZE = 20;
  const CONFIG_FIELDS = ["video_type", "aspect_ratio", "clip_length_preset", "subtitle"];

  const $ = (id) => document.getElementById(id);
  let session = null;          // {token, email}
  let mode = "signin";         // or "signup"
  let items = [];              // loaded videos, newest first
  let nextCursor = null;
  let pollTimer = null;
  const confirming = new Set(); // ids of videos whose delete waits for an answer
  let detailOpener = null;     // the control that opened the detail view, focused again on close

  // ---- session --------------------------------------------------------------------------
  function loadSession() {
    try { session = JSON.parse(localStorage.getItem(TOKEN_KEY)); } catch (_) { session = null; }
    if (!session || !session.token) session = null;
  }
  function saveSession(s) {
    session = s;
    if (s) localStorage.setItem(TOKEN_KEY, JSON.stringify(s)); else localStorage.removeItem(TOKEN_KEY);
  }

  // ---- messages -------------------------------------------------------------------------
  function showAlert(text, kind) {
    const el = $("alert");
    el.textContent = text;
    el.className = "alert" + (kind === "info" ? " info" : "");
    el.hidden = !text;
  }
  function clearFieldErrors(form) {
    form.querySelectorAll(".field-error").forEach((p) => { p.hidden = true; p.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
  }
  function setFieldError(field, text) {
    const p = $(field + "-error");
    if (!p) return false;
    p.textContent = text.charAt(0).toUpperCase() + text.slice(1) + ".";
    p.hidden = false;
    const input = $(field);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", field + "-error");
    }
    return true;
  }
  // Shows an API error: field messages next to their fields, anything else at the top.
  function showError(err, fieldAliases) {
    const fields = err && err.details && err.details.fields;
    let unplaced = [];
    if (fields) {
      for (const [name, msg] of Object.entries(fields)) {
        const target = (fieldAliases && fieldAliases[name]) || name;
        if (!setFieldError(target, msg)) unplaced.push(name + ": " + msg);
      }
      if (unplaced.length) showAlert(unplaced.join(" · "));
      const first = document.querySelector("[aria-invalid='true']");
      if (first) first.focus();
    } else if (err && err.code === "rate_limited") {
      // a limit of the account's or of sign-ins: the message names it and says when
      showAlert(sentence(err.message));
    } else {
      showAlert((err && err.message) || "Something went wrong. Please try again.");
    }
  }
  function sentence(text) {
    const t = String(text || "").trim();
    return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".");
  }

  // ---- API ------------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = {};
    if (session) headers["Authorization"] = "Bearer " + session.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw { message: "The server cannot be reached. Check your connection and try again." };
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { /* empty body */ }
    if (resp.ok) return data;
    const err = (data && data.error) || { message: "The server answered " + resp.status + "." };
    err.status = resp.status;
    if (resp.status === 401 && session) {
      signOut("Your session has ended. Please sign in again.");
    }
    throw err;
  }

  // ---- views ----------------------------------------------------------------------------
  function render() {
    const signedIn = !!session;
    $("auth-view").hidden = signedIn;
    $("app-view").hidden = !signedIn;
    $("account").hidden = !signedIn;
    if (signedIn) {
      $("account-email").textContent = session.email;
      refresh(true);
    } else {
      stopPolling();
      items = []; nextCursor = null;
      $("videos").replaceChildren();
    }
  }

  function setMode(m) {
    mode = m;
    $("tab-signin").setAttribute("aria-selected", String(m === "signin"));
    $("tab-signup").setAttribute("aria-selected", String(m === "signup"));
    $("auth-submit").textContent = m === "signin" ? "Sign in" : "Create account";
    $("password").setAttribute("autocomplete", m === "signin" ? "current-password" : "new-password");
    $("password-hint").hidden = m === "signin";
    clearFieldErrors($("auth-form"));
    showAlert("");
  }

  function signOut(message) {
    saveSession(null);
    render();
    showAlert(message || "", "info");
    $("email").focus();
  }

  // ---- auth -----------------------------------------------------------------------------
  async function onAuthSubmit(e) {
    e.preventDefault();
    const form = $("auth-form");
    clearFieldErrors(form);
    showAlert("");
    const email = $("email").value.trim();
    const password = $("password").value;
    let bad = false;
    if (!email) { setFieldError("email", "enter your email"); bad = true; }
    if (!password) { setFieldError("password", "enter your password"); bad = true; }
    if (bad) return;
    const button = $("auth-submit");
    button.disabled = true;
    try {
      const path = mode === "signin" ? "/auth/login" : "/auth/register";
      const data = await api("POST", path, { email, password });
      saveSession({ token: data.token, email: data.user.email });
      $("password").value = "";
      showAlert("");
      render();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---- adding videos --------------------------------------------------------------------
  function clipOptions() {
    return {
      video_type: $("video_type").value,
      aspect_ratio: $("aspect_ratio").value,
      clip_length_preset: $("clip_length_preset").value,
      subtitle: $("subtitle").checked,
    };
  }

  async function onLinkSubmit(e) {
    e.preventDefault();
    const form = $("video-form");
    clearFieldErrors(form);
    showAlert("");
    const link = $("youtube_url").value.trim();
    if (!link) { setFieldError("youtube_url", "paste a YouTube link first"); $("youtube_url").focus(); return; }
    const button = $("submit-link");
    button.disabled = true;
    try {
      await api("POST", "/viral-clip/video/youtube", Object.assign({ youtube_url: link }, clipOptions()));
      $("youtube_url").value = "";
      await refresh(true);
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  // Files up to this size go in one request to /viral-clip/video/upload; larger ones straight
  // to the object store through presigned URLs (the server writes the limit into the page).
  const MAX_DIRECT_UPLOAD = Number(
    (document.querySelector("meta[name='viralclip-max-upload-bytes']") || {}).content) || 4 * 1024 * 1024;
  const PART_ATTEMPTS = 4;      // a failed part is sent again up to 3 times
  const PARALLEL_PARTS = 3;

  function uploadFile(file) {
    const form = $("video-form");
    clearFieldErrors(form);
    showAlert("");
    if (file.size > MAX_DIRECT_UPLOAD) { uploadLarge(file); return; }
    const data = new FormData();
    data.append("file", file, file.name);
    const opts = clipOptions();
    for (const k of CONFIG_FIELDS) data.append(k, String(opts[k]));

    const progress = showProgress(file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/viral-clip/video/upload");
    xhr.setRequestHeader("Authorization", "Bearer " + session.token);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) progress(Math.round((ev.loaded / ev.total) * 100));
    };
    xhr.onerror = () => {
      $("upload-progress").hidden = true;
      showAlert("The upload failed: the server cannot be reached.");
    };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 201) {
        progress(100, "100% — added");
        setTimeout(() => { $("upload-progress").hidden = true; }, 1500);
        refresh(true);
        return;
      }
      $("upload-progress").hidden = true;
      const err = (body && body.error) || { message: "The upload failed (" + xhr.status + ")." };
      if (xhr.status === 401) { signOut("Your session has ended. Please sign in again."); return; }
      if ((err.details && err.details.fields) || err.code === "rate_limited") showError(err);
      else setFieldError("file", err.message.replace(/\.$/, "")) || showAlert(err.message);
    };
    xhr.send(data);
  }

  function showProgress(file) {
    const bar = $("upload-bar"), percent = $("upload-percent");
    $("upload-name").textContent = file.name;
    bar.value = 0; percent.textContent = "0%";
    $("upload-progress").hidden = false;
    return (p, text) => { bar.value = p; percent.textContent = text || (p + "%"); };
  }

  // PUTs one part (a Blob) to its presigned URL; resolves with the store's ETag.
  function putPart(url, blob, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
      xhr.onerror = () => reject({ retry: true, message: "the connection to storage failed" });
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(blob.size);
          resolve(xhr.getResponseHeader("ETag"));
        } else {
          // 5xx and 429 are worth another try; 403 means the URL expired or was refused
          const retry = xhr.status >= 500 || xhr.status === 429;
          reject({ retry, message: "storage answered " + xhr.status });
        }
      };
      xhr.send(blob);
    });
  }

  async function putPartWithRetries(part, blob, onProgress) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await putPart(part.url, blob, onProgress);
      } catch (err) {
        onProgress(0);
        if (!err.retry || attempt >= PART_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** (attempt - 1)));
      }
    }
  }

  // The large-upload flow: ask for presigned URLs, PUT the parts (a few at a time, each
  // retried), then ask the server to check the stored file and create the video.
  async function uploadLarge(file) {
    const progress = showProgress(file);
    let started = null;
    try {
      started = await api("POST", "/viral-clip/video/uploads", Object.assign({
        filename: file.name,
        size_bytes: file.size,
        content_type: file.type || "application/octet-stream",
      }, clipOptions()));
      const loaded = new Array(started.parts.length).fill(0);
      const report = () => {
        const sum = loaded.reduce((a, b) => a + b, 0);
        progress(Math.min(99, Math.floor((sum / file.size) * 100)));
      };
      const etags = new Array(started.parts.length);
      let next = 0;
      const lane = async () => {
        while (next < started.parts.length) {
          const i = next++;
          const part = started.parts[i];
          const from = i * started.part_size;
          const blob = file.slice(from, from + part.size_bytes);
          etags[i] = await putPartWithRetries(part, blob, (n) => { loaded[i] = n; report(); });
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, started.parts.length) }, lane));
      progress(99, "99% — checking the file");
      // Without every ETag (a store that hides the header) the server lists the parts itself.
      const body = started.multipart && etags.every((e) => e)
        ? { parts: started.parts.map((p, i) => ({ part_number: p.part_number, etag: etags[i] })) }
        : {};
      await api("POST", "/viral-clip/video/uploads/" + started.upload_id + "/complete", body);
      progress(100, "100% — added");
      setTimeout(() => { $("upload-progress").hidden = true; }, 1500);
      refresh(true);
    } catch (err) {
      $("upload-progress").hidden = true;
      if (started && err.status === undefined) {
        // the bytes did not get through: give the upload up so nothing is left behind
        api("DELETE", "/viral-clip/video/uploads/" + started.upload_id).catch(() => {});
        showAlert("The upload failed: " + (err.message || "storage cannot be reached") + ". Please try again.");
        return;
      }
      if (err.status === 401) return;
      const aliases = { filename: "file", size_bytes: "file", content_type: "file" };
      if ((err.details && err.details.fields) || err.code === "rate_limited") showError(err, aliases);
      else setFieldError("file", (err.message || "the upload failed").replace(/\.$/, "")) || showAlert(err.message);
    }
  }

  // ---- the list -------------------------------------------------------------------------
  function timeAgo(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(iso).toLocaleDateString();
  }
  function duration(sec) {
    if (sec == null) return null;
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? h + ":" + pad(m) + ":" + pad(s) : m + ":" + pad(s);
  }
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children || []) if (c) e.append(c);
    return e;
  }

  function card(v) {
    const job = v.latest_job;
    const placeholder = "/viral-clip/assets/placeholder.svg";
    const thumbnail = v.source_type === "youtube" && v.thumbnail_url ? v.thumbnail_url : placeholder;
    // offline (or a removed video), the YouTube thumbnail fails to load: the placeholder stands in
    const img = el("img", {
      class: "thumb", alt: "", loading: "lazy", width: "200", height: "113",
      src: thumbnail, "data-thumbnail": thumbnail,
    });
    img.addEventListener("error", () => { if (!img.src.endsWith(placeholder)) img.src = placeholder; }, { once: true });

    const name = v.title || (v.source_type === "youtube" ? v.source_url : "Uploaded video");
    const heading = v.source_type === "youtube"
      ? el("h3", {}, [el("a", { href: v.source_url, rel: "noopener noreferrer", target: "_blank", text: name })])
      : el("h3", { text: name });
    const meta = el("div", { class: "meta" }, [
      el("span", { class: "badge " + v.status, text: v.status, "data-status": v.status }),
      el("span", { text: v.source_type === "youtube" ? "YouTube" : "Upload" }),
      el("time", { datetime: v.created_at, title: new Date(v.created_at).toLocaleString(), text: timeAgo(v.created_at) }),
      duration(v.duration_seconds) ? el("span", { text: duration(v.duration_seconds) }) : null,
    ]);
    const body = el("div", {}, [heading, meta]);
    if (job && (job.status === "queued" || job.status === "running") && v.status !== "ready") {
      const pct = Math.round(job.progress || 0);
      body.append(el("div", { class: "job-progress" }, [
        el("progress", { max: "100", value: String(pct), "aria-label": "Processing progress" }),
        el("span", { text: job.status === "queued" ? "queued" : pct + "%" }),
      ]));
    }
    const error = v.error_message || (job && job.status === "failed" && job.error_message);
    if (v.status === "failed" && error) body.append(el("p", { class: "error-message", text: error }));
    body.append(actions(v, name));
    return el("li", { class: "video", "data-id": String(v.id) }, [img, body]);
  }

  // A card's controls: details, "Try again" on a failed video, and delete, which asks first
  // (the question stays across redraws until it is answered).
  function actions(v, name) {
    const id = String(v.id);
    const button = (action, text, cls, label) =>
      el("button", { type: "button", class: cls, "data-action": action, "data-id": id, "aria-label": label + ": " + name, text });
    if (confirming.has(v.id)) {
      return el("div", { class: "actions confirm", role: "group", "aria-label": "Delete " + name + "?" }, [
        el("span", { text: "Delete this video and its clips? This cannot be undone." }),
        button("delete-confirm", "Delete", "danger", "Delete for good"),
        button("delete-cancel", "Keep it", "secondary", "Keep"),
      ]);
    }
    return el("div", { class: "actions" }, [
      button("details", "Details", "link-button", "Details"),
      v.status === "failed" ? button("retry", "Try again", "secondary", "Try again") : null,
      button("delete", "Delete", "link-button danger-link", "Delete"),
    ]);
  }

  function draw() {
    // a redraw keeps the focus on the control it was on
    const focused = document.activeElement;
    const keep = focused && focused.dataset && focused.dataset.action
      ? [focused.dataset.action, focused.dataset.id] : null;
    $("videos").replaceChildren(...items.map(card));
    $("empty").hidden = items.length > 0;
    $("load-more").hidden = !nextCursor;
    if (keep) {
      const again = document.querySelector('[data-action="' + keep[0] + '"][data-id="' + keep[1] + '"]');
      if (again) again.focus();
    }
  }

  function focusAction(action, id) {
    const b = document.querySelector('[data-action="' + action + '"][data-id="' + id + '"]');
    if (b) b.focus();
  }

  async function onVideoAction(e) {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const id = Number(b.dataset.id);
    const action = b.dataset.action;
    if (action === "delete") {
      confirming.add(id); draw(); focusAction("delete-cancel", id);
    } else if (action === "delete-cancel") {
      confirming.delete(id); draw(); focusAction("delete", id);
    } else if (action === "delete-confirm") {
      b.disabled = true;
      try {
        await api("DELETE", "/viral-clip/videos/" + id);
        confirming.delete(id);
        items = items.filter((v) => v.id !== id);
        draw();
        showAlert("The video is deleted.", "info");
        $("videos-title").focus();
      } catch (err) {
        b.disabled = false;
        if (err.status === 404) { confirming.delete(id); refresh(false); }
        showAlert(err.message || "Could not delete the video.");
      }
    } else if (action === "retry") {
      b.disabled = true;
      try {
        await api("POST", "/viral-clip/videos/" + id + "/retry");
        showAlert("Trying again: the video is back in the queue.", "info");
        await refresh(false);
      } catch (err) {
        b.disabled = false;
        showError(err);
        refresh(false);
      }
    } else if (action === "details") {
      openDetails(id, b);
    }
  }

  // ---- the detail view --------------------------------------------------------------------
  const OPTION_NAMES = { video_type: "Video type", aspect_ratio: "Aspect ratio", clip_length_preset: "Clip length", subtitle: "Subtitles" };
  function optionText(name, value) {
    if (name === "subtitle") return value ? "burned in" : "none";
    if (name === "clip_length_preset") return ({ auto_0_60: "auto, up to 60 s", auto_0_90: "auto, up to 90 s", "0_30": "under 30 s", "30_60": "30–60 s", "60_90": "60–90 s", "90_180": "90 s – 3 min" })[value] || String(value);
    return String(value).replace(/_/g, " ");
  }

  async function openDetails(id, opener) {
    const dialog = $("detail");
    let v;
    try {
      v = await api("GET", "/viral-clip/videos/" + id);
    } catch (err) {
      if (err.status === 404) refresh(false);
      showAlert(err.message || "Could not load the video.");
      return;
    }
    const name = v.title || (v.source_type === "youtube" ? v.source_url : "Uploaded video");
    $("detail-title").textContent = name;
    const latest = v.jobs[0];
    const options = latest ? Object.entries(latest.payload || {}).filter(([k]) => k in OPTION_NAMES) : [];
    $("detail-summary").replaceChildren(
      el("dt", { text: "Status" }), el("dd", {}, [el("span", { class: "badge " + v.status, text: v.status })]),
      el("dt", { text: "Source" }), el("dd", { text: v.source_type === "youtube" ? v.source_url : "Uploaded file" }),
      el("dt", { text: "Added" }), el("dd", { text: new Date(v.created_at).toLocaleString() }),
      ...(duration(v.duration_seconds) ? [el("dt", { text: "Length" }), el("dd", { text: duration(v.duration_seconds) })] : []),
    );
    $("detail-options").replaceChildren(...options.flatMap(([k, val]) => [
      el("dt", { text: OPTION_NAMES[k] }), el("dd", { text: optionText(k, val) }),
    ]));
    $("detail-jobs").replaceChildren(...v.jobs.map((j, i) => el("li", { class: "job", "data-job-status": j.status }, [
      el("strong", { text: (i === 0 ? "Latest run" : "Earlier run") + ": " + j.status }),
      el("span", { class: "muted", text: " · started " + new Date(j.created_at).toLocaleString() + " · attempt " + j.attempts + " · " + Math.round(j.progress || 0) + "%" }),
      j.error_message ? el("p", { class: "error-message", text: j.error_message }) : null,
    ])));
    detailOpener = opener;
    dialog.showModal();
    $("detail-close").focus();
  }

  const unfinished = () => items.some((v) => v.status === "pending" || v.status === "processing");

  // Reloads the first pages (as many items as are shown) and polls while anything runs.
  async function refresh(resetPages) {
    stopPolling();
    if (!session) return;
    const limit = resetPages ? PAGE_SIZE : Math.min(100, Math.max(PAGE_SIZE, items.length));
    try {
      const page = await api("GET", "/viral-clip/videos?limit=" + limit);
      if (!session) return;
      items = page.items;
      nextCursor = page.next_cursor;
      draw();
    } catch (err) {
      if (err.status !== 401) showAlert(err.message || "Could not load your videos.");
    }
    if (session && unfinished()) {
      $("refresh-state").textContent = "Updating…";
      pollTimer = setTimeout(() => refresh(false), POLL_MS);
    } else {
      $("refresh-state").textContent = "";
    }
  }
  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  async function loadMore() {
    if (!nextCursor) return;
    const button = $("load-more");
    button.disabled = true;
    try {
      const page = await api("GET", "/viral-clip/videos?limit=" + PAGE_SIZE + "&cursor=" + encodeURIComponent(nextCursor));
      const seen = new Set(items.map((v) => v.id));
      items = items.concat(page.items.filter((v) => !seen.has(v.id)));
      nextCursor = page.next_cursor;
      draw();
    } catch (err) {
      showAlert(err.message || "Could not load more videos.");
    } finally {
      button.disabled = false;
    }
  }

  // ---- wiring ---------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("tab-signin").addEventListener("click", () => setMode("signin"));
    $("tab-signup").addEventListener("click", () => setMode("signup"));
    $("auth-form").addEventListener("submit", onAuthSubmit);
    $("sign-out").addEventListener("click", () => signOut("You are signed out."));
    $("video-form").addEventListener("submit", onLinkSubmit);
    $("load-more").addEventListener("click", loadMore);
    $("videos").addEventListener("click", onVideoAction);
    $("videos").addEventListener("keydown", (e) => {
      const b = e.target.closest && e.target.closest(".confirm button");
      if (e.key === "Escape" && b) { confirming.delete(Number(b.dataset.id)); draw(); focusAction("delete", b.dataset.id); }
    });
    $("detail-close").addEventListener("click", () => $("detail").close());
    $("detail").addEventListener("close", () => { if (detailOpener && detailOpener.isConnected) detailOpener.focus(); detailOpener = null; });
    $("file").addEventListener("change", (e) => {
      const f = e.target.files && e.target.files[0];
      if (f) uploadFile(f);
      e.target.value = "";
    });
    const zone = $("dropzone");
    ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("dragover"); }));
    ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, () => zone.classList.remove("dragover")));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) uploadFile(f);
    });
    loadSession();
    setMode("signin");
    render();
  });
})();
