// The overview, live: server-sent events from /drift/oversikt/live carry the whole view in words (the same
// words the page was rendered with), and this script writes them into the cells. A door that becomes forced
// open, held open or faulty is announced politely to screen readers. Without JavaScript the page is complete;
// it is just not updated until reloaded.
(function () {
  "use strict";

  var root = document.getElementById("overview");
  if (!root || !window.EventSource) {
    return;
  }
  var status = document.getElementById("live-status");
  var announcer = document.getElementById("announcer");

  function say(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function field(container, name) {
    return container.querySelector('[data-field="' + name + '"]');
  }

  function setText(element, text) {
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function setBadge(element, tone, symbol, words) {
    if (!element) {
      return;
    }
    element.className = "badge " + tone;
    setText(element.querySelector(".symbol"), symbol);
    setText(element.querySelector(".words"), words);
  }

  function announce(text) {
    // A fresh text node each time, so the same words twice are announced twice.
    announcer.textContent = "";
    window.setTimeout(function () {
      announcer.textContent = text;
    }, 50);
  }

  function applyDoor(door) {
    var row = document.getElementById(door.dom_id);
    if (!row) {
      return; // a door added since the page was loaded: a reload shows it
    }
    var before = row.getAttribute("data-state");
    row.setAttribute("data-state", door.state);
    setBadge(field(row, "state"), door.tone, door.symbol, door.state_text);
    setText(field(row, "since_text"), door.since_text);
    setText(field(row, "event_text"), door.event_text);
    if (before !== door.state && door.alarming) {
      announce(door.label + ": " + door.state_text);
    }
  }

  function applySite(site) {
    var section = document.getElementById(site.dom_id);
    if (!section) {
      return;
    }
    setBadge(field(section, "agent"), site.agent_tone, site.agent_symbol, site.agent_text);
    setText(field(section, "agent_detail"), site.agent_detail);
    var alarms = field(section, "alarms_text");
    setText(alarms, site.alarms_text);
    if (alarms) {
      alarms.classList.toggle("alarming", site.open_alarms > 0);
    }
    setText(field(section, "site_event"), site.event_text);
    site.doors.forEach(applyDoor);
  }

  var source = new EventSource(root.getAttribute("data-live"));
  source.addEventListener("open", function () {
    say(root.getAttribute("data-live-on"));
  });
  source.addEventListener("error", function () {
    var closed = source.readyState === EventSource.CLOSED;
    say(root.getAttribute(closed ? "data-live-closed" : "data-live-off"));
  });
  source.addEventListener("overview", function (event) {
    var view = JSON.parse(event.data);
    setText(field(root, "summary_text"), view.summary_text);
    view.sites.forEach(applySite);
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
