// The playground is an ordinary client of this service's OpenAI-compatible API: it lists
// `/v1/models`, posts the conversation to `/v1/chat/completions` with `stream: true`, and
// reads the SSE body itself (EventSource cannot POST). Stopping aborts the fetch; the
// service sees the disconnect and cancels the team run. Model output is only ever set as
// text, never parsed as HTML.
"use strict";

const KEY_STORAGE = "fastapi-autogen-team.api-key";
// A reasoning chunk that is exactly a speaker header starts that agent's turn.
const AGENT_HEADER = /^(?:\n\n)?\*\*([^*\n]+)\*\*\n$/;
const EVENT_END = /\r?\n\r?\n/;

const $ = (id) => document.getElementById(id);
const ui = {
  model: $("model"),
  modelDescription: $("model-description"),
  apiKey: $("api-key"),
  settings: $("settings"),
  newChat: $("new-chat"),
  notice: $("notice"),
  log: $("log"),
  empty: $("empty"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
};

const conversation = [];
let running = null;

class ServiceError extends Error {}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function wordCount(text) {
  const words = text.split(/\s+/).filter(Boolean).length;
  return words === 1 ? "1 word" : `${words} words`;
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(2)} s`;
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

function authHeaders() {
  const key = ui.apiKey.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// An error response as one readable sentence: OpenAI's `error.message`, else the status.
async function describeFailure(response) {
  let message = "";
  try {
    const body = await response.json();
    message = body?.error?.message ?? "";
  } catch {
    // Not JSON (a proxy's page, say): the status line is all there is to show.
  }
  const status = `${response.status} ${response.statusText}`.trim();
  const hint = response.status === 401 ? " Enter the service's key under API key." : "";
  return `${message || "The request failed."} (HTTP ${status})${hint}`;
}

function nearBottom() {
  const { scrollTop, scrollHeight, clientHeight } = ui.log;
  return scrollHeight - scrollTop - clientHeight < 80;
}

function follow(wasNearBottom) {
  if (wasNearBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

// ---- models ---------------------------------------------------------------------------

async function loadModels() {
  const previous = ui.model.value;
  ui.model.disabled = true;
  let response;
  try {
    response = await fetch("v1/models", { headers: authHeaders() });
  } catch (error) {
    showNotice(`Could not reach the service to list its teams: ${error.message}`);
    return;
  }
  if (!response.ok) {
    const none = element("option", "", "No teams listed");
    none.value = "";
    ui.model.replaceChildren(none);
    showNotice(`Could not list the teams: ${await describeFailure(response)}`);
    return;
  }
  const { data } = await response.json();
  ui.model.replaceChildren(
    ...data.map((model) => {
      const option = element("option", "", model.id);
      option.value = model.id;
      option.dataset.description = model.description ?? "";
      return option;
    }),
  );
  if (data.some((model) => model.id === previous)) ui.model.value = previous;
  ui.model.disabled = data.length === 0;
  showNotice(data.length ? "" : "The service serves no teams.");
  describeModel();
}

function describeModel() {
  const option = ui.model.selectedOptions[0];
  ui.modelDescription.textContent = option?.dataset.description ?? "";
}

function saveKey() {
  const key = ui.apiKey.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  loadModels();
}

// ---- one answer ----------------------------------------------------------------------

// The assistant side of one exchange: agent blocks, the answer, and a line of figures.
class Reply {
  constructor(model) {
    this.started = performance.now();
    this.firstToken = null;
    this.usage = null;
    this.block = null;
    this.answer = "";
    this.node = element("article", "turn assistant");
    this.node.setAttribute("aria-busy", "true");
    this.node.dataset.state = "streaming";
    const head = element("header", "turn-head");
    head.append(element("span", "who", model));
    this.state = element("span", "state", "Waiting for the team…");
    head.append(this.state);
    this.agents = element("div", "agents");
    this.answerNode = element("div", "answer");
    this.answerText = this.answerNode.appendChild(document.createTextNode(""));
    this.meta = element("p", "meta");
    this.error = element("p", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.node.append(head, this.agents, this.answerNode, this.meta, this.error);
  }

  apply(chunk) {
    if (chunk.usage) this.usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      const delta = choice.delta ?? {};
      if (delta.reasoning_content) this.reasoning(delta.reasoning_content);
      if (delta.content) this.content(delta.content);
    }
  }

  tick() {
    if (this.firstToken === null) this.firstToken = performance.now() - this.started;
  }

  reasoning(text) {
    this.tick();
    const header = AGENT_HEADER.exec(text);
    if (header) {
      this.openBlock(header[1]);
      return;
    }
    if (!this.block) this.openBlock("agents");
    this.block.text.appendData(text);
    this.block.words.textContent = wordCount(this.block.text.data);
  }

  openBlock(agent) {
    if (this.block) this.block.node.classList.remove("speaking");
    const node = element("details", "agent speaking");
    node.open = true;
    node.dataset.agent = agent;
    const summary = element("summary");
    const words = element("span", "agent-note", wordCount(""));
    summary.append(element("span", "agent-name", agent), words);
    const body = element("div", "agent-text");
    const text = body.appendChild(document.createTextNode(""));
    node.append(summary, body);
    this.agents.append(node);
    this.block = { node, text, words };
    this.state.textContent = `${agent} is working…`;
  }

  content(text) {
    this.tick();
    if (!this.answer && this.block) this.block.node.classList.remove("speaking");
    this.answer += text;
    this.answerText.appendData(text);
    this.state.textContent = "Answering…";
  }

  fail(message) {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  finish(outcome) {
    const labels = { done: "Done", stopped: "Stopped", failed: "Failed" };
    this.node.dataset.state = outcome;
    this.node.setAttribute("aria-busy", "false");
    this.state.textContent = labels[outcome];
    if (this.block) this.block.node.classList.remove("speaking");
    if (outcome === "stopped" && this.block && !this.answer) {
      this.block.words.textContent += " · stopped";
    }
    this.meta.textContent = this.figures(outcome);
  }

  figures(outcome) {
    const parts = [];
    if (this.usage) {
      const { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total } =
        this.usage;
      parts.push(`${total} tokens (${prompt} prompt, ${completion} completion)`);
    }
    if (this.firstToken !== null) parts.push(`first token after ${seconds(this.firstToken)}`);
    const elapsed = seconds(performance.now() - this.started);
    parts.push(outcome === "stopped" ? `stopped after ${elapsed}` : `${elapsed} in all`);
    return parts.join(" · ");
  }
}

// ---- streaming -----------------------------------------------------------------------

// The `data:` payloads of an SSE body, one per event; comments (`: ping`) are skipped.
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = EVENT_END.exec(buffer))) {
        const event = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) yield data;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseChunk(data) {
  try {
    return JSON.parse(data);
  } catch {
    throw new ServiceError("The service sent an event that is not JSON; the answer is cut short.");
  }
}

async function stream(reply, request, signal) {
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(request),
    signal,
  });
  if (!response.ok) throw new ServiceError(await describeFailure(response));
  for await (const data of sseData(response.body)) {
    if (data === "[DONE]") return;
    const follows = nearBottom();
    const chunk = parseChunk(data);
    if (chunk.error) throw new ServiceError(`The team run failed: ${chunk.error.message}`);
    reply.apply(chunk);
    follow(follows);
  }
  throw new ServiceError("The stream ended before the service said it was done.");
}

function setRunning(controller) {
  running = controller;
  ui.send.disabled = Boolean(controller);
  ui.stop.disabled = !controller;
  ui.model.disabled = Boolean(controller) || !ui.model.value;
}

async function send() {
  const question = ui.message.value.trim();
  if (!question || running) return;
  const model = ui.model.value;
  if (!model) {
    showNotice("Choose a team first: the list fills once the service answers.");
    return;
  }
  showNotice("");
  ui.empty.hidden = true;
  ui.message.value = "";

  const messages = [...conversation, { role: "user", content: question }];
  const you = element("article", "turn user");
  you.append(element("header", "turn-head", "You"), element("div", "said", question));
  const reply = new Reply(model);
  ui.log.append(you, reply.node);
  ui.log.scrollTop = ui.log.scrollHeight;

  const controller = new AbortController();
  setRunning(controller);
  let outcome = "done";
  let follows = true;
  try {
    const request = { model, messages, stream: true, stream_options: { include_usage: true } };
    await stream(reply, request, controller.signal);
  } catch (error) {
    if (error.name === "AbortError") {
      outcome = "stopped";
    } else {
      outcome = "failed";
      const network = `Could not reach the service: ${error.message}`;
      reply.fail(error instanceof ServiceError ? error.message : network);
    }
  } finally {
    follows = nearBottom();
    setRunning(null);
    reply.finish(outcome);
  }
  if (!reply.node.isConnected) return; // "New chat" during the run dropped this exchange.
  remember(question, you, reply);
  follow(follows);
  ui.message.focus();
}

// An exchange goes back as history only with an answer (a stopped one keeps what it got).
function remember(question, you, reply) {
  if (reply.answer) {
    conversation.push(
      { role: "user", content: question },
      { role: "assistant", content: reply.answer },
    );
  } else {
    you.append(element("p", "note", "Not sent back as history: it got no answer."));
  }
}

function newChat() {
  running?.abort();
  conversation.length = 0;
  ui.log.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  ui.message.focus();
}

// ---- wiring --------------------------------------------------------------------------

ui.apiKey.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
// Enter in the key field fires `change` too; the form must not also navigate.
ui.apiKey.addEventListener("change", saveKey);
ui.settings.addEventListener("submit", (event) => event.preventDefault());
ui.model.addEventListener("change", describeModel);
ui.newChat.addEventListener("click", newChat);
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
ui.stop.addEventListener("click", () => running?.abort());
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && running) running.abort();
});
loadModels();
