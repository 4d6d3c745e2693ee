// Show why the last login attempt came back to this page.
document.getElementById("failed").hidden = !new URLSearchParams(location.search).has("failed");
