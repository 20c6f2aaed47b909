// Min nøkkel, card registration: while a one-time code waits at a reader, ask central every 2 seconds whether
// the card has been tapped, and say so in the page's status line (role="status": read out politely). Without
// scripts the "check status" button reloads the page instead.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var box = document.getElementById("card-status");
  if (!box || box.getAttribute("data-poll") !== "yes" || !window.fetch) return;
  var url = box.getAttribute("data-status-url");
  var onward = document.getElementById("card-continue");
  var timer = null;

  function stop() {
    if (timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  }

  function show(answer) {
    if (typeof answer.message === "string" && box.textContent !== answer.message) {
      box.textContent = answer.message;
    }
    if (answer.state === "registered") {
      stop();
      box.className = "notice ok";
      if (onward) {
        if (typeof answer.next === "string") onward.querySelector("a").setAttribute("href", answer.next);
        onward.hidden = false;
      }
    } else if (answer.state !== "pending") {
      stop();
      box.className = "notice warn";
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (answer) {
        if (answer) show(answer);
      })
      .catch(function () {
        // offline for a moment, or signed out: the button still works
      });
  }

  timer = setInterval(poll, POLL_MS);
})();
