// The door list follows the chosen site: doors of other sites are hidden (the server checks it anyway).
"use strict";
(() => {
  const site = document.getElementById("site");
  const door = document.getElementById("door");
  if (!site || !door) return;
  const follow = () => {
    for (const group of door.querySelectorAll("optgroup[data-site]")) {
      const shown = !site.value || group.dataset.site === site.value;
      group.hidden = !shown;
      group.disabled = !shown;
      if (!shown && group.contains(door.selectedOptions[0])) door.value = "";
    }
  };
  site.addEventListener("change", follow);
  follow();
})();
