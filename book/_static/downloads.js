// Make the download menu save files under their own names (bert.ipynb, bert.md) instead of
// opening them in a new tab, where a browser would show a notebook as raw JSON.
document.addEventListener("DOMContentLoaded", () => {
  const selector = ".btn-download-notebook-button, .btn-download-source-button";
  for (const link of document.querySelectorAll(selector)) {
    const name = new URL(link.href, document.baseURI).pathname.split("/").pop();
    link.setAttribute("download", name);
    link.removeAttribute("target");
  }
});
