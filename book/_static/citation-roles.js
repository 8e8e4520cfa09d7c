// docutils marks bibliography entries with the ARIA role doc-biblioentry, which ARIA 1.2
// deprecates and which is not a valid child of their role="list" container. As list items
// they read the same to a screen reader and satisfy both rules.
document.addEventListener("DOMContentLoaded", () => {
  for (const entry of document.querySelectorAll('[role="doc-biblioentry"]')) {
    entry.setAttribute("role", "listitem");
  }
});
