// The practice phone: a keypad in the page, the call played on the server (ivr_cbt/dashboard/practice.py).
// Each key press that completes an answer is one turn; what the app says is read aloud by speech synthesis.
"use strict";
(function () {
  const root = document.getElementById("practice");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const transcript = $("transcript"), typed = $("typed"), status = $("call-status");
  const controls = [...document.querySelectorAll(".key"), $("send-button"), $("silence-button"), $("hangup-button"),
                    $("speech-text"), $("speech-button")];
  let state = null, listening = null, keys = "", language = "en-US";

  function speak(text) {
    if (!("speechSynthesis" in window) || text.startsWith("[")) return;
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = language;
    window.speechSynthesis.speak(utterance);
  }

  function show(lines) {
    for (const line of lines) {
      const item = document.createElement("li");
      item.className = "line line-" + (line.speaker === "--" ? "event" : line.speaker.toLowerCase());
      item.textContent = (line.speaker === "--" ? "" : line.speaker + ": ") + line.text;
      transcript.appendChild(item);
      if (line.speaker === "APP") speak(line.text);
    }
    transcript.lastElementChild && transcript.lastElementChild.scrollIntoView({block: "nearest"});
  }

  function enable(on) {
    controls.forEach((control) => { control.disabled = !on; });
    $("call-button").disabled = on;
  }

  function setTyped(value) {
    keys = value;
    typed.textContent = keys ? "Keys: " + keys : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json"},
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  function take(turn) {
    show(turn.lines);
    state = turn.state;
    listening = turn.listening;
    setTyped("");
    if (listening) {
      language = listening.language || language;
      status.textContent = "Listening" + (listening.num_digits ? " for " + listening.num_digits + " key(s)" : "") +
        (listening.finish_on_key ? "; end with " + listening.finish_on_key : "") + ".";
      enable(true);
      $("speech-text").disabled = $("speech-button").disabled = !listening.input.includes("speech");
    } else {
      status.textContent = "Call ended: " + turn.status + ", " + turn.duration_s + " s.";
      enable(false);
    }
  }

  async function act(action) {
    enable(false);
    status.textContent = "…";
    try {
      take(await post(root.dataset.stepUrl, {state: state, action: action}));
    } catch (error) {
      status.textContent = "The call failed (" + error.message + ").";
    }
  }

  $("call-button").addEventListener("click", async () => {
    transcript.replaceChildren();
    $("call-button").disabled = true;
    status.textContent = "Calling…";
    try {
      take(await post(root.dataset.startUrl, {patient_id: Number($("practice-patient").value)}));
    } catch (error) {
      status.textContent = "Could not place the call (" + error.message + ").";
      $("call-button").disabled = false;
    }
  });

  document.querySelectorAll(".key").forEach((button) => button.addEventListener("click", () => {
    const key = button.dataset.key;
    setTyped(keys + key);
    const digits = keys.replace(/#$/, "");
    // Like a phone: the app's finishOnKey (after a digit) or its numDigits ends the answer.
    if ((listening.finish_on_key && key === listening.finish_on_key && digits.length > 0) ||
        (listening.num_digits && keys.length >= listening.num_digits)) {
      act(keys);
    }
  }));
  $("send-button").addEventListener("click", () => act(keys || "silence"));
  $("silence-button").addEventListener("click", () => act("silence"));
  $("hangup-button").addEventListener("click", () => act("hangup"));
  $("speech-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("speech-text").value.trim().replace(/[,@]/g, " ");
    if (text) { $("speech-text").value = ""; act("speech:" + text); }
  });
})();
