// Live refresh for pages that ask for it (<meta name="livedash-refresh" content="SECONDS">):
// reloads unless the reader is typing in a form. Served by us: the CSP allows no inline script.
(function () {
  var meta = document.querySelector('meta[name="livedash-refresh"]');
  if (!meta) return;
  var seconds = parseInt(meta.getAttribute("content"), 10);
  if (!(seconds > 0)) return;
  setInterval(function () {
    var active = document.activeElement;
    if (active && active.form) return;
    if (document.visibilityState === "hidden") return;
    window.location.reload();
  }, seconds * 1000);
})();
