// Render ```mermaid fences (pymdownx.superfences wraps them in <div class="mermaid">).
// A file, not an inline script, so the site works under a strict Content-Security-Policy.
window.mermaid.initialize({ startOnLoad: true, securityLevel: "strict" });
