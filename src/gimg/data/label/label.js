"use strict";
// The labelling page: shows one sampled face at a time, sends each answer to the server, and moves on to the next
// unlabelled face. Keys are handled one after another, so fast typing never skips or reorders an answer.
const KEYS = {f: "female", m: "male", u: "unclear", p: "not_a_person", n: "not_a_face",
              1: "female", 2: "male", 3: "unclear", 4: "not_a_person", 5: "not_a_face"};
const NAMES = {female: "Female (f)", male: "Male (m)", unclear: "Unclear (u)",
               not_a_person: "Not a real person (p)", not_a_face: "Not a face (n)"};
const $ = (id) => document.getElementById(id);
let state = null;
let position = -1;  // index of the item shown; -1 once every item is labelled
let queue = Promise.resolve();

async function call(method, path, body) {
  const options = {method, cache: "no-store"};
  if (body) {
    options.headers = {"Content-Type": "application/json"};
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function nextUnlabelled(from) {
  const count = state.items.length;
  for (let step = 0; step < count; step++) {
    const index = (from + step) % count;
    if (!(state.items[index] in state.answers)) return index;
  }
  return -1;
}

function render() {
  const total = state.items.length;
  const done = state.items.filter((item) => item in state.answers).length;
  $("progress").textContent = `${done} / ${total} labelled`;
  $("bar").style.width = `${total ? (100 * done) / total : 0}%`;
  $("done").hidden = position >= 0;
  $("work").hidden = $("answers").hidden = position < 0;
  document.body.dataset.done = String(done);
  if (position < 0) {
    $("work").dataset.item = "";
    return;
  }
  const item = state.items[position];
  $("work").dataset.item = item;
  $("crop").src = `/crop/${item}.jpg`;
  $("image").src = `/image/${item}.jpg`;
  const answer = state.answers[item];
  $("current").textContent = `Face ${position + 1} of ${total}: ` + (answer ? `your answer: ${answer}` : "not labelled yet");
  for (const button of $("buttons").children) button.classList.toggle("chosen", button.dataset.label === answer);
  const upcoming = nextUnlabelled(position + 1);
  if (upcoming >= 0 && upcoming !== position) new Image().src = `/image/${state.items[upcoming]}.jpg`;
}

async function answer(label) {
  if (position < 0) return;
  state = await call("POST", "/api/label", {rater: state.rater, item: state.items[position], label});
  position = nextUnlabelled(position + 1);
  render();
}

async function undo() {
  state = await call("POST", "/api/undo", {rater: state.rater});
  if (state.undone) position = state.items.indexOf(state.undone);
  render();
}

function move(step) {
  const last = state.items.length - 1;
  position = position < 0 ? last : Math.min(last, Math.max(0, position + step));
  render();
}

function enqueue(action) {
  queue = queue.then(action).then(() => { $("status").textContent = ""; },
                                  (error) => { $("status").textContent = error.message; });
}

function onKey(event) {
  if (!state || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key in KEYS) enqueue(() => answer(KEYS[key]));
  else if (key === "z" || key === "Backspace") enqueue(undo);
  else if (key === "ArrowLeft") enqueue(() => move(-1));
  else if (key === "ArrowRight") enqueue(() => move(1));
  else return;
  event.preventDefault();
}

async function start() {
  const config = await call("GET", "/api/config");
  const rater = new URLSearchParams(location.search).get("rater") || config.rater;
  if (!rater) {
    $("who").hidden = false;
    $("who").addEventListener("submit", (event) => {
      event.preventDefault();
      location.search = "?rater=" + encodeURIComponent($("rater-name").value.trim());
    });
    return;
  }
  state = await call("GET", `/api/state?rater=${encodeURIComponent(rater)}`);
  $("rater").textContent = `Labelling as ${state.rater}`;
  for (const label of state.labels) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    button.textContent = NAMES[label] || label;
    button.addEventListener("click", () => enqueue(() => answer(label)));
    $("buttons").append(button);
  }
  position = nextUnlabelled(0);
  render();
  document.addEventListener("keydown", onKey);
  document.body.dataset.ready = "1";
}

start().catch((error) => { $("status").textContent = error.message; });
