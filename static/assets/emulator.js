// The chat emulator: posts user actions to /emulator/api/events (the same queue as real webhooks)
// and long-polls /emulator/api/messages for the bot's replies. No framework, no build step.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const log = $("log"), flavorBox = $("flavor"), userBox = $("user"), statusLine = $("status");
  const maxWait = Number(document.querySelector(".emulator").dataset.maxWait || 20);
  let lastId = "0-0", pollGeneration = 0, numbered = [];

  const newUserId = () => "web-" + Math.random().toString(36).slice(2, 10);
  const eventId = () => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");

  function conversation() { return { user_id: userBox.value.trim(), flavor: flavorBox.value }; }

  function remember() {
    localStorage.setItem("emulator.user", userBox.value.trim());
    localStorage.setItem("emulator.flavor", flavorBox.value);
  }

  function add(kind, build) {
    const item = document.createElement("li");
    item.className = kind;
    build(item);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function text(item, value) { item.appendChild(document.createTextNode(value)); }

  async function send(action, echo) {
    statusLine.textContent = "";
    const body = { ...conversation(), ...action, event_id: eventId() };
    if (echo) add(echo.kind, (li) => text(li, echo.text));
    try {
      const response = await fetch("/emulator/api/events", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        statusLine.textContent = (problem.error && problem.error.message) || ("HTTP " + response.status);
      }
    } catch (error) {
      statusLine.textContent = "Không gửi được: " + error;
    }
  }

  function choices(container, buttons, quick) {
    const box = document.createElement("div");
    box.className = quick ? "choices quick" : "choices";
    for (const button of buttons) {
      let control;
      if (button.url || button.phone) {
        control = document.createElement("a");
        control.href = button.url || "tel:" + button.phone;
        control.target = "_blank";
        control.rel = "noopener";
      } else {
        control = document.createElement("button");
        control.type = "button";
        control.addEventListener("click", () => {
          if (quick) box.querySelectorAll("button").forEach((b) => (b.disabled = true));
          send({ type: "postback", payload: button.payload, title: button.title }, { kind: "me", text: button.title });
        });
      }
      control.textContent = button.title;
      control.dataset.testid = "choice";
      box.appendChild(control);
    }
    container.appendChild(box);
  }

  function render(reply) {
    numbered = [];
    switch (reply.type) {
      case "text":
        return add("bot", (li) => text(li, reply.text));
      case "buttons":
        return add("bot", (li) => { text(li, reply.text); choices(li, reply.buttons, false); });
      case "quick_replies":
        return add("bot", (li) => { text(li, reply.text); choices(li, reply.options, true); });
      case "numbered":
        numbered = reply.options;
        return add("bot", (li) => text(li, reply.text + "\n(trả lời bằng số)"));
      case "request_phone":
        return add("bot", (li) => {
          text(li, reply.text);
          const box = document.createElement("div");
          box.className = "choices";
          const share = document.createElement("button");
          share.type = "button";
          share.textContent = reply.title || "Chia sẻ số điện thoại";
          share.dataset.testid = "share-phone-request";
          share.addEventListener("click", () => {
            const phone = window.prompt("Số điện thoại", "0912345678");
            if (phone) send({ type: "contact", phone }, { kind: "event", text: "📱 shared " + phone });
          });
          box.appendChild(share);
          li.appendChild(box);
        });
      case "card":
        return add("bot", (li) => {
          const card = document.createElement("div");
          card.className = "card";
          card.dataset.testid = "card";
          if (reply.image_url) { const img = document.createElement("img"); img.src = reply.image_url; img.alt = ""; card.appendChild(img); }
          const title = document.createElement("div"); title.className = "title"; title.textContent = reply.title; card.appendChild(title);
          if (reply.subtitle) { const sub = document.createElement("div"); sub.className = "subtitle"; sub.textContent = reply.subtitle; card.appendChild(sub); }
          li.appendChild(card);
          if (reply.buttons && reply.buttons.length) choices(li, reply.buttons, false);
        });
      case "image":
        return add("bot", (li) => {
          if (reply.url) { const img = document.createElement("img"); img.src = reply.url; img.alt = reply.caption || ""; img.style.maxWidth = "100%"; li.appendChild(img); }
          else text(li, "🖼 (image)");
          if (reply.caption) text(li, "\n" + reply.caption);
        });
      default:
        return add("bot", (li) => text(li, JSON.stringify(reply)));
    }
  }

  async function poll(generation) {
    while (generation === pollGeneration) {
      const query = new URLSearchParams({ ...conversation(), after: lastId, wait: String(maxWait) });
      try {
        const response = await fetch("/emulator/api/messages?" + query);
        if (generation !== pollGeneration) return;
        if (!response.ok) throw new Error("HTTP " + response.status);
        const data = await response.json();
        for (const message of data.messages) render(message.reply);
        lastId = data.last_id;
      } catch (error) {
        statusLine.textContent = "Mất kết nối, đang thử lại…";
        await new Promise((resolve) => setTimeout(resolve, 2000));
        statusLine.textContent = "";
      }
    }
  }

  function restart() {
    remember();
    log.innerHTML = "";
    lastId = "0-0";
    numbered = [];
    pollGeneration += 1;
    poll(pollGeneration);
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("text").value.trim();
    if (!value) return;
    $("text").value = "";
    const choice = /^\d+$/.test(value) && numbered[Number(value) - 1];
    if (choice && choice.payload) {
      send({ type: "postback", payload: choice.payload, title: choice.title }, { kind: "me", text: value + ". " + choice.title });
    } else {
      send({ type: "text", text: value }, { kind: "me", text: value });
    }
  });
  document.querySelectorAll("[data-action]").forEach((button) =>
    button.addEventListener("click", () => send({ type: button.dataset.action }, { kind: "event", text: "— " + button.dataset.action + " —" })));
  $("phone-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const phone = $("phone").value.trim();
    if (phone) send({ type: "contact", phone }, { kind: "event", text: "📱 shared " + phone });
  });
  $("scan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const ref = $("ref").value.trim();
    if (ref) send({ type: "referral", ref }, { kind: "event", text: "📷 scanned " + ref });
  });
  $("new-user").addEventListener("click", () => { userBox.value = newUserId(); restart(); });
  userBox.addEventListener("change", restart);
  flavorBox.addEventListener("change", restart);

  userBox.value = localStorage.getItem("emulator.user") || newUserId();
  flavorBox.value = localStorage.getItem("emulator.flavor") || "zalo";
  restart();
})();
